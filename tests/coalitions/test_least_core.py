"""Least core (LP + closest-to-Shapley tie-break) and core membership."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import additive_game, bankruptcy_game, glove_game
from coopml.coalitions.least_core import core_contains, least_core

least_core_module = importlib.import_module("coopml.coalitions.least_core")


def _dense_epsilon(v: np.ndarray) -> float:
    """Independent dense formulation of the least-core LP."""
    n = v.size.bit_length() - 1
    A = np.array([[S >> i & 1 for i in range(n)] for S in range(1, v.size - 1)], float)
    res = linprog(
        np.r_[np.zeros(n), 1.0],
        A_ub=np.c_[-A, -np.ones(len(A))],
        b_ub=-v[1:-1],
        A_eq=np.r_[np.ones(n), 0.0][None],
        b_eq=v[-1:],
        bounds=(None, None),
    )
    return float(res.fun)


def test_glove_game_core_is_a_point():
    result = least_core(glove_game(1, 2))
    np.testing.assert_allclose(result.values, [1.0, 0.0, 0.0], atol=1e-9)
    assert result.epsilon == pytest.approx(0.0, abs=1e-12)
    assert result.converged and result.method == "least_core" and result.n_evaluations == 8
    assert result.info["lp_status"] == 0 and result.info["lp_iterations"] >= 1
    assert result.info["distance_to_shapley"] == pytest.approx(np.sqrt(1 / 9 + 2 / 36))


def test_symmetric_majority_has_empty_core():
    # v = 1 for |S| >= 2: equal split leaves every pair an excess of 1/3
    game = CoalitionGame.from_function(3, lambda s: float(len(s) >= 2))
    result = least_core(game)
    assert result.epsilon == pytest.approx(1 / 3)
    np.testing.assert_allclose(result.values, [1 / 3] * 3)
    assert not core_contains(game, result.values)


def test_returns_shapley_when_it_is_in_the_least_core():
    result = least_core(additive_game([1.0, 2.0, 3.0]))  # least core = core = {w}
    np.testing.assert_allclose(result.values, [1.0, 2.0, 3.0])
    assert result.info["distance_to_shapley"] == pytest.approx(0.0, abs=1e-9)


def test_bankruptcy_least_core_is_projected_shapley():
    # E = 200, d = (100, 200, 300): the least core (epsilon = -50) is the segment
    # x1 = 50, x2 + x3 = 150, x2, x3 >= 50; players 2 and 3 are symmetric in v, so the
    # Shapley value (100/3, 250/3, 250/3) projects onto its midpoint
    result = least_core(bankruptcy_game(200, [100, 200, 300]))
    assert result.epsilon == pytest.approx(-50.0)
    np.testing.assert_allclose(result.values, [50.0, 75.0, 75.0], atol=1e-7)


def test_single_player():
    result = least_core(CoalitionGame([1.0, 4.0], names=["solo"]))
    assert result.values.tolist() == [3.0] and result.epsilon == 0.0 and result.names == ("solo",)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_least_core_properties(data, random_games, brute):
    game = data.draw(random_games(min_players=2))
    v = game.zero_normalized()
    tol = 1e-7 * max(1.0, np.abs(v).max())
    result = least_core(game)
    x, eps = result.values, result.epsilon
    assert result.converged
    assert x.sum() == pytest.approx(v[-1], abs=tol)
    assert brute.excesses(v, x)[0] <= eps + tol  # every constraint within epsilon
    assert eps == pytest.approx(_dense_epsilon(v), abs=tol)
    # the tie-break: no least-core point is closer to the Shapley value
    phi = game.shapley().values
    for y in brute.least_core_points(v, eps, 3, np.random.default_rng(0)):
        assert np.linalg.norm(x - phi) <= np.linalg.norm(y - phi) + 1e-6 * max(1.0, abs(eps))


def _brute_core_contains(v: np.ndarray, x: np.ndarray, tol: float) -> bool:
    n = len(x)
    if abs(sum(x) - v[-1]) > tol:
        return False
    for S in range(1, v.size):
        if sum(x[i] for i in range(n) if S >> i & 1) < v[S] - tol:
            return False
    return True


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_core_contains_matches_brute_force(data, random_games):
    game = data.draw(random_games())
    v, n = game.zero_normalized(), game.n_players
    candidates = [
        np.asarray(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), float),
        game.shapley().values,
        least_core(game).values if n > 1 else v[-1:],
    ]
    for x in candidates:
        for tol in (1e-9, 1e-6, 1.0):
            assert core_contains(game, x, tol=tol) == _brute_core_contains(v, x, tol)


def test_core_contains_glove_game():
    game = glove_game(1, 2)
    assert core_contains(game, [1.0, 0.0, 0.0])
    assert not core_contains(game, [1.0, 0.0, 0.0 + 1e-6])  # not efficient
    assert core_contains(game, [1.0, 1e-10, -1e-10])
    assert not core_contains(game, [0.9, 0.05, 0.05])
    assert core_contains(game, [0.9, 0.05, 0.05], tol=0.1)
    assert game.core_contains([1.0, 0.0, 0.0])


@pytest.mark.parametrize(
    ("x", "tol", "error", "match"),
    [
        (
            [1.0, 0.0],
            1e-9,
            ValueError,
            r"'x' must be a finite array of shape \(3,\).*got shape \(2,\)",
        ),
        ([[1.0, 0.0, 0.0]], 1e-9, ValueError, r"got shape \(1, 3\)"),
        ([1.0, np.nan, 0.0], 1e-9, ValueError, "'x' must be a finite array"),
        ([1.0, 0.0, 0.0], -1.0, ValueError, "'tol' must be finite and >= 0; got -1.0"),
    ],
)
def test_core_contains_bad_inputs(x, tol, error, match):
    with pytest.raises(error, match=match):
        core_contains(glove_game(1, 2), x, tol=tol)


def test_lp_failure_raises_with_solver_message(monkeypatch):
    failed = SimpleNamespace(status=4, message="numerical difficulties", x=None, nit=0)
    monkeypatch.setattr(least_core_module, "linprog", lambda *a, **k: failed)
    with pytest.raises(RuntimeError, match=r"HiGHS status 4.*numerical difficulties"):
        least_core(glove_game(1, 2))


def test_rejects_non_game():
    with pytest.raises(TypeError, match="'game' must be a CoalitionGame"):
        least_core([0.0, 1.0])  # type: ignore[arg-type]
