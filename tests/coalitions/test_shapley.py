"""Exact Shapley value: closed forms, brute force, the efficiency guard, n = 20."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import additive_game, glove_game, unanimity_game
from coopml.coalitions.shapley import shapley, shapley_from_table

shapley_module = importlib.import_module("coopml.coalitions.shapley")


def test_glove_game_one_left_two_right():
    result = shapley(glove_game(1, 2))
    np.testing.assert_allclose(result.values, [2 / 3, 1 / 6, 1 / 6], atol=1e-15)
    assert result.names == ("L0", "R0", "R1")
    assert result.method == "shapley"
    assert result.n_evaluations == 8
    assert result.converged and result.stderr is None
    assert abs(result.info["efficiency_error"]) < 1e-15


def test_two_player_split_the_surplus():
    # phi_1 = v(1) + (v(12) - v(1) - v(2)) / 2
    np.testing.assert_allclose(shapley_from_table([0.0, 1.0, 2.0, 4.0]), [1.5, 2.5])


def test_unanimity_and_linear_combination():
    u = unanimity_game(5, [1, 3, 4])
    np.testing.assert_allclose(shapley(u).values, [0, 1 / 3, 0, 1 / 3, 1 / 3], atol=1e-15)
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    combined = CoalitionGame(additive_game(w).table + 6.0 * u.table)
    np.testing.assert_allclose(shapley(combined).values, w + np.array([0, 2, 0, 2, 2]), atol=1e-12)


def test_empty_coalition_value_is_not_distributed():
    game = CoalitionGame([5.0, 6.0, 7.0, 9.0])
    result = shapley(game)
    np.testing.assert_allclose(result.values, [1.5, 2.5])
    assert result.values.sum() == pytest.approx(game.grand_value - 5.0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_matches_subset_formula(data, random_games, brute):
    game = data.draw(random_games())
    np.testing.assert_allclose(shapley(game).values, brute.shapley(game.table), atol=1e-9)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_matches_permutation_average(data, random_games, brute):
    game = data.draw(random_games(max_players=5))
    np.testing.assert_allclose(
        shapley(game).values, brute.permutation_shapley(game.table), atol=1e-9
    )


def test_twenty_players_is_efficient():  # speed: benchmarks/bench_least_core.py
    rng = np.random.default_rng(0)
    game = CoalitionGame(rng.normal(size=1 << 20))
    result = shapley(game)
    assert result.values.sum() == pytest.approx(game.grand_value - game.table[0], abs=1e-9)
    w = rng.normal(size=20)
    np.testing.assert_allclose(shapley(additive_game(w)).values, w, atol=1e-9)


def test_efficiency_violation_raises(monkeypatch):
    monkeypatch.setattr(shapley_module, "_shapley_kernel", lambda table: np.array([1.0, 1.0]))
    with pytest.raises(RuntimeError, match=r"violate efficiency by 0\.5"):
        shapley(CoalitionGame([0.0, 0.0, 0.0, 1.5]))


@pytest.mark.parametrize(
    ("table", "error", "match"),
    [
        ([0.0, 1.0, 2.0], ValueError, "power of two"),
        ([0.0, np.nan], ValueError, "must be finite"),
        ([[0.0, 1.0]], ValueError, "1-D array"),
    ],
)
def test_kernel_rejects_bad_tables(table, error, match):
    with pytest.raises(error, match=match):
        shapley_from_table(table)


def test_rejects_non_game():
    with pytest.raises(TypeError, match="'game' must be a CoalitionGame; got list"):
        shapley([0.0, 1.0])  # type: ignore[arg-type]
