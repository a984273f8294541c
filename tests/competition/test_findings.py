"""The seed's findings as properties over random parameters (reconstructed model).

Tsoy & Konstantinov (NeurIPS 2023): less similar products and harder learning tasks
(smaller beta) foster data sharing. In the reconstruction, symmetric firms always share
and the smaller firm always wants full sharing. Checked for both markets and both
quality channels, with any number of firms where the statement is general.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coopml.competition import LearningCurve, SharingModel, full_sharing

markets = st.sampled_from([("cournot", "cost"), ("bertrand", "cost"), ("cournot", "demand")])
sizes_st = st.tuples(st.integers(1, 100_000), st.integers(1, 100_000)).filter(
    lambda s: s[0] != s[1]
)


def model(gamma: float, beta: float, market: tuple[str, str], **kw: float) -> SharingModel:
    name, quality = market
    gamma = min(gamma, 0.98) if name == "bertrand" else gamma
    return SharingModel(LearningCurve(0, 1, beta), gamma=gamma, market=name, quality=quality, **kw)


def large_agrees(
    sizes: tuple[int, int], gamma: float, beta: float, market: tuple[str, str]
) -> bool:
    return bool(full_sharing(model(gamma, beta, market), sizes).agrees[int(np.argmax(sizes))])


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_st,
    gammas=st.tuples(st.floats(0.0, 0.98), st.floats(0.0, 0.98)),
    beta=st.floats(0.02, 3.0),
    market=markets,
)
def test_lower_similarity_fosters_sharing(
    sizes: tuple[int, int], gammas: tuple[float, float], beta: float, market: tuple[str, str]
) -> None:
    low, high = sorted(gammas)
    if large_agrees(sizes, high, beta, market):
        assert large_agrees(sizes, low, beta, market)


@settings(max_examples=60, deadline=None)
@given(
    sizes=sizes_st,
    gamma=st.floats(0.0, 0.98),
    betas=st.tuples(st.floats(0.02, 3.0), st.floats(0.02, 3.0)),
    market=markets,
)
def test_harder_tasks_foster_sharing(
    sizes: tuple[int, int], gamma: float, betas: tuple[float, float], market: tuple[str, str]
) -> None:
    hard, easy = sorted(betas)
    if large_agrees(sizes, gamma, easy, market):
        assert large_agrees(sizes, gamma, hard, market)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 6),
    size=st.integers(1, 100_000),
    gamma=st.floats(0.0, 1.0),
    beta=st.floats(0.02, 3.0),
    market=markets,
)
def test_symmetric_firms_always_share(
    n: int, size: int, gamma: float, beta: float, market: tuple[str, str]
) -> None:
    curve = LearningCurve(0, 1, beta)
    # The gain must be representable: at n^-beta below ~1e-12 pooling changes profits by
    # less than float resolution, and ties are decided by rounding.
    assume(float(curve(size)) - float(curve(n * size)) > 1e-9)
    m = model(gamma, beta, market, kappa=0.5 / n)
    full = full_sharing(m, [size] * n)
    assert full.unanimous
    assert np.all(full.profit_shared > full.profit_alone)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 100_000), min_size=2, max_size=6, unique=True),
    gamma=st.floats(0.0, 1.0),
    beta=st.floats(0.02, 3.0),
    market=markets,
)
def test_the_smallest_firm_always_wants_full_sharing(
    sizes: list[int], gamma: float, beta: float, market: tuple[str, str]
) -> None:
    m = model(gamma, beta, market, kappa=0.5 / len(sizes))
    assert full_sharing(m, sizes).agrees[int(np.argmin(sizes))]


@settings(max_examples=40, deadline=None)
@given(
    sizes=sizes_st,
    gamma=st.floats(0.0, 0.98),
    beta=st.floats(0.02, 3.0),
    kappa=st.floats(0.0, 0.45),
    name=st.sampled_from(["cournot", "bertrand"]),
)
def test_quality_channels_give_the_same_decisions(
    sizes: tuple[int, int], gamma: float, beta: float, kappa: float, name: str
) -> None:
    """Linear demand: only a_i - c_i matters, so cost and demand channels agree on
    profits and decisions; prices are lower by kappa * eps under the demand channel."""
    cost = SharingModel(LearningCurve(0, 1, beta), gamma=gamma, market=name, kappa=kappa)
    demand = SharingModel(
        LearningCurve(0, 1, beta), gamma=gamma, market=name, kappa=kappa, quality="demand"
    )
    a, b = full_sharing(cost, sizes), full_sharing(demand, sizes)
    np.testing.assert_allclose(a.profit_alone, b.profit_alone, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(a.profit_shared, b.profit_shared, rtol=1e-9, atol=1e-15)
    eq_cost, eq_demand = cost.equilibrium(sizes, [0, 0]), demand.equilibrium(sizes, [0, 0])
    eps = cost.curve(np.asarray(sizes, float))
    np.testing.assert_allclose(eq_demand.prices, eq_cost.prices - kappa * eps, atol=1e-12)
