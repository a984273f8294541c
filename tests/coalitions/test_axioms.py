"""Shapley's axioms (and the ones Banzhaf shares) on random games."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.coalitions.banzhaf import banzhaf
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.loo import leave_one_out
from coopml.coalitions.shapley import shapley

VALUES = [shapley, banzhaf]
TOL = 1e-9


def _swap(masks: np.ndarray, i: int, j: int) -> np.ndarray:
    """Masks with the bits of players i and j exchanged."""
    differ = ((masks >> i) ^ (masks >> j)) & 1
    return masks ^ (differ << i) ^ (differ << j)


def _players(data: st.DataObject, n: int) -> tuple[int, int]:
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, n - 1).filter(lambda k: k != i))
    return i, j


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_efficiency(data, random_games):
    game = data.draw(random_games())
    phi = shapley(game)
    assert phi.values.sum() == pytest.approx(game.grand_value - game.table[0], abs=TOL * 100)
    assert abs(phi.info["efficiency_error"]) <= TOL * 100


@pytest.mark.parametrize("value", VALUES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_symmetry(value, data, random_games):
    game = data.draw(random_games(min_players=2))
    i, j = _players(data, game.n_players)
    masks = np.arange(game.table.size)
    symmetric = CoalitionGame(game.table + game.table[_swap(masks, i, j)])
    phi = value(symmetric).values
    assert phi[i] == pytest.approx(phi[j], abs=TOL * 100)
    # anonymity: relabelling players relabels values
    swapped = value(CoalitionGame(game.table[_swap(masks, i, j)])).values
    original = value(game).values
    assert swapped[[i, j]] == pytest.approx(original[[j, i]], abs=TOL * 100)


@pytest.mark.parametrize("value", [*VALUES, leave_one_out])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_null_player_gets_zero(value, data, random_games):
    game = data.draw(random_games())
    k = data.draw(st.integers(0, game.n_players - 1))
    masks = np.arange(game.table.size)
    null_k = CoalitionGame(game.table[masks & ~(1 << k)])  # v(S + k) = v(S)
    assert value(null_k).values[k] == pytest.approx(0.0, abs=TOL * 100)


@pytest.mark.parametrize("value", [*VALUES, leave_one_out])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_additivity(value, data, random_games):
    v = data.draw(random_games())
    w = data.draw(random_games(min_players=v.n_players, max_players=v.n_players))
    total = value(CoalitionGame(v.table + w.table)).values
    np.testing.assert_allclose(total, value(v).values + value(w).values, atol=TOL * 100)


def test_loo_is_not_efficient_on_substitutes():
    # two perfect substitutes: LOO pays nothing, Shapley splits v(N)
    game = CoalitionGame([0.0, 1.0, 1.0, 1.0])
    assert leave_one_out(game).values.tolist() == [0.0, 0.0]
    assert shapley(game).values.tolist() == [0.5, 0.5]
