"""Certified equilibria and optima, and the market competition model of the round game.

The brute-force checks recompute utilities from the spec's closed form (linear model),
independently of the package, on fine grids.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from coopml.competition import cournot_equilibrium
from coopml.federated.game import (
    AccuracyCurve,
    MarketCompetition,
    RoundGame,
    deviation_gains,
    nash_equilibrium,
    potential,
    redistribution,
    social_optimum,
    utilities,
    weights,
)

CURVE = AccuracyCurve(A_max=0.95, a=2.0, b=0.5)
BASE = dict(n=[100.0, 200.0, 150.0], theta=[1.0, 1.5, 1.0], kappa=0.8, s_max=500.0)

# (h0, gamma, c, mu): mu = 0, or organisations without skew (all-or-nothing responses)
DEGENERATE = [
    ([0.5, 0.2, 0.3], 0.3, 1e-4, 0.0),
    ([0.5, 0.2, 0.3], 0.75, 1e-4, 0.0),
    ([0.5, 0.5, 0.5], 0.0, 1e-4, 0.0),
    ([0.0, 0.3, 0.0], 0.0, 3e-5, 0.1),
    ([0.0, 0.0, 0.0], 0.3, 6e-5, 0.1),
    ([0.0, 0.0, 0.0], 0.75, 6e-5, 0.1),
]


def spec_utilities(g: RoundGame, S: np.ndarray) -> np.ndarray:
    """u_i = theta_i A_i - gamma_i/(N-1) sum_{j!=i} theta_j A_j - c_i s_i, rows of S."""
    n, h0, theta = np.asarray(g.n), np.asarray(g.h0), np.asarray(g.theta)
    gamma, c = np.asarray(g.gamma), np.asarray(g.c)
    E = np.sum(n * (1 - h0)) + g.kappa * S.sum(axis=1)
    A = (CURVE.A_max - CURVE.a * E ** (-CURVE.b))[:, None] - g.mu * h0 * n / (n + S)
    tA = theta * A
    others = (tA.sum(axis=1, keepdims=True) - tA) / (g.N - 1)
    return tA - gamma * others - c * S


def brute_deviation_gain(g: RoundGame, s: np.ndarray, n_grid: int = 4001) -> float:
    u = spec_utilities(g, s[None, :])[0]
    best = 0.0
    for i in range(g.N):
        S = np.repeat(s[None, :], n_grid, axis=0)
        S[:, i] = np.linspace(0.0, float(np.asarray(g.s_max)[i]), n_grid)
        best = max(best, float(spec_utilities(g, S)[:, i].max() - u[i]))
    return best


def brute_best_welfare(g: RoundGame, n_grid: int = 61) -> float:
    axes = [np.linspace(0.0, float(m), n_grid) for m in np.asarray(g.s_max)]
    S = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, g.N)
    return float(spec_utilities(g, S).sum(axis=1).max())


def degenerate_game(h0: list[float], gamma: float, c: float, mu: float) -> RoundGame:
    return RoundGame(h0=h0, gamma=gamma, c=c, mu=mu, curve=CURVE, **BASE)  # type: ignore[arg-type]


@pytest.mark.parametrize(("h0", "gamma", "c", "mu"), DEGENERATE)
def test_degenerate_equilibrium_is_certified(
    h0: list[float], gamma: float, c: float, mu: float
) -> None:
    g = degenerate_game(h0, gamma, c, mu)
    ne = nash_equilibrium(g)
    assert ne.converged
    assert ne.max_deviation_gain <= 1e-9
    # independent check: nobody gains on a fine grid with the spec's utilities
    assert brute_deviation_gain(g, ne.s) <= 1e-8


@pytest.mark.parametrize(("h0", "gamma", "c", "mu"), DEGENERATE)
def test_degenerate_optimum_beats_equilibrium_and_grid(
    h0: list[float], gamma: float, c: float, mu: float
) -> None:
    g = degenerate_game(h0, gamma, c, mu)
    so, ne = social_optimum(g), nash_equilibrium(g)
    assert so.converged
    assert so.social_welfare >= ne.social_welfare - 1e-12
    assert so.social_welfare >= brute_best_welfare(g) - 1e-12
    assert so.welfare_check <= so.social_welfare + 1e-9


def test_uncertified_profile_is_reported() -> None:
    g = degenerate_game([0.5, 0.2, 0.3], 0.3, 1e-4, 0.0)
    gains = deviation_gains(g, [0.0, 500.0, 0.0])  # the corner the fixed point used to return
    assert gains.max() == pytest.approx(brute_deviation_gain(g, np.array([0.0, 500.0, 0.0])))
    assert gains.max() > 1e-3


def test_linear_model_is_the_default_and_unchanged() -> None:
    # reference values from the implementation before the competition models existed
    g = RoundGame(
        n=[120, 300, 80], h0=[0.6, 0.2, 0.7], theta=[1.0, 1.5, 1.0], gamma=[0.5, 0.3, 0.5],
        c=2e-4, kappa=0.9, mu=0.5, s_max=600, curve=AccuracyCurve(0.95, 0.9, 0.5),
        competition="linear",
    )  # fmt: skip
    default = RoundGame(**{k: getattr(g, k) for k in ("n", "h0", "theta", "gamma", "c", "kappa",
                                                       "mu", "s_max", "curve")})  # fmt: skip
    np.testing.assert_array_equal(default.payoff_matrix, g.payoff_matrix)
    rng = np.random.default_rng(0)
    S = rng.uniform(0, 600, (20, 3))
    np.testing.assert_allclose(
        np.array([utilities(g, s) for s in S]), spec_utilities_curve(g, S), rtol=1e-12
    )
    np.testing.assert_allclose(
        nash_equilibrium(g).s, [309.2050955, 192.7318768, 298.5233147], rtol=1e-8
    )
    np.testing.assert_allclose(
        social_optimum(g).s, [241.2949044, 68.7450677, 238.6321557], rtol=1e-8
    )
    np.testing.assert_allclose(
        redistribution(g).transfers, [-0.0042941525, 0.0096390397, -0.0053448873], atol=1e-9
    )


def spec_utilities_curve(g: RoundGame, S: np.ndarray) -> np.ndarray:
    n, h0, theta = np.asarray(g.n), np.asarray(g.h0), np.asarray(g.theta)
    gamma, c = np.asarray(g.gamma), np.asarray(g.c)
    E = np.sum(n * (1 - h0)) + g.kappa * S.sum(axis=1)
    A = np.asarray(g.curve(E))[:, None] - g.mu * h0 * n / (n + S)
    tA = theta * A
    return tA - gamma * (tA.sum(axis=1, keepdims=True) - tA) / (g.N - 1) - c * S


def market_game(seed: int, market: str = "cournot") -> RoundGame:
    rng = np.random.default_rng(seed)
    N = int(rng.integers(2, 6))
    return RoundGame(
        n=rng.integers(50, 400, N).astype(float),
        h0=rng.uniform(0.0, 0.8, N),
        theta=rng.uniform(0.5, 2.0, N),
        gamma=float(rng.uniform(0.0, 0.9)),
        c=rng.uniform(1e-5, 3e-4, N),
        kappa=float(rng.uniform(0.3, 1.0)),
        mu=float(rng.uniform(0.0, 0.5)),
        s_max=rng.uniform(100, 800, N),
        curve=AccuracyCurve(
            float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.5, 2)), float(rng.uniform(0.4, 1))
        ),
        competition=MarketCompetition(market),
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    market=st.sampled_from(["cournot", "bertrand"]),
    data=st.data(),
)
def test_market_model_is_a_weighted_potential_game(
    seed: int, market: str, data: st.DataObject
) -> None:
    try:
        g = market_game(seed, market)
    except ValueError:  # a firm would exit the market at these accuracies
        assume(False)
        raise
    s_max = np.asarray(g.s_max)
    s = np.random.default_rng(seed + 1).uniform(0, 1, g.N) * s_max
    i = data.draw(st.integers(0, g.N - 1))
    s2 = s.copy()
    s2[i] = data.draw(st.floats(0, 1)) * s_max[i]
    lhs = potential(g, s2) - potential(g, s)
    rhs = (utilities(g, s2)[i] - utilities(g, s)[i]) / weights(g)[i]
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.4, 0.9])
def test_market_weights_follow_cournot_closed_form(gamma: float) -> None:
    # symmetric firms: own weight / potential weight = (2 + (N-2) gamma) / (2 - gamma)
    N = 4
    g = RoundGame(
        n=np.full(N, 200.0), h0=np.full(N, 0.3), theta=1.0, gamma=gamma, c=1e-4, kappa=0.9,
        mu=0.3, s_max=400.0, curve=CURVE, competition="market",
    )  # fmt: skip
    ratio = np.diag(g.payoff_matrix) / weights(g)
    np.testing.assert_allclose(ratio, (2 + (N - 2) * gamma) / (2 - gamma), rtol=1e-7)


def test_market_utilities_linearise_cournot_profits() -> None:
    g = RoundGame(curve=CURVE, h0=[0.5, 0.2, 0.3], gamma=0.5, c=1e-4, mu=0.3, **BASE)  # type: ignore[arg-type]
    g = g.replace(competition="market")
    A0 = float(g.curve(g.E0)) - g.mu * np.asarray(g.h0)
    theta = np.asarray(g.theta)
    ne = nash_equilibrium(g)
    A = float(g.curve(ne.E)) - g.mu * np.asarray(g.skew_map(ne.s, g.h0, g.n))
    exact = cournot_equilibrium(1.0, 1.0 - A, float(np.asarray(g.gamma)[0])).profits
    u_exact = theta / (A0 / 2) * exact - np.asarray(g.c) * ne.s
    # first-order expansion: the error is second order in the accuracy change
    err = np.abs(ne.utilities - u_exact)
    assert np.max(np.abs(A - A0)) > 0.01
    assert np.all(err <= 2 * np.max(np.abs(A - A0)) ** 2 * theta / (A0 / 2))
    assert np.all(err > 0)
    at_A0 = cournot_equilibrium(1.0, 1.0 - A0, float(np.asarray(g.gamma)[0])).profits
    np.testing.assert_allclose(
        utilities(g, np.zeros(g.N), global_accuracy=float(g.curve(g.E0))),
        theta / (A0 / 2) * at_A0,
        rtol=1e-9,
    )


def test_market_and_linear_agree_without_rivalry() -> None:
    lin = RoundGame(curve=CURVE, h0=[0.5, 0.2, 0.3], gamma=0.0, c=1e-4, mu=0.3, **BASE)  # type: ignore[arg-type]
    mkt = lin.replace(competition="market")
    np.testing.assert_allclose(mkt.payoff_matrix, lin.payoff_matrix, atol=1e-8)
    np.testing.assert_allclose(nash_equilibrium(mkt).s, nash_equilibrium(lin).s, rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_market_equilibrium_optimum_and_transfers(seed: int) -> None:
    g = market_game(seed)
    ne, so = nash_equilibrium(g), social_optimum(g)
    assert ne.converged and so.converged
    assert so.social_welfare >= ne.social_welfare - 1e-12
    r = redistribution(g, optimum=so, equilibrium=ne)
    assert abs(r.budget_balance) <= 1e-9 and r.individually_rational
    for i in range(g.N):  # with sigma_i * s_i the optimum is an equilibrium
        base = utilities(g, so.s)[i] + r.sigma[i] * so.s[i]
        for x in np.linspace(0, np.asarray(g.s_max)[i], 81):
            s = so.s.copy()
            s[i] = x
            assert utilities(g, s)[i] + r.sigma[i] * x <= base + 1e-9


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"competition": "quadratic"}, "'competition'"),
        ({"competition": "market", "gamma": [0.2, 0.4]}, "'gamma' must be equal"),
        ({"competition": MarketCompetition("bertrand"), "gamma": 1.0}, "< 1 for Bertrand"),
        ({"competition": object()}, "'competition' must be"),
    ],
)
def test_competition_validation(change: dict[str, object], match: str) -> None:
    params: dict[str, object] = dict(
        n=[100.0, 100.0], h0=[0.2, 0.3], theta=[1.0, 1.0], gamma=0.1, c=1e-4, kappa=0.5,
        mu=0.2, s_max=100.0, curve=CURVE,
    )  # fmt: skip
    params.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        RoundGame(**params)  # type: ignore[arg-type]
