"""Nucleolus: textbook values and the lexicographic property on random games."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
