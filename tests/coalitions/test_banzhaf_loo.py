"""Exact Banzhaf and leave-one-out values: closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.coalitions.banzhaf import banzhaf, banzhaf_from_table
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import additive_game, glove_game, unanimity_game
from coopml.coalitions.loo import leave_one_out


def test_banzhaf_glove_game():
    # L0 completes a pair with 3 of the 4 subsets of {R0, R1}; R0 only with {L0}, not {L0, R1}
    result = banzhaf(glove_game(1, 2))
    np.testing.assert_allclose(result.values, [0.75, 0.25, 0.25])
    assert (result.method, result.n_evaluations, result.names) == ("banzhaf", 8, ("L0", "R0", "R1"))


def test_banzhaf_unanimity_and_additive():
    # u_T: i in T swings exactly when S contains T \ {i}: 2^(n - |T|) of 2^(n-1) coalitions,
    # i.e. 2^(1 - |T|)
    np.testing.assert_allclose(banzhaf(unanimity_game(4, [0, 1])).values, [0.5, 0.5, 0, 0])
    np.testing.assert_allclose(banzhaf(unanimity_game(4, [0, 1, 3])).values, [0.25, 0.25, 0, 0.25])
    np.testing.assert_allclose(banzhaf(additive_game([3.0, -1.0, 2.0])).values, [3.0, -1.0, 2.0])


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_banzhaf_matches_brute_force(data, random_games, brute):
    game = data.draw(random_games())
    np.testing.assert_allclose(banzhaf(game).values, brute.banzhaf(game.table), atol=1e-9)


def test_loo_glove_game_gives_substitutes_nothing():
    result = leave_one_out(glove_game(1, 2))
    np.testing.assert_array_equal(result.values, [1.0, 0.0, 0.0])
    assert (result.method, result.n_evaluations) == ("loo", 4)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_loo_matches_direct_definition(data, random_games):
    game = data.draw(random_games())
    n = game.n_players
    everyone = set(range(n))
    expected = [game.value(everyone) - game.value(everyone - {i}) for i in range(n)]
    np.testing.assert_allclose(leave_one_out(game).values, expected, atol=0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="power of two"):
        banzhaf_from_table(np.zeros(6))
    with pytest.raises(TypeError, match="'game' must be a CoalitionGame; got ndarray"):
        banzhaf(np.zeros(4))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'game' must be a CoalitionGame; got dict"):
        leave_one_out({"a": 1.0})  # type: ignore[arg-type]


def test_game_methods_delegate():
    game = CoalitionGame([0.0, 1.0, 1.0, 3.0])
    np.testing.assert_array_equal(game.banzhaf().values, banzhaf(game).values)
    np.testing.assert_array_equal(game.loo().values, [2.0, 2.0])
