r"""Reference TU games with known solutions, for tests, documentation and teaching.

Each function returns a :class:`~coopml.coalitions.game.CoalitionGame` whose table is
built with vectorised bit operations.

- :func:`glove_game`: :math:`v(S) = \min(|S \cap L|, |S \cap R|)`; with fewer left
  than right gloves the core is the single point that gives each left glove 1.
- :func:`airport_game`: the cost game :math:`c(S) = \max_{i \in S} c_i`; its Shapley
  value has the closed form :func:`airport_shapley` (Littlechild & Owen 1973).
- :func:`unanimity_game`: :math:`u_T(S) = 1` iff :math:`T \subseteq S`; Shapley value
  :math:`1/|T|` on the carrier :math:`T`, zero elsewhere (Shapley 1953).
- :func:`additive_game`: :math:`v(S) = \sum_{i \in S} w_i`; every value concept gives
  :math:`w`.
- :func:`weighted_majority_game`: :math:`v(S) = 1` iff :math:`\sum_{i \in S} w_i \ge q`.
- :func:`bankruptcy_game`: :math:`v(S) = \max(0, E - \sum_{i \notin S} d_i)`; its
  nucleolus is the Talmud rule (Aumann & Maschler 1985).

References
----------
S. C. Littlechild and G. Owen, "A simple expression for the Shapley value in a special
case", Management Science 20(3) (1973), pp. 370-372.
R. J. Aumann and M. Maschler, "Game theoretic analysis of a bankruptcy problem from the
Talmud", Journal of Economic Theory 36 (1985), pp. 195-213.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._bitmask import coalition_sums, mask_of, popcounts
from coopml._validation import check_int, check_positive
from coopml.coalitions.game import MAX_EXACT_PLAYERS, CoalitionGame

__all__ = [
    "additive_game",
    "airport_game",
    "airport_shapley",
    "bankruptcy_game",
    "glove_game",
    "unanimity_game",
    "weighted_majority_game",
]


def glove_game(n_left: int, n_right: int) -> CoalitionGame:
    """Glove game: a pair of one left and one right glove is worth 1.

    Parameters
    ----------
    n_left, n_right : int
        Number of left-glove and right-glove owners (``>= 0``, at least one player).
        Players ``0..n_left-1`` (named ``"L0", ...``) hold left gloves, the rest
        (``"R0", ...``) right gloves.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> glove_game(1, 2).shapley().values.round(4).tolist()
    [0.6667, 0.1667, 0.1667]
    """
    n_left = check_int("n_left", n_left, minimum=0, maximum=MAX_EXACT_PLAYERS)
    n_right = check_int("n_right", n_right, minimum=0, maximum=MAX_EXACT_PLAYERS - n_left)
    n = n_left + n_right
    if n == 0:
        raise ValueError("parameters 'n_left' and 'n_right' must not both be 0; got 0 and 0")
    masks = np.arange(1 << n)
    left = (1 << n_left) - 1
    sizes = popcounts(n)
    table = np.minimum(sizes[masks & left], sizes[masks & ~left]).astype(np.float64)
    names = [f"L{i}" for i in range(n_left)] + [f"R{i}" for i in range(n_right)]
    return CoalitionGame(table, names=tuple(names))


def airport_game(costs: ArrayLike) -> CoalitionGame:
    r"""Airport cost game: a runway long enough for the most demanding member.

    ``table[S]`` is the **cost** :math:`c(S) = \max_{i \in S} c_i`; its Shapley value is
    the cost share of each player (use the savings game :math:`\sum_{i \in S} c_i - c(S)`
    for core concepts, whose constraints assume values, not costs).

    Parameters
    ----------
    costs : array-like of shape (n,)
        Non-negative runway cost needed by each player.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> airport_game([1.0, 3.0]).table.tolist()
    [0.0, 1.0, 3.0, 3.0]
    """
    c = _check_vector("costs", costs, nonnegative=True)
    table = np.zeros(1)
    for c_i in c:  # the second half of the table holds the coalitions with player i
        table = np.concatenate([table, np.maximum(table, c_i)])
    return CoalitionGame(table)


def airport_shapley(costs: ArrayLike) -> NDArray[np.float64]:
    r"""Littlechild-Owen closed form of the Shapley value of :func:`airport_game`.

    With costs sorted :math:`c_{(1)} \le \dots \le c_{(n)}` and :math:`c_{(0)} = 0`, the
    player in position :math:`j` pays :math:`\sum_{k=1}^{j} (c_{(k)} - c_{(k-1)}) / (n-k+1)`:
    every runway segment is split equally among the players who need it.

    Parameters
    ----------
    costs : array-like of shape (n,)

    Returns
    -------
    phi : ndarray of shape (n,)
        Cost shares in the original player order.

    Examples
    --------
    >>> airport_shapley([1.0, 3.0]).tolist()
    [0.5, 2.5]
    """
    c = _check_vector("costs", costs, nonnegative=True, max_size=None)
    n = c.size
    order = np.argsort(c, kind="stable")
    segments = np.diff(c[order], prepend=0.0) / (n - np.arange(n))
    phi = np.empty(n)
    phi[order] = np.cumsum(segments)
    return phi


def unanimity_game(n_players: int, carrier: Iterable[int]) -> CoalitionGame:
    """Unanimity game :math:`u_T`: a coalition is worth 1 iff it contains the carrier ``T``.

    Parameters
    ----------
    n_players : int
    carrier : iterable of int
        Non-empty set of player indices in ``0..n_players-1``.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> unanimity_game(3, [0, 2]).shapley().values.tolist()
    [0.5, 0.0, 0.5]
    """
    n = check_int("n_players", n_players, minimum=1, maximum=MAX_EXACT_PLAYERS)
    T = sorted({check_int("carrier", i, minimum=0, maximum=n - 1) for i in carrier})
    if not T:
        raise ValueError("parameter 'carrier' must name at least one player; got none")
    t = mask_of(T)
    masks = np.arange(1 << n)
    return CoalitionGame(((masks & t) == t).astype(np.float64))


def additive_game(weights: ArrayLike) -> CoalitionGame:
    """Additive (inessential) game :math:`v(S) = \\sum_{i \\in S} w_i`.

    Parameters
    ----------
    weights : array-like of shape (n,)
        Any finite reals: each player's stand-alone worth.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> additive_game([1.0, 2.0]).table.tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    return CoalitionGame(coalition_sums(_check_vector("weights", weights)))


def weighted_majority_game(weights: ArrayLike, quota: float) -> CoalitionGame:
    """Weighted majority game ``[q; w_1, ..., w_n]``: a coalition wins (worth 1) iff
    its total weight reaches the quota.

    Parameters
    ----------
    weights : array-like of shape (n,)
        Non-negative voting weights.
    quota : float
        ``q > 0``; weights are compared with ``>=`` exactly, so prefer integers.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> weighted_majority_game([2, 1, 1], quota=3).shapley().values.round(4).tolist()
    [0.6667, 0.1667, 0.1667]
    """
    w = _check_vector("weights", weights, nonnegative=True)
    q = check_positive("quota", quota)
    return CoalitionGame((coalition_sums(w) >= q).astype(np.float64))


def bankruptcy_game(estate: float, claims: ArrayLike) -> CoalitionGame:
    r"""Bankruptcy game (O'Neill 1982): what a coalition gets once everyone else's claims
    are paid, :math:`v(S) = \max(0, E - \sum_{i \notin S} d_i)`.

    Parameters
    ----------
    estate : float
        :math:`E \ge 0`, at most the sum of the claims.
    claims : array-like of shape (n,)
        Non-negative claims :math:`d_i`.

    Returns
    -------
    CoalitionGame

    Examples
    --------
    >>> bankruptcy_game(200, [100, 200, 300]).nucleolus().values.round(6).tolist()
    [50.0, 75.0, 75.0]
    """
    E = check_positive("estate", estate, strict=False)
    d = _check_vector("claims", claims, nonnegative=True)
    if E > d.sum():
        raise ValueError(
            f"parameter 'estate' must be <= the sum of the claims ({d.sum()}); got {E}"
        )
    return CoalitionGame(np.maximum(0.0, E - (d.sum() - coalition_sums(d))))


def _check_vector(
    name: str,
    values: ArrayLike,
    *,
    nonnegative: bool = False,
    max_size: int | None = MAX_EXACT_PLAYERS,
) -> NDArray[np.float64]:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"parameter '{name}' must be a 1-D array of numbers; got {values!r}"
        ) from None
    if x.ndim != 1 or x.size < 1 or (max_size is not None and x.size > max_size):
        entries = "at least 1 entry" if max_size is None else f"1 to {max_size} entries"
        raise ValueError(
            f"parameter '{name}' must be a 1-D array of {entries} "
            f"(one per player); got shape {x.shape}"
        )
    if not np.all(np.isfinite(x)) or (nonnegative and np.any(x < 0)):
        allowed = "finite and >= 0" if nonnegative else "finite"
        raise ValueError(f"parameter '{name}' must be {allowed}; got {x.tolist()}")
    return x
