"""Bitmask helpers: coalition ``S`` of ``n`` players is the integer whose bit ``i`` is
set iff player ``i`` is in ``S``; the value table of a game is an array of length
``2**n`` indexed by that integer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import NDArray

__all__ = ["coalition_sums", "mask_of", "members", "popcounts"]


def popcounts(n_players: int) -> NDArray[np.int64]:
    """Size of every coalition, indexed by bitmask (length ``2**n_players``).

    Examples
    --------
    >>> popcounts(3).tolist()
    [0, 1, 1, 2, 1, 2, 2, 3]
    """
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(n_players):
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def coalition_sums(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``x(S) = sum_{i in S} x_i`` for every coalition ``S``, indexed by bitmask.

    Examples
    --------
    >>> coalition_sums(np.array([1.0, 10.0])).tolist()
    [0.0, 1.0, 10.0, 11.0]
    """
    sums = np.zeros(1, dtype=np.float64)
    for xi in np.asarray(x, dtype=np.float64):
        sums = np.concatenate([sums, sums + xi])
    return sums


def mask_of(players: Iterable[int]) -> int:
    """Bitmask of a collection of player indices.

    >>> mask_of({0, 2})
    5
    """
    mask = 0
    for i in players:
        mask |= 1 << int(i)
    return mask


def members(mask: int, n_players: int) -> frozenset[int]:
    """Player indices in coalition ``mask``.

    >>> sorted(members(5, 3))
    [0, 2]
    """
    return frozenset(i for i in range(n_players) if (mask >> i) & 1)
