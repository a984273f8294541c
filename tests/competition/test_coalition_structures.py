"""Transferable utility and coalition structures (sharing groups) among n firms."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.bargaining import (
    ConvexUtilitySet,
    kalai_smorodinsky,
    nash_bargaining,
    transferable_utility_split,
)
from coopml.competition import (
    LearningCurve,
    SharingModel,
    analyze,
    coalition_structures,
    full_sharing,
    set_partitions,
)


def test_set_partitions_are_the_bell_numbers() -> None:
    assert [len(set_partitions(n)) for n in range(1, 8)] == [1, 2, 5, 15, 52, 203, 877]
    for n in (3, 4):
        for p in set_partitions(n):
            assert sorted(i for g in p for i in g) == list(range(n))


@pytest.mark.parametrize("rule", ["nash", "kalai_smorodinsky"])
def test_tu_split_matches_the_convex_solver(rule: str) -> None:
    d, total = np.array([1.0, 2.0, 0.5]), 5.0
    tu = ConvexUtilitySet(3, lambda u: (u, [u.sum() <= total]))
    solve = nash_bargaining if rule == "nash" else kalai_smorodinsky
    exact = solve(tu, d)
    split = transferable_utility_split(total, d, rule)
    np.testing.assert_allclose(split.utilities, exact.utilities, atol=1e-4)
    weighted = nash_bargaining(tu, d, weights=[1, 2, 3])
    np.testing.assert_allclose(
        transferable_utility_split(total, d, weights=[1, 2, 3]).utilities,
        weighted.utilities,
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="parameter 'rule' must be one of"):
        transferable_utility_split(total, d, "shapley")


def _brute_force(model: SharingModel, sizes: np.ndarray) -> dict[tuple, np.ndarray]:
    """Profits of every partition, computed one equilibrium at a time."""
    out = {}
    for p in set_partitions(sizes.size):
        trained = np.empty(sizes.size)
        for g in p:
            trained[list(g)] = sizes[list(g)].sum()
        costs = model.kappa * model.curve(trained)
        out[p] = model.equilibrium(trained, np.zeros(sizes.size)).profits
        assert np.allclose(costs, model.costs(trained, np.zeros(sizes.size)))
    return out


def _relabel(p: tuple, moved: dict[int, int | str]) -> tuple:
    groups: dict = {}
    for g_index, g in enumerate(p):
        for i in g:
            groups.setdefault(moved.get(i, g_index), []).append(i)
    return tuple(sorted(tuple(sorted(v)) for v in groups.values()))


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(5, 5000), min_size=3, max_size=4),
    gamma=st.floats(0.0, 1.0),
    beta=st.floats(0.05, 1.5),
    transfers=st.booleans(),
)
def test_stability_against_a_direct_implementation(
    sizes: list[int], gamma: float, beta: float, transfers: bool
) -> None:
    s = np.asarray(sizes, dtype=float)
    model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma, kappa=0.2)
    r = coalition_structures(model, s, transfers=transfers)
    profits = _brute_force(model, s)
    n = s.size
    tol = 1e-12
    for k, p in enumerate(r.partitions):
        np.testing.assert_allclose(r.profits[k], profits[p], rtol=1e-10)
        for g in p:  # payoffs redistribute each group's joint profit
            assert r.payoffs[k, list(g)].sum() == pytest.approx(profits[p][list(g)].sum())
        pay = r.payoffs
        assert r.individually_rational[k] == bool(np.all(pay[k] >= pay[0] - tol))
        nash = True
        for i in range(n):
            options = [j for j, g in enumerate(p) if i not in g] + ["alone"]
            for target in options:
                q = _relabel(p, {i: target})
                if pay[r.index(q), i] > pay[k, i] + tol:
                    nash = False
        assert r.nash_stable[k] == nash
        core = True
        for size in range(1, n + 1):
            for c in combinations(range(n), size):
                q = _relabel(p, dict.fromkeys(c, "S"))
                j, m = r.index(q), list(c)
                if transfers:
                    blocks = pay[j, m].sum() > pay[k, m].sum() + tol
                else:
                    blocks = bool(np.all(pay[j, m] > pay[k, m] + tol))
                core = core and not blocks
        assert r.core_stable[k] == core


@settings(max_examples=30, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)),
    gamma=st.floats(0.0, 1.0),
    beta=st.floats(0.05, 2.0),
)
def test_duopoly_structures(sizes: tuple[int, int], gamma: float, beta: float) -> None:
    model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma)
    full = full_sharing(model, sizes)
    ntu = coalition_structures(model, sizes)
    tu = coalition_structures(model, sizes, transfers=True)
    grand = ntu.index([[0, 1]])
    # without transfers the pair forms (core and Nash stable) iff both gain
    assert ntu.core_stable[grand] == full.unanimous
    # with transfers it forms iff the joint profit rises
    joint = full.profit_shared.sum() > full.profit_alone.sum()
    assert tu.core_stable[grand] == joint
    assert tu.individually_rational[grand] == joint or np.isclose(
        full.profit_shared.sum(), full.profit_alone.sum()
    )


def test_symmetric_firms_and_exclusion() -> None:
    """Symmetric firms: the grand coalition is individually rational and Nash stable, and
    core stable for two firms; with four firms three of them gain more by sharing among
    themselves and excluding the fourth, so the grand coalition is not in the core."""
    model = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.7, kappa=0.1)
    for transfers in (False, True):
        pair = coalition_structures(model, [300, 300], transfers=transfers)
        assert pair.stable("core") == [((0, 1),)]
        r = coalition_structures(model, [300] * 4, transfers=transfers)
        grand = r.index([[0, 1, 2, 3]])
        assert r.nash_stable[grand] and r.individually_rational[grand]
        assert not r.core_stable[grand] and len(r.blocking[grand]) == 3
        three_and_one = [p for p in r.partitions if sorted(map(len, p)) == [1, 3]]
        assert r.stable("core") == ([] if transfers else three_and_one)


def test_analysis_reports_tu_and_structures() -> None:
    r = analyze([1000, 300, 100], gamma=0.2, beta=0.3, rule="egalitarian")
    data = r.to_dict()
    tu = data["transferable_utility"]
    assert tu["rule"] == "egalitarian"
    assert tu["shares"] == (tu["joint_profit_gain"] > 0)
    if tu["shares"]:
        assert sum(tu["side_payments"]) == pytest.approx(0.0, abs=1e-12)
        gains = np.array(tu["payoffs"]) - r.full.profit_alone
        np.testing.assert_allclose(gains, gains.mean())
    assert len(data["coalition_structures"]["with_transfers"]) == 5
    assert isinstance(r.decision, str)
    with pytest.raises(ValueError, match="parameter 'rule'"):
        coalition_structures(r.model, [1, 2], transfers=True, rule="shapley")
    with pytest.raises(ValueError, match="at most 7 firms"):
        coalition_structures(r.model, list(range(1, 10)))
