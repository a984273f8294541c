"""Full sharing by unanimity and Nash bargaining on the reconstructed duopoly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.competition import (
    LearningCurve,
    SharingModel,
    effective_sizes,
    full_sharing,
    full_sharing_threshold,
    nash_bargaining_sharing,
)

sizes_st = st.tuples(st.integers(10, 10_000), st.integers(10, 10_000)).filter(
    lambda s: s[0] != s[1]
)


def agrees_large(gamma: float, beta: float, sizes: tuple[int, int]) -> bool:
    full = full_sharing(SharingModel(LearningCurve(0, 1, beta), gamma=gamma), sizes)
    return bool(full.agrees[int(np.argmax(sizes))])


def test_effective_sizes() -> None:
    fractions = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    expected = np.array([[10.0, 20.0, 30.0], [20.0, 30.0, 50.0]])
    np.testing.assert_allclose(effective_sizes([10, 20, 30], fractions), expected)


@settings(max_examples=40, deadline=None)
@given(sizes=sizes_st, gamma=st.floats(0.0, 1.0), beta=st.floats(0.05, 2.0))
def test_closed_form_matches_numerical_decision(
    sizes: tuple[int, int], gamma: float, beta: float
) -> None:
    threshold = full_sharing_threshold(LearningCurve(0, 1, beta), sizes)
    if abs(gamma - threshold) > 1e-9:
        assert agrees_large(gamma, beta, sizes) == (gamma < threshold)


@settings(max_examples=40, deadline=None)
@given(
    sizes=sizes_st,
    gammas=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    beta=st.floats(0.05, 2.0),
)
def test_less_similar_products_foster_sharing(
    sizes: tuple[int, int], gammas: tuple[float, float], beta: float
) -> None:
    low, high = sorted(gammas)
    if agrees_large(high, beta, sizes):
        assert agrees_large(low, beta, sizes)


@settings(max_examples=40, deadline=None)
@given(
    sizes=sizes_st,
    gamma=st.floats(0.0, 1.0),
    betas=st.tuples(st.floats(0.05, 2.0), st.floats(0.05, 2.0)),
)
def test_harder_tasks_foster_sharing(
    sizes: tuple[int, int], gamma: float, betas: tuple[float, float]
) -> None:
    low, high = sorted(betas)
    if agrees_large(gamma, high, sizes):
        assert agrees_large(gamma, low, sizes)
    # the threshold 2R falls with beta
    curve_low, curve_high = LearningCurve(0, 1, low), LearningCurve(0, 1, high)
    assert full_sharing_threshold(curve_low, sizes) >= full_sharing_threshold(curve_high, sizes)


@settings(max_examples=30, deadline=None)
@given(
    sizes=sizes_st,
    size=st.integers(1, 10_000),
    gamma=st.floats(0.0, 1.0),
    beta=st.floats(0.05, 2.0),
    market=st.sampled_from(["cournot", "bertrand"]),
)
def test_equal_sizes_share_and_the_smaller_firm_agrees(
    sizes: tuple[int, int], size: int, gamma: float, beta: float, market: str
) -> None:
    gamma = min(gamma, 0.95) if market == "bertrand" else gamma
    model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma, market=market)
    assert full_sharing(model, [size, size]).unanimous
    if market == "cournot":
        assert full_sharing(model, sizes).agrees[int(np.argmin(sizes))]


def test_nash_bargaining_duopoly() -> None:
    fractions = {}
    for gamma in (0.1, 0.5, 0.9):
        for beta in (0.3, 0.8):
            model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma)
            bargain = nash_bargaining_sharing(model, [1000, 100])
            assert bargain.agreement and bargain.converged
            assert bargain.max_perturbation_gain <= 1e-9
            assert np.all(bargain.gains > 0)
            # the smaller firm shares everything, the larger a fraction
            assert bargain.fractions[1] == pytest.approx(1.0)
            assert 0 < bargain.fractions[0] < 1
            fractions[gamma, beta] = bargain.fractions[0]
    # the larger firm's fraction falls as gamma and beta rise
    assert fractions[0.1, 0.3] > fractions[0.5, 0.3] > fractions[0.9, 0.3]
    assert fractions[0.1, 0.3] > fractions[0.1, 0.8]


def test_nash_bargaining_beats_dense_brute_force() -> None:
    model = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.3)
    sizes = np.array([400.0, 100.0])
    bargain = nash_bargaining_sharing(model, sizes)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 301), np.linspace(0, 1, 301)), -1).reshape(-1, 2)
    gains = model.profits(sizes, grid) - bargain.disagreement
    ok = np.all(gains > 0, axis=1)
    brute = np.max(np.log(gains[ok]).sum(axis=1))
    assert np.log(bargain.gains).sum() >= brute - 1e-12


def test_batch_profits_match_equilibria() -> None:
    rng = np.random.default_rng(0)
    for market, gamma in (("cournot", 1.0), ("bertrand", 0.97)):
        model = SharingModel(LearningCurve(0, 1, 0.4), gamma=gamma, market=market, kappa=0.9)
        sizes = [5.0, 50.0, 500.0]
        lam = rng.random((20, 3))
        batch = model.profits(sizes, lam)
        slow = np.array([model.equilibrium(sizes, row).profits for row in lam])
        np.testing.assert_allclose(batch, slow, rtol=1e-10, atol=1e-14)


def test_bad_inputs() -> None:
    curve = LearningCurve(0, 1, 0.5)
    with pytest.raises(ValueError, match="parameter 'market' must be one of"):
        SharingModel(curve, gamma=0.5, market="monopoly")
    with pytest.raises(ValueError, match="parameter 'gamma' must be < 1"):
        SharingModel(curve, gamma=1.0, market="bertrand")
    with pytest.raises(ValueError, match="parameter 'kappa'"):
        SharingModel(curve, gamma=0.5, kappa=-1.0)
    with pytest.raises(ValueError, match="parameter 'sizes' must hold at least 2"):
        full_sharing(SharingModel(curve, gamma=0.5), [100])
    with pytest.raises(ValueError, match="parameter 'sizes' must hold exactly 2"):
        full_sharing_threshold(curve, [1, 2, 3])


@settings(max_examples=15, deadline=None)
@given(sizes=sizes_st, gamma=st.floats(0.0, 1.0), beta=st.floats(0.1, 1.5))
def test_nash_bargaining_property(sizes: tuple[int, int], gamma: float, beta: float) -> None:
    model = SharingModel(LearningCurve(0, 1, beta), gamma=gamma)
    bargain = nash_bargaining_sharing(model, sizes)
    assert bargain.converged
    rng = np.random.default_rng(0)
    samples = rng.random((5000, 2)) ** 4  # dense near 0, where the large firm's share lies
    gains = model.profits(sizes, samples) - bargain.disagreement
    ok = np.all(gains > 0, axis=1)
    if not bargain.agreement:
        assert not ok.any()
        return
    assert bargain.fractions[int(np.argmin(sizes))] == pytest.approx(1.0, abs=1e-6)
    if ok.any():
        assert np.log(bargain.gains).sum() >= np.log(gains[ok]).sum(axis=1).max() - 1e-12


def test_three_firms_against_random_search() -> None:
    sizes = np.array([1000.0, 300.0, 100.0])
    model = SharingModel(LearningCurve(0, 1, 0.3), gamma=0.1)
    bargain = nash_bargaining_sharing(model, sizes)
    assert bargain.agreement and bargain.converged and np.all(bargain.gains > 0)
    samples = np.random.default_rng(1).random((20000, 3))
    gains = model.profits(sizes, samples) - bargain.disagreement
    ok = np.all(gains > 0, axis=1)
    assert np.log(bargain.gains).sum() >= np.log(gains[ok]).sum(axis=1).max()
