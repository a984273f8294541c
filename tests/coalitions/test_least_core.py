"""Least core (LP + closest-to-Shapley tie-break) and core membership."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from tests.coalitions.conftest import seeded_game

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


# ---------------------------------------------------------------- constraint generation
# The kernel solves the LP and the projection over working sets of coalitions. These
# tests check it against a dense reference with every coalition (written here, apart
# from the package), with tiny working sets so that many generation rounds run.


def _reference_least_core(v: np.ndarray) -> tuple[float, np.ndarray]:
    """Dense reference: epsilon by one LP over all coalitions, then the least-core point
    closest to the Shapley value as a least-distance problem over all of them (NNLS)."""
    from scipy.optimize import nnls

    from coopml.coalitions.shapley import shapley_from_table

    n = v.size.bit_length() - 1
    eps = _dense_epsilon(v)
    A = np.array([[S >> i & 1 for i in range(n)] for S in range(1, v.size - 1)], float)
    phi = shapley_from_table(v)
    Q = np.linalg.svd(np.ones((1, n)))[2][1:].T  # orthonormal basis of {sum = 0}
    h = v[1:-1] - eps - A @ phi - 1e-12 * max(1.0, np.abs(v).max())
    if h.max() <= 0:
        return eps, phi
    E = np.vstack([(A @ Q).T, h])
    f = np.eye(n)[-1]
    r = E @ nnls(E, f, maxiter=100 * len(h))[0] - f
    return eps, phi + Q @ (-r[:-1] / r[-1])


def _check_verifies_itself(game: CoalitionGame, x: np.ndarray, eps: float) -> None:
    v = game.zero_normalized()
    n = game.n_players
    tol = 1e-9 * max(1.0, np.abs(v).max())
    sums = np.array([sum(x[i] for i in range(n) if S >> i & 1) for S in range(v.size)])
    assert abs(sums[-1] - v[-1]) <= tol  # efficient
    excess = v[1:-1] - sums[1:-1]
    assert excess.max() <= eps + tol  # no coalition complains more than epsilon
    assert excess.max() >= eps - tol  # and epsilon is attained


@pytest.mark.parametrize("seed", range(42))
def test_constraint_generation_matches_dense_reference(seed):
    game = seeded_game(seed)
    v = game.zero_normalized()
    scale = max(1.0, np.abs(v).max())
    eps_ref, x_ref = _reference_least_core(v)
    full = least_core_module._least_core(game, full=True)
    for result in (
        least_core(game),
        least_core_module._least_core(game, start=0, batch=1),
        least_core_module._least_core(game, start=3, batch=4),
        full,
    ):
        assert result.converged
        assert result.epsilon == pytest.approx(eps_ref, abs=1e-9 * scale)
        np.testing.assert_allclose(result.values, x_ref, atol=1e-8 * scale)
        np.testing.assert_allclose(result.values, full.values, atol=1e-9 * scale)
        _check_verifies_itself(game, result.values, result.epsilon)
    assert full.info["working_set"] == v.size - 2  # the reference path has every row


def test_small_batches_take_many_rounds_and_agree():
    game = seeded_game(29)  # 12 players, floats in [-100, 100]
    one = least_core_module._least_core(game, start=0, batch=1)
    default = least_core(game)
    assert one.info["generation_rounds"] > 10
    assert one.info["working_set"] < 2**12 - 2
    assert one.epsilon == pytest.approx(default.epsilon, abs=1e-9 * 100)
    np.testing.assert_allclose(one.values, default.values, atol=1e-9 * 100)


def test_fourteen_players_against_the_full_lp():
    from coopml._bitmask import coalition_sums

    rng = np.random.default_rng(14)
    size = coalition_sums(rng.integers(20, 200, 14).astype(float))
    game = CoalitionGame(0.4 * (1 - np.exp(-size / 300)) + rng.normal(0, 0.005, size.size))
    new, full = least_core(game), least_core_module._least_core(game, full=True)
    assert new.converged and full.converged
    assert new.epsilon == pytest.approx(full.epsilon, abs=1e-9)
    np.testing.assert_allclose(new.values, full.values, atol=1e-9)
    assert new.info["working_set"] < 2**14 // 4


def test_projection_failure_falls_back_to_a_certified_vertex(monkeypatch):
    # should the least-distance step fail, generation continues at the LP's vertex: epsilon
    # stays exact, and the result says the tie-break failed
    monkeypatch.setattr(least_core_module, "_closest_point", lambda *a, **k: None)
    for seed in (1, 8, 15):
        game = seeded_game(seed)
        result = least_core_module._least_core(game, start=0, batch=2)
        eps_ref = _reference_least_core(game.zero_normalized())[0]
        scale = max(1.0, np.abs(game.zero_normalized()).max())
        assert not result.converged and "tie_break_failed" in result.info
        assert result.epsilon == pytest.approx(eps_ref, abs=1e-9 * scale)
        _check_verifies_itself(game, result.values, result.epsilon)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_table_pass_finds_the_most_violated_coalitions(data, random_games):
    game = data.draw(random_games(min_players=2, max_players=9))
    v, n = game.zero_normalized(), game.n_players
    x = np.asarray(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), float)
    k = data.draw(st.integers(1, 8))
    threshold = float(data.draw(st.integers(-6, 3)))
    table = least_core_module._Table(v.copy())
    state = table.new_state()
    working = np.flatnonzero(np.arange(v.size) % 3 == 1)  # pretend these are in the set
    working = working[working < v.size - 1]
    state[working] = least_core_module._WORKING
    e_max, added = table.add_most_violated(x, state, threshold, k)
    excess = {S: v[S] - sum(x[i] for i in range(n) if S >> i & 1) for S in range(1, v.size - 1)}
    assert e_max == pytest.approx(max(excess.values()), abs=1e-12)
    free = sorted(
        (S for S in excess if S not in set(working) and excess[S] > threshold),
        key=lambda S: -excess[S],
    )
    assert len(added) == min(k, len(free))
    if free:  # the k largest excesses (ties may be broken either way)
        assert min(excess[S] for S in added) == pytest.approx(excess[free[len(added) - 1]])
    assert set(added) <= set(free) and np.all(state[added] == least_core_module._WORKING)


def test_a_wrong_scipy_nnls_is_caught_and_redone(monkeypatch):
    # SciPy's NNLS can return a suboptimal point without an error (scipy issues 21140,
    # 25389); the KKT check catches it and SciPy's BVLS redoes the step
    def wrong_nnls(E, f, maxiter=None):
        return np.full(E.shape[1], 1.0 / E.shape[1]), 0.0

    monkeypatch.setattr(least_core_module, "nnls", wrong_nnls)
    for seed in (1, 8, 15, 22):
        game = seeded_game(seed)
        eps_ref, x_ref = _reference_least_core(game.zero_normalized())
        scale = max(1.0, np.abs(game.zero_normalized()).max())
        result = least_core_module._least_core(game, start=0, batch=2)
        assert result.converged
        np.testing.assert_allclose(result.values, x_ref, atol=1e-8 * scale)
        assert result.epsilon == pytest.approx(eps_ref, abs=1e-9 * scale)


def test_degenerate_symmetric_game_keeps_the_tie_break():
    # a symmetric 7-player game whose least core is one point with many tight
    # coalitions; SciPy 1.17's NNLS returned a point violating a constraint by 0.19 here
    sizes = np.array([bin(S).count("1") for S in range(1 << 7)])
    table = np.array([5.0, -2.0, 1.0, -3.0, 2.0, 3.0, 0.0, 5.0])[sizes]
    game = CoalitionGame(table)
    for kwargs in ({}, {"start": 2, "batch": 3}, {"start": 0, "batch": 1}):
        result = least_core_module._least_core(game, **kwargs)
        assert result.converged and "tie_break_failed" not in result.info
        assert result.epsilon == pytest.approx(-2.0)
        np.testing.assert_allclose(result.values, 0.0, atol=1e-12)


def test_games_at_any_scale_are_solved_relative_to_their_values():
    # Found by hypothesis: a game valued in 1e-7 passed every absolute tolerance at once.
    from coopml.coalitions import nucleolus

    table = np.array([1e-7, 0, 0, 0, 0, 0, 0, 0.0])
    for scale in (1e-9, 1.0, 1e9):
        game = CoalitionGame(table * scale / 1e-7)
        r = least_core(game)
        assert r.converged, r.info
        u = game.zero_normalized()
        masks = np.arange(1, 7)
        x_s = np.array([r.values[[i for i in range(3) if m >> i & 1]].sum() for m in masks])
        assert np.max(u[masks] - x_s) <= r.epsilon + 1e-9 * scale
        assert nucleolus(game).converged
