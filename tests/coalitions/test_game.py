from __future__ import annotations

import numpy as np
import pytest

from coopml.coalitions import CoalitionGame


def test_table_is_read_only_copy():
    source = np.array([0.0, 1.0, 1.0, 3.0])
    game = CoalitionGame(source)
    source[3] = 99.0
    assert game.grand_value == 3.0
    with pytest.raises(ValueError, match="read-only"):
        game.table[0] = 1.0


def test_from_function_uses_bitmask_order():
    game = CoalitionGame.from_function(3, lambda s: float(sum(2**i for i in s)), names="abc")
    np.testing.assert_array_equal(game.table, np.arange(8, dtype=float))
    assert game.names == ("a", "b", "c")
    assert game.value({0, 2}) == 5.0
    assert game.value(6) == 6.0


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ([0.0, 1.0, 2.0], "length is a power of two"),
        ([0.0], "length is a power of two"),
        ([[0.0, 1.0]], "1-D array"),
        ([0.0, np.nan], "coalition mask 1 has value nan"),
    ],
)
def test_bad_tables(table, match):
    with pytest.raises(ValueError, match=match):
        CoalitionGame(table)


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="'names' must have 2 entries; got 1"):
        CoalitionGame([0.0, 1.0, 1.0, 2.0], names=["a"])
    with pytest.raises(ValueError, match="distinct names"):
        CoalitionGame([0.0, 1.0, 1.0, 2.0], names=["a", "a"])
    with pytest.raises(ValueError, match="'n_players' must be <= 25"):
        CoalitionGame.from_function(30, len)
    with pytest.raises(TypeError, match="'value_fn' must be callable"):
        CoalitionGame.from_function(2, 3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"players 0\.\.1; got mask 4"):
        CoalitionGame([0.0, 1.0, 1.0, 2.0]).value({2})
