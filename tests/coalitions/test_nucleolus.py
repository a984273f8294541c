"""Nucleolus: textbook values, the lexicographic property on random games, and the
constraint-generation kernel against a dense reference."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from tests.coalitions.conftest import seeded_game

from coopml._bitmask import coalition_sums
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import bankruptcy_game, glove_game, weighted_majority_game
from coopml.coalitions.least_core import least_core
from coopml.coalitions.nucleolus import nucleolus


@pytest.mark.parametrize(
    ("estate", "expected"),
    [(100, [100 / 3] * 3), (200, [50, 75, 75]), (300, [50, 100, 150])],
)
def test_talmud_bankruptcy_aumann_maschler_1985(estate, expected):
    result = nucleolus(bankruptcy_game(estate, [100, 200, 300]))
    np.testing.assert_allclose(result.values, expected, atol=1e-9)
    assert result.converged and result.method == "nucleolus"


def test_glove_game_core_point():
    result = nucleolus(glove_game(1, 2))
    np.testing.assert_allclose(result.values, [1.0, 0.0, 0.0], atol=1e-12)
    assert result.epsilon == pytest.approx(0.0, abs=1e-12)
    assert result.names == ("L0", "R0", "R1")


def test_three_player_pair_game_by_hand():
    # v(12) = 4, v(13) = 3, v(23) = 2, v(N) = 6: the three pair excesses x3 - 2, x2 - 3,
    # x1 - 4 sum to -3, so the nucleolus equalises them at -1: x = (3, 2, 1)
    table = [0.0, 0.0, 0.0, 4.0, 0.0, 3.0, 2.0, 6.0]
    result = CoalitionGame(table).nucleolus()
    np.testing.assert_allclose(result.values, [3.0, 2.0, 1.0], atol=1e-9)
    assert result.epsilon == pytest.approx(-1.0)
    assert result.info["stage_epsilons"][0] == pytest.approx(-1.0)


def test_two_players_standard_solution():
    # x_i = v(i) + (v(12) - v(1) - v(2)) / 2
    np.testing.assert_allclose(nucleolus(CoalitionGame([0.0, 1.0, 5.0, 10.0])).values, [3.0, 7.0])


def test_dictator_and_single_player():
    # [3; 3, 1, 1]: player 0 alone wins, the others are null
    np.testing.assert_allclose(nucleolus(weighted_majority_game([3, 1, 1], 3)).values, [1, 0, 0])
    solo = nucleolus(CoalitionGame([0.0, 2.5]))
    assert solo.values.tolist() == [2.5] and solo.converged and solo.info["n_stages"] == 0


def test_large_scale_game_is_scale_invariant():
    table = 1e6 * bankruptcy_game(200, [100, 200, 300]).table
    np.testing.assert_allclose(nucleolus(CoalitionGame(table)).values, [5e7, 7.5e7, 7.5e7])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_nucleolus_minimises_excesses_lexicographically(data, random_games, brute):
    game = data.draw(random_games(min_players=2))
    v = game.zero_normalized()
    tol = 1e-6 * max(1.0, np.abs(v).max())
    result = nucleolus(game)
    x = result.values
    lc = least_core(game)
    assert result.converged
    assert result.info["n_stages"] <= game.n_players - 1
    assert np.all(np.diff(result.info["stage_epsilons"]) <= tol)  # non-increasing
    assert x.sum() == pytest.approx(v[-1], abs=tol)
    assert result.epsilon == pytest.approx(lc.epsilon, abs=tol)
    theta = brute.excesses(v, x)
    assert theta[0] <= lc.epsilon + tol  # in the least core
    others = [lc.values, *brute.least_core_points(v, lc.epsilon, 3, np.random.default_rng(1))]
    for y in others:
        assert brute.lex_leq(theta, brute.excesses(v, y), tol)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_nucleolus_is_symmetric_and_covariant(data, random_games):
    game = data.draw(random_games(min_players=2, max_players=6))
    v, n = game.table, game.n_players
    # symmetrise players 0 and 1: v'(S) = v(S) + v(swap(S))
    masks = np.arange(v.size)
    flip = ((masks ^ (masks >> 1)) & 1) * 3
    result = nucleolus(CoalitionGame(v + v[masks ^ flip]))
    assert result.values[0] == pytest.approx(result.values[1], abs=1e-6 * max(1, np.abs(v).max()))
    # strategic equivalence: nucleolus(a v + additive b) = a nucleolus(v) + b
    b = np.arange(n, dtype=float)
    shifted = CoalitionGame(
        2.0 * v + np.array([sum(b[i] for i in range(n) if S >> i & 1) for S in masks])
    )
    np.testing.assert_allclose(
        nucleolus(shifted).values,
        2.0 * nucleolus(game).values + b,
        atol=1e-6 * max(1, np.abs(v).max()),
    )


# ---------------------------------------------------------------- constraint generation
# Every stage LP runs over a working set of coalitions. These tests check the kernel
# against a dense sequential-LP reference with every coalition in every stage (written
# here, apart from the package), with tiny working sets so that many rounds run.

least_core_module = importlib.import_module("coopml.coalitions.least_core")
nucleolus_module = importlib.import_module("coopml.coalitions.nucleolus")


def _reference_nucleolus(v: np.ndarray) -> np.ndarray:
    """Dense Maschler-Peleg-Shapley sequence: each stage minimises the largest free excess
    over all coalitions, fixes those with a positive dual and drops the free coalitions
    in the span of the fixed ones (distance to the row space, by a pseudo-inverse)."""
    n = v.size.bit_length() - 1
    A = np.array([[S >> i & 1 for i in range(n)] for S in range(v.size)], float)
    fixed, values = [v.size - 1], [v[-1]]
    free = np.arange(1, v.size - 1)
    while np.linalg.matrix_rank(A[fixed]) < n:
        res = linprog(
            np.r_[np.zeros(n), 1.0],
            A_ub=np.c_[-A[free], -np.ones(free.size)],
            b_ub=-v[free],
            A_eq=np.c_[A[fixed], np.zeros(len(fixed))],
            b_eq=values,
            bounds=(None, None),
            method="highs",
        )
        assert res.status == 0, res.message
        lam = -res.ineqlin.marginals
        tight = free[lam > min(1e-7, lam.max() / 2)]
        fixed += tight.tolist()
        values += (v[tight] - res.x[n]).tolist()
        F = A[fixed]
        residual = A[free] - A[free] @ np.linalg.pinv(F) @ F
        free = free[np.linalg.norm(residual, axis=1) > 1e-9]
    return np.linalg.lstsq(A[fixed], np.array(values), rcond=None)[0]


@pytest.mark.parametrize("seed", range(42))
def test_constraint_generation_matches_dense_reference(seed):
    game = seeded_game(seed)
    v = game.zero_normalized()
    scale = max(1.0, np.abs(v).max())
    expected = _reference_nucleolus(v)
    eps = least_core(game).epsilon
    for result in (
        nucleolus(game),
        nucleolus_module._nucleolus(game, start=0, batch=1),
        nucleolus_module._nucleolus(game, start=3, batch=4),
        nucleolus_module._nucleolus(game, full=True),
    ):
        assert result.converged and result.info["n_stages"] <= game.n_players - 1
        np.testing.assert_allclose(result.values, expected, atol=1e-8 * scale)
        assert result.epsilon == pytest.approx(eps, abs=1e-9 * scale)
        # verifies itself: efficient, and its largest excess is the least-core value
        sums = coalition_sums(result.values)
        assert sums[-1] == pytest.approx(v[-1], abs=1e-9 * scale)
        assert np.max(v[1:-1] - sums[1:-1]) == pytest.approx(eps, abs=1e-8 * scale)


def test_fourteen_players_against_the_full_lps():
    rng = np.random.default_rng(14)
    game = CoalitionGame(coalition_sums(rng.uniform(0.5, 2.0, 14)) ** 1.5)  # convex: 3 stages
    new = nucleolus(game)
    full = nucleolus_module._nucleolus(game, full=True)
    assert new.converged and full.converged and new.info["n_stages"] > 1
    np.testing.assert_allclose(new.values, full.values, atol=1e-9 * 100)
    np.testing.assert_allclose(new.info["stage_epsilons"], full.info["stage_epsilons"], atol=1e-9)
    assert new.info["working_set"] < 2**14 // 4


def test_projection_failure_falls_back_to_certified_vertices(monkeypatch):
    monkeypatch.setattr(least_core_module, "_closest_point", lambda *a, **k: None)
    for seed in (4, 11, 18, 19):
        game = seeded_game(seed)
        scale = max(1.0, np.abs(game.zero_normalized()).max())
        result = nucleolus_module._nucleolus(game, start=0, batch=2)
        assert result.converged
        expected = _reference_nucleolus(game.zero_normalized())
        np.testing.assert_allclose(result.values, expected, atol=1e-8 * scale)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 9), data=st.data())
def test_span_test_matches_rank(n, data):
    k = data.draw(st.integers(1, n))
    masks = data.draw(st.lists(st.integers(1, (1 << n) - 1), min_size=k, max_size=k))
    rows = np.array([[S >> i & 1 for i in range(n)] for S in masks], float)
    null = scipy.linalg.null_space(rows).T
    if null.shape[0] == 0:
        return  # full rank: everything is spanned, the kernel never asks
    spanned = nucleolus_module._span_test(null)(np.arange(1, 1 << n))
    rank = np.linalg.matrix_rank(rows)
    for S, got in zip(range(1, 1 << n), spanned, strict=True):
        a = np.array([S >> i & 1 for i in range(n)], float)
        assert got == (np.linalg.matrix_rank(np.vstack([rows, a])) == rank)
