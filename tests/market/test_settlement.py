"""The pure settlement core: the paper's formulas, invariants, verification."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coopml.market import PAYMENT_RULES, Settlement, Task, market_characteristic, settle


def _shapley(v):
    n = v.size.bit_length() - 1
    phi = np.zeros(n)
    for order in itertools.permutations(range(n)):
        S = 0
        for i in order:
            phi[i] += v[S | 1 << i] - v[S]
            S |= 1 << i
    return phi / math.factorial(n)


def _single(g, rule="ohrimenko", price=1.0, **kw):
    n = g.size.bit_length() - 1
    everyone = tuple(range(n))
    tasks = [Task(i, everyone, g) for i in range(n)]
    return settle([f"p{i}" for i in range(n)], tasks, rule, price, mode="single", **kw)


gain_tables = st.integers(1, 5).flatmap(
    lambda n: arrays(np.float64, 1 << n, elements=st.floats(0.0, 1.0))
)


def test_characteristic_function_matches_its_definition():
    rng = np.random.default_rng(0)
    g = rng.uniform(size=16)
    v = market_characteristic(g)
    for S in range(16):
        members = [j for j in range(4) if S >> j & 1]
        assert v[S] == pytest.approx(g[S] + sum(g[S] - g[1 << j] for j in members))


@settings(max_examples=60, deadline=None)
@given(g=gain_tables, price=st.floats(0.1, 10.0))
def test_single_task_is_the_papers_rule(g, price):
    n = g.size.bit_length() - 1
    s = _single(g, price=price)
    own = g[1 << np.arange(n)]
    a = g[-1] - own
    phi = _shapley(market_characteristic(g))
    lines = s.parties
    np.testing.assert_allclose([p.fee for p in lines], price * (1 - own), atol=1e-12)
    np.testing.assert_allclose([p.improvement for p in lines], a, atol=1e-12)
    pot = price * a.sum()
    scale = max(1.0, np.abs(phi).max())
    if pot > 1e-9 and phi.sum() > 1e-9 and np.all(phi >= -1e-12 * scale):
        # the paper's rule exactly, whenever it pays no negative amount
        psi = phi / phi.sum()
        np.testing.assert_allclose([p.payout for p in lines], pot * psi, atol=1e-9)
        np.testing.assert_allclose(
            [p.net_gain for p in lines], price * (psi * a.sum() - a), atol=1e-9
        )
        assert s.flags == ()
    assert all(p.payout >= -1e-12 for p in lines)
    assert s.checks["balanced"] and s.checks["nonnegative_payouts"]
    assert abs(s.checks["balance_error"]) <= 1e-9 * max(1.0, price * np.abs(a).sum())


@settings(max_examples=60, deadline=None)
@given(g=gain_tables, rule=st.sampled_from([r for r in PAYMENT_RULES if r != "similarity_shapley"]))
def test_every_rule_balances_and_verifies(g, rule):
    s = _single(g, rule)
    assert s.checks["balanced"]
    assert s.verify().ok
    fees = sum(p.fee for p in s.parties)
    assert sum(p.payoff for p in s.parties) == pytest.approx(fees, abs=1e-9)


def test_worked_example_and_individual_rationality_report():
    g = np.array([0.5, 0.6, 0.7, 0.9])
    s = _single(g)
    a, b = s.parties
    assert (a.fee, b.fee) == pytest.approx((0.4, 0.3))
    assert (a.improvement, b.improvement) == pytest.approx((0.3, 0.2))
    # shares of the market's game: phi = (0.4, 0.5) -> (4/9, 5/9) of a = 0.5
    assert (a.payout, b.payout) == pytest.approx((0.5 * 4 / 9, 0.5 * 5 / 9))
    assert not s.checks["individually_rational"]
    report = s.checks["ir_report"]
    assert [r["name"] for r in report] == ["p0"]
    assert report[0]["net_gain"] == pytest.approx(0.5 * 4 / 9 - 0.3)
    assert report[0]["reason"].startswith(
        "pays 0.3 for an improvement of +30 points but its data earns 0.2222: net -0.07778"
    )


def test_zero_element_buyer_gets_its_fee_back():
    # p0's own data already gives the full model's gain: no improvement.
    g = np.array([0.2, 0.9, 0.3, 0.9])
    s = _single(g)
    p0 = s.parties[0]
    assert p0.improvement == 0.0 and p0.payoff >= p0.fee
    assert s.checks["zero_element"]
    # p1's own model beats the pooled one (a negative improvement), so the pot is
    # negative. The paper's formulas would charge p0, which gains nothing, part of it;
    # coopml refunds a non-positive pot instead and flags the round.
    g = np.array([0.0, 0.9, 0.95, 0.9])
    s = _single(g, "shapley")
    assert s.parties[0].improvement == 0.0
    assert [p.payoff for p in s.parties] == pytest.approx([p.fee for p in s.parties])
    assert s.checks["zero_element"] and s.checks["zero_element_violations"] == []
    assert [f.code for f in s.flags] == ["no_positive_improvement"]
    assert s.verify().ok


def test_symmetry_check_uses_identical_groups():
    g = np.array([0.5, 0.7, 0.7, 0.9])
    assert _single(g, identical=[[0, 1]]).checks["symmetric"]
    g_asym = np.array([0.5, 0.7, 0.6, 0.9])
    s = _single(g_asym, identical=[[0, 1]])
    assert not s.checks["symmetric"] and s.checks["asymmetric_groups"] == [["p0", "p1"]]


def test_degenerate_shares_are_equal_and_reported():
    # Any two parties already reach the full model: every leave-one-out value is zero.
    g = np.array([0.0, 0.6, 0.6, 0.9, 0.6, 0.9, 0.9, 0.9])
    s = _single(g, "loo")
    assert [p.share for p in s.parties] == pytest.approx([1 / 3] * 3)
    assert s.checks["degenerate_tasks"] == ["p0", "p1", "p2"]


def test_round_trip_and_tamper_detection(tmp_path):
    rng = np.random.default_rng(1)
    s = _single(np.sort(rng.uniform(size=8)))  # a pooled model better than any own one
    s.save(tmp_path / "s.json")
    loaded = Settlement.load(tmp_path / "s.json")
    assert loaded.verify().ok and loaded.to_dict() == s.to_dict()
    record = s.to_dict()
    record["parties"][1]["payout"] += 0.01
    verdict = Settlement.from_dict(record).verify()
    assert not verdict.ok and any("p1: stored payout" in p for p in verdict.problems)
    record = s.to_dict()
    record["value_table"][3] = 0.0
    for task in record["tasks"]:
        task["value_table"][3] = 0.0
    assert not Settlement.from_dict(record).verify().ok
    record = s.to_dict()
    record["value_table"][3] = 0.0  # the shared copy no longer matches the tasks
    with pytest.raises(ValueError, match="value_table differs from the tasks' value tables"):
        Settlement.from_dict(record)
    record = s.to_dict()
    record["value_table"] = None
    record["tasks"][2]["value_table"][3] = 0.0  # one task's table no longer shared
    verdict = Settlement.from_dict(record).verify()
    assert not verdict.ok and "one task table shared by all" in verdict.problems[0]


def test_multi_task_settlement_divides_each_requesters_payment():
    g0 = np.array([0.0, 0.5, 0.0, 0.8])  # requester 0 uses {0, 1}
    g1 = np.array([0.0, 0.6])  # requester 1 alone
    s = settle(["a", "b"], [Task(0, (0, 1), g0), Task(1, (1,), g1)], "shapley")
    a, b = s.parties
    assert a.improvement == pytest.approx(0.3) and b.improvement == 0.0
    # Shapley on g0: phi = (0.65, 0.15) of 0.8 -> shares 13/16, 3/16 of a's 0.3
    assert (a.payout, b.payout) == pytest.approx((0.3 * 0.65 / 0.8, 0.3 * 0.15 / 0.8))
    assert b.members == ("b",) and a.members == ("a", "b")
    assert s.checks["balanced"] and s.verify().ok


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: _single(np.array([0.5, 0.6, 0.7, 0.9]), "bogus"), "'rule' must be one of"),
        (lambda: _single(np.array([0.5, 0.6, 0.7, 0.9]), price=0.0), "'price' must be finite"),
        (lambda: _single(np.array([0.5, 1.6, 0.7, 0.9])), r"gains must lie in \[0, 1\]"),
        (lambda: Task(0, (1,), np.zeros(2)), "members must include the requester"),
        (lambda: _single(np.array([0.5, 0.6, 0.7, 0.9]), "similarity_shapley"), "needs"),
        (
            lambda: settle(["a", "b"], [Task(0, (0,), np.zeros(2))]),
            "exactly one task per party",
        ),
        (lambda: Settlement.from_dict({"rule": "x"}), "not a coopml settlement record"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
