"""Bitmask helpers: coalition ``S`` of ``n`` players is the integer whose bit ``i`` is
set iff player ``i`` is in ``S``; the value table of a game is an array of length
``2**n`` indexed by that integer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_MASK_PLAYERS",
    "coalition_sums",
    "decode_masks",
    "encode_members",
    "mask_of",
    "members",
    "popcounts",
]


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


#: Most players whose coalitions fit in an ``int64`` bitmask (bit 63 is the sign).
MAX_MASK_PLAYERS = 62


def encode_members(member: NDArray[np.bool_]) -> NDArray[Any]:
    """Bitmasks of the rows of a membership matrix ``(k, n)``.

    ``int64`` up to :data:`MAX_MASK_PLAYERS` players; beyond, a 1-D object array of
    Python integers (any number of players).

    Examples
    --------
    >>> encode_members(np.array([[True, False, True], [False, True, False]])).tolist()
    [5, 2]
    >>> big = np.zeros((1, 70), dtype=bool); big[0, 69] = True
    >>> encode_members(big)[0] == 1 << 69
    True
    """
    member = np.asarray(member, dtype=bool)
    n = member.shape[1]
    if n <= MAX_MASK_PLAYERS:
        return np.asarray(member.astype(np.int64) @ (np.int64(1) << np.arange(n, dtype=np.int64)))
    packed = np.packbits(member, axis=1, bitorder="little")
    out = np.empty(member.shape[0], dtype=object)
    out[:] = [int.from_bytes(row.tobytes(), "little") for row in packed]
    return out


def decode_masks(masks: ArrayLike, n_players: int) -> NDArray[np.bool_]:
    """Membership matrix ``(k, n_players)`` of bitmasks (``int64`` or Python integers).

    Examples
    --------
    >>> decode_masks(np.array([5, 2]), 3).astype(int).tolist()
    [[1, 0, 1], [0, 1, 0]]
    >>> decode_masks(np.array([1 << 69], dtype=object), 70)[0].nonzero()[0].tolist()
    [69]
    """
    arr = np.asarray(masks)
    if arr.dtype != object and n_players <= MAX_MASK_PLAYERS:
        bits = np.int64(1) << np.arange(n_players, dtype=np.int64)
        return (arr.astype(np.int64)[:, None] & bits) != 0
    n_bytes = (n_players + 7) // 8
    raw = b"".join(int(m).to_bytes(n_bytes, "little") for m in arr.tolist())
    packed = np.frombuffer(raw, dtype=np.uint8).reshape(len(arr), n_bytes)
    return np.unpackbits(packed, axis=1, bitorder="little", count=n_players).astype(bool)
