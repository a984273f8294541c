"""Pareto sets of the subgame-perfect utility curve: unions of intervals and isolated
points, checked against analytic references and a brute-force non-dominated filter; the
max-performance solution's rule (it picks among Pareto-optimal shares)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, minimize_scalar

from coopml.bargaining import ParetoSet, pareto_mask
from coopml.finetuning import (
    FineTuningGame,
    LinearRevenue,
    PolynomialCost,
    Specialist,
    bargain,
    disconnected_pareto_game,
    quadratic_max_performance_share,
    solve_shares,
    subgame_perfect_equilibrium,
)

quad = PolynomialCost.quadratic


def one_specialist(c0: float = 1.0, c1: float = 2.0, linear: float = 0.0, fixed: float = 0.05):
    return FineTuningGame(
        quad(c0), [Specialist(quad(c1, linear=linear, fixed=fixed), LinearRevenue(1.0))]
    )


def utilities(game: FineTuningGame, deltas) -> np.ndarray:
    deltas = np.asarray(deltas, dtype=np.float64)
    out = solve_shares(game, deltas[:, None] * np.ones(game.n_specialists))
    return np.column_stack([out["u_generalist"], out["u_specialists"]])


def entry_cost_reference() -> tuple[float, float, float]:
    """By hand (c0 = 1, c1 = 2, r = alpha, entry cost 0.05): the specialist adds
    x = (1 - d) / 4 and gets (1 - d) a0 + (1 - d)^2 / 8 - 0.05. Its surplus at the
    generalist's unconstrained a0 = d / 2 vanishes at d*; beyond, the generalist invests
    a0 = 0.05 / e - e / 8 (e = 1 - d) to keep it in. Returns (d*, argmax, max) of the
    generalist's utility on that over-investment branch."""
    d_star = brentq(lambda d: (1 - d) * d / 2 + (1 - d) ** 2 / 8 - 0.05, 0.5, 0.99)

    def u_g(d: float) -> float:
        e = 1 - d
        a0 = 0.05 / e - e / 8
        return d * (a0 + e / 4) - a0**2

    res = minimize_scalar(lambda d: -u_g(d), bounds=(d_star, 0.95), method="bounded")
    return d_star, float(res.x), -float(res.fun)


def test_entry_cost_gives_an_isolated_pareto_point():
    game = one_specialist()
    result = bargain(game)
    d_star, d_point, u_point = entry_cost_reference()
    pareto = result.pareto_set
    assert isinstance(pareto, ParetoSet)
    assert len(pareto.intervals) == 1 and len(pareto.points) == 1
    (low, high), point = pareto.intervals[0], pareto.points[0]
    assert low == pytest.approx(1 / 3, abs=1e-6)
    assert high == pytest.approx(d_star, abs=1e-6)  # open at d*: the share just below
    assert point == pytest.approx(d_point, abs=1e-6)
    assert abs(point - 0.8975) < 1e-3
    u = utilities(game, [point])[0]
    assert u[0] == pytest.approx(0.22369, abs=1e-5) and u[0] == pytest.approx(u_point, abs=1e-9)
    assert u[1] == pytest.approx(0.0, abs=1e-12)
    # the point beats the generalist's utility at every share where the specialist gains
    assert u[0] > utilities(game, [high])[0, 0] + 5e-4
    assert pareto.contains(point) and not pareto.contains(0.895) and not pareto.contains(0.9)
    # every output shows the point: JSON, the mask (none of the grid shares), the string
    out = json.loads(json.dumps(result.to_dict()))["pareto_set"]
    assert out == [[low, high], [point, point]]
    assert str(pareto) == "[0.3333, 0.8911] ∪ {0.8980}"
    # Kalai-Smorodinsky's ideal point is the generalist's utility at the isolated point
    ideal = result.solutions["kalai_smorodinsky"].bargaining.info["ideal"]
    assert ideal[0] == pytest.approx(u_point, abs=1e-9)


def test_linear_cost_gives_the_analogous_isolated_point():
    # phi = 0.05 + 0.2 x + 2 x^2: the specialist free-rides for d >= 0.8, needs
    # (1 - d) a0 >= 0.05, so the generalist over-invests a0 = 0.05 / (1 - d) beyond
    # d* = (1 + sqrt(0.6)) / 2, where U_G = 0.05 / e - 0.05 - 0.0025 / e^2 peaks at e = 0.1
    game = one_specialist(linear=0.2)
    pareto = bargain(game).pareto_set
    assert len(pareto.intervals) == 1 and len(pareto.points) == 1
    np.testing.assert_allclose(pareto.intervals[0], [0.4, (1 + np.sqrt(0.6)) / 2], atol=1e-6)
    assert pareto.points[0] == pytest.approx(0.9, abs=1e-6)
    np.testing.assert_allclose(utilities(game, pareto.points), [[0.2, 0.0]], atol=1e-9)
    assert str(pareto) == "[0.4000, 0.8873] ∪ {0.9000}"


def dominated_by(u: np.ndarray, V: np.ndarray, tol: float) -> np.ndarray:
    """For each row of u: does some row of V weakly improve it and beat it by > tol?
    (Weakly: exactly, so that a share just inside an open end of the Pareto set, where a
    player's gain is tiny but positive, is not counted as dominated.)"""
    ge = np.all(V[None, :, :] >= u[:, None, :], axis=2)
    gt = np.any(V[None, :, :] > u[:, None, :] + tol, axis=2)
    return np.any(ge & gt, axis=1)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    c0=st.floats(0.5, 2.0),
    c1=st.floats(0.5, 3.0),
    linear=st.sampled_from([0.0, 0.1, 0.25]),
    fixed=st.sampled_from([0.0, 0.02, 0.05]),
)
def test_reported_pareto_set_matches_a_brute_force_filter(c0, c1, linear, fixed):
    game = one_specialist(c0, c1, linear, fixed)
    pareto = bargain(game, n_grid=401).pareto_set
    grid = np.linspace(0.0, 1.0, 2001)
    V = utilities(game, grid)
    tol = 1e-8 * max(float(np.abs(V).max()), 1e-12)
    # every reported share (interval ends and insides, isolated points) is not dominated
    reported = np.concatenate(
        [*(np.linspace(a, b, 7) for a, b in pareto.intervals), np.array(pareto.points)]
    )
    assert reported.size
    assert not np.any(dominated_by(utilities(game, reported), V, tol))
    # every grid share no other grid share dominates lies in the set, up to the spacing
    spacing = grid[1] - grid[0]
    for t in grid[pareto_mask(V, tol=tol)]:
        assert pareto.contains(float(t), tol=1.01 * spacing), (t, str(pareto))


def test_max_performance_picks_among_pareto_shares():
    game = one_specialist()
    result = bargain(game)
    best = result.solutions["max_performance"]
    # over all of [0, 1], performance peaks where the generalist is just indifferent
    # between over-investing and not building: both players get (about) nothing there
    grid = np.linspace(0.0, 1.0, 4001)
    out = solve_shares(game, grid)
    k = int(np.argmax(out["alpha"].sum(axis=1)))
    assert out["u_generalist"][k] < 0.01 * 0.22369 and out["u_specialists"][k, 0] < 1e-12
    # the solution is a Pareto-optimal share where not both get zero, with the largest
    # performance over the Pareto set (here the isolated point)
    assert best.pareto_optimal and best.equilibrium.u_generalist > 0.2
    assert best.delta == pytest.approx(result.pareto_set.points[0], abs=1e-12)
    inside = np.array([result.pareto_set.contains(float(t)) for t in grid])
    assert best.equilibrium.performance >= out["alpha"].sum(axis=1)[inside].max() - 1e-12
    eq = subgame_perfect_equilibrium(game, best.delta)
    assert eq.performance == pytest.approx(best.equilibrium.performance)


def test_max_performance_ties_go_to_the_largest_welfare():
    # equal costs: every share gives the same performance; the largest welfare is 1/2
    game = FineTuningGame.quadratic(1.0, 1.0, 1.0)
    numeric = bargain(game, method="numerical", n_grid=201)
    best = numeric.solutions["max_performance"]
    assert best.delta == pytest.approx(quadratic_max_performance_share(1.0, 1.0), abs=1e-12)
    assert best.pareto_optimal
    # per-domain shares: the best lattice point is Pareto optimal too
    lattice = bargain(disconnected_pareto_game(), shares="per_domain", n_grid=6)
    best = lattice.solutions["max_performance"]
    assert best.pareto_optimal and best.equilibrium.welfare > 0
    performance = lattice.performance[lattice.pareto_mask]
    assert best.equilibrium.performance == pytest.approx(performance.max())
