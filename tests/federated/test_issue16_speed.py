"""Issue 16: the vectorised certificates and the memoised round solutions.

Expected values come from the spec's closed form (linear model), independently of the
package, maximised per organisation with SciPy's bounded scalar search on a fine grid.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from coopml.federated.game import (
    AccuracyCurve,
    RoundGame,
    deviation_gains,
    nash_equilibrium,
    social_optimum,
    welfare_deviation_gains,
)
from coopml.federated.rounds import RoundEngine, play

CURVE = AccuracyCurve(A_max=0.95, a=2.0, b=0.5)


def _game(**changes) -> RoundGame:
    params = dict(
        n=[100.0, 200.0, 150.0, 80.0], h0=[0.5, 0.2, 0.3, 0.6], theta=[1.0, 1.5, 1.0, 2.0],
        gamma=[0.3, 0.1, 0.5, 0.2], c=[1e-4, 2e-4, 5e-5, 3e-4], kappa=0.8, mu=0.2,
        s_max=[500.0, 300.0, 800.0, 400.0], curve=CURVE,
    )  # fmt: skip
    params.update(changes)
    return RoundGame(**params)


def spec_utilities(g: RoundGame, S: np.ndarray) -> np.ndarray:
    n, h0, theta = np.asarray(g.n), np.asarray(g.h0), np.asarray(g.theta)
    gamma, c = np.asarray(g.gamma), np.asarray(g.c)
    E = np.sum(n * (1 - h0)) + g.kappa * S.sum(axis=1)
    A = (CURVE.A_max - CURVE.a * E ** (-CURVE.b))[:, None] - g.mu * h0 * n / (n + S)
    tA = theta * A
    others = (tA.sum(axis=1, keepdims=True) - tA) / (g.N - 1)
    return tA - gamma * others - c * S


def _line_max(g: RoundGame, s: np.ndarray, i: int, score) -> float:
    hi = float(np.asarray(g.s_max)[i])
    grid = np.linspace(0.0, hi, 2001)
    S = np.repeat(s[None, :], grid.size, axis=0)
    S[:, i] = grid
    vals = score(S)
    k = int(np.argmax(vals))

    def neg(x: float) -> float:
        row = s.copy()
        row[i] = x
        return -float(score(row[None, :])[0])

    res = minimize_scalar(
        neg, bounds=(grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]), method="bounded",
        options={"xatol": 1e-10},
    )  # fmt: skip
    return max(float(vals[k]), -float(res.fun))


def test_deviation_gains_match_an_independent_search_with_transfers():
    g = _game()
    s = np.array([50.0, 250.0, 10.0, 390.0])  # far from any equilibrium
    sigma = np.array([1e-4, -2e-4, 3e-4, 0.0])
    base = spec_utilities(g, s[None, :])[0] + sigma * s
    expected = [
        _line_max(g, s, i, lambda S, i=i: spec_utilities(g, S)[:, i] + sigma[i] * S[:, i]) - base[i]
        for i in range(g.N)
    ]
    got = deviation_gains(g, s, sigma=sigma)
    assert np.all(np.asarray(expected) > 1e-4)  # every organisation gains by deviating
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_welfare_deviation_gains_match_an_independent_search():
    g = _game()
    s = np.array([400.0, 0.0, 700.0, 5.0])
    base = float(spec_utilities(g, s[None, :])[0].sum())
    welfare = lambda S: spec_utilities(g, S).sum(axis=1)  # noqa: E731
    expected = np.maximum(0.0, [_line_max(g, s, i, welfare) - base for i in range(g.N)])
    np.testing.assert_allclose(welfare_deviation_gains(g, s), expected, rtol=1e-9, atol=1e-12)


def test_certified_solutions_keep_zero_gains():
    g = _game()
    ne, so = nash_equilibrium(g), social_optimum(g)
    assert ne.converged and so.converged
    assert ne.max_deviation_gain <= 1e-12 and so.max_deviation_gain <= 1e-12
    assert so.welfare_check <= so.social_welfare + 1e-9


def test_memoised_solutions_are_fresh_copies_and_keyed_by_every_parameter():
    g = _game()
    rng = np.random.default_rng(0)
    first = play("equilibrium", g, rng)
    reference = nash_equilibrium(g).s.copy()
    np.testing.assert_array_equal(first.s, reference)
    first.s[:] = -1.0  # a caller scribbling on its result
    again = play("equilibrium", g, rng)
    np.testing.assert_array_equal(again.s, reference)
    cheaper = _game(c=[5e-5, 2e-4, 5e-5, 3e-4])  # one cost changed: solved anew
    np.testing.assert_array_equal(play("equilibrium", cheaper, rng).s, nash_equilibrium(cheaper).s)
    assert not np.array_equal(nash_equilibrium(cheaper).s, reference)
    opt = play("mechanism", g, rng)
    np.testing.assert_array_equal(opt.s, social_optimum(g).s)


def test_rounds_with_an_unchanged_game_plan_the_same():
    eng = RoundEngine(
        "mechanism", theta=1.0, gamma=0.5, c=2e-4, s_max=300.0, kappa=0.9, mu=0.5,
        curve=CURVE, random_state=0,
    )  # fmt: skip
    args = ([0, 1, 2], [100.0, 120.0, 80.0], [0.5, 0.2, 0.6])
    plans = [eng.plan(t, *args) for t in range(3)]
    direct = social_optimum(plans[0].game)
    for plan in plans:
        np.testing.assert_array_equal(plan.synthetic, direct.s)
        assert plan.optimum is not None and plan.optimum.converged
