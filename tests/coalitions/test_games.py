"""Reference games: tables, closed-form values and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from coopml.coalitions.games import (
    additive_game,
    airport_game,
    airport_shapley,
    bankruptcy_game,
    glove_game,
    unanimity_game,
    weighted_majority_game,
)


def test_glove_game_table_and_names():
    game = glove_game(2, 1)
    assert game.names == ("L0", "L1", "R0")
    # masks 0..7: R0 is bit 2; a pair needs bit 2 and one of bits 0, 1
    np.testing.assert_array_equal(game.table, [0, 0, 0, 0, 0, 1, 1, 1])
    assert glove_game(0, 3).table.max() == 0.0
    np.testing.assert_allclose(glove_game(2, 2).shapley().values, [0.5] * 4)


def test_airport_littlechild_owen_by_hand():
    # segments: 2 shared by 3, 2 shared by 2, 6 paid by the largest alone
    np.testing.assert_allclose(airport_shapley([10.0, 2.0, 4.0]), [2 / 3 + 1 + 6, 2 / 3, 5 / 3])
    game = airport_game([10.0, 2.0, 4.0])
    assert game.value({1, 2}) == 4.0 and game.grand_value == 10.0 and game.value(set()) == 0.0


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 7).flatmap(
        lambda n: arrays(np.float64, n, elements=st.integers(0, 5).map(float) | st.floats(0, 50))
    )
)
def test_airport_shapley_equals_closed_form(costs):
    # integer costs give ties, which the closed form must handle
    np.testing.assert_allclose(
        airport_game(costs).shapley().values, airport_shapley(costs), atol=1e-9
    )


def test_unanimity_game():
    game = unanimity_game(4, {2, 0})
    assert game.value({0, 2}) == 1.0 and game.value({0, 1, 3}) == 0.0
    np.testing.assert_allclose(game.shapley().values, [0.5, 0, 0.5, 0])


def test_additive_game():
    w = [1.5, -2.0, 4.0]
    game = additive_game(w)
    assert game.value({0, 2}) == 5.5
    for values in (game.shapley(), game.banzhaf(), game.loo(), game.nucleolus()):
        np.testing.assert_allclose(values.values, w, atol=1e-9)


def test_weighted_majority_un_security_council_style():
    # [3; 2, 1, 1]: player 0 is pivotal in 4 of 6 orders
    game = weighted_majority_game([2, 1, 1], quota=3)
    np.testing.assert_array_equal(game.table, [0, 0, 0, 1, 0, 1, 0, 1])
    np.testing.assert_allclose(game.shapley().values, [2 / 3, 1 / 6, 1 / 6])


@settings(max_examples=40, deadline=None)
@given(weights=st.lists(st.integers(0, 6), min_size=1, max_size=6), quota=st.integers(1, 20))
def test_weighted_majority_vs_permutations(weights, quota, brute):
    game = weighted_majority_game(weights, quota)
    expected = brute.permutation_shapley(game.table)
    np.testing.assert_allclose(game.shapley().values, expected, atol=1e-12)


def test_bankruptcy_game_table():
    game = bankruptcy_game(200, [100, 200, 300])
    # v({2}) = 200 - 300 < 0 -> 0; v({1, 2}) = 200 - 100; v(N) = estate
    assert game.value({2}) == 0.0 and game.value({1, 2}) == 100.0 and game.grand_value == 200.0


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: glove_game(0, 0), ValueError, "must not both be 0"),
        (lambda: glove_game(-1, 2), ValueError, "'n_left' must be >= 0; got -1"),
        (lambda: glove_game(20, 6), ValueError, "'n_right' must be <= 5; got 6"),
        (lambda: glove_game(1.5, 2), TypeError, "'n_left' must be an integer"),
        (lambda: airport_game([1.0, -2.0]), ValueError, "'costs' must be finite and >= 0"),
        (
            lambda: airport_shapley([]),
            ValueError,
            r"'costs' must be a 1-D array of at least 1 entry",
        ),
        (lambda: airport_game(np.ones(26)), ValueError, r"'costs' must be a 1-D array of 1 to 25"),
        (lambda: airport_game([[1.0]]), ValueError, r"got shape \(1, 1\)"),
        (lambda: airport_game(["a"]), TypeError, "'costs' must be a 1-D array of numbers"),
        (lambda: additive_game([1.0, np.inf]), ValueError, "'weights' must be finite"),
        (lambda: unanimity_game(3, []), ValueError, "'carrier' must name at least one"),
        (lambda: unanimity_game(3, [3]), ValueError, "'carrier' must be <= 2; got 3"),
        (lambda: unanimity_game(0, [0]), ValueError, "'n_players' must be >= 1"),
        (lambda: weighted_majority_game([1, 1], 0), ValueError, "'quota' must be finite and > 0"),
        (
            lambda: weighted_majority_game([1, -1], 1),
            ValueError,
            "'weights' must be finite and >= 0",
        ),
        (lambda: bankruptcy_game(700, [100, 200]), ValueError, r"'estate' must be <= the sum"),
        (lambda: bankruptcy_game(-1, [100, 200]), ValueError, "'estate' must be finite and >= 0"),
    ],
)
def test_bad_inputs(build, error, match):
    with pytest.raises(error, match=match):
        build()
