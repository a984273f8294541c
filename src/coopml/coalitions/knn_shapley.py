r"""Exact Shapley values of training points for the K-nearest-neighbour utility.

For one validation point :math:`(x, y)` and a set :math:`S` of training points, let
:math:`\alpha_1(S), \alpha_2(S), \dots` be the points of :math:`S` in increasing distance
from :math:`x`. The (unweighted) KNN utility is the fraction of the :math:`K` nearest
that carry the right label,

.. math::

    v_x(S) = \frac1K \sum_{j=1}^{\min(K, |S|)} \mathbf 1[y_{\alpha_j(S)} = y],

and the utility of a validation set is the mean of :math:`v_x` over its points.
Jia et al. (2019, Theorem 1) show that its Shapley values follow from one sort: with the
training points :math:`\alpha_1, \dots, \alpha_N` of the *whole* set ordered by distance,

.. math::

    s_{\alpha_N} = \frac{\mathbf 1[y_{\alpha_N} = y]}{N}, \qquad
    s_{\alpha_i} = s_{\alpha_{i+1}} + \frac{\mathbf 1[y_{\alpha_i} = y]
        - \mathbf 1[y_{\alpha_{i+1}} = y]}{K}\,\frac{\min(K, i)}{i},

so the values for all :math:`N` points cost :math:`O(N \log N)` per validation point.
:func:`knn_shapley` evaluates the recursion for blocks of validation points at once
(a matrix of distances, one ``argsort``, a reversed cumulative sum). Distances are
Euclidean; equal distances are ordered by training index.

For *parties* (groups of points) the grouped game is not the sum of point games.
:func:`knn_game` builds its full value table exactly: the :math:`K` nearest points of a
coalition are the :math:`K` nearest among the parties' own :math:`K`-nearest lists, so
every coalition is read off :math:`M K` sorted candidates per validation point; all
solution concepts of :class:`~coopml.coalitions.CoalitionGame` then apply.

References
----------
R. Jia, D. Dao, B. Wang, F. A. Hubis, N. M. Gürel, B. Li, C. Zhang, C. J. Spanos and
D. Song, "Efficient task-specific data valuation for nearest neighbor algorithms",
PVLDB 12(11), 2019, pp. 1610-1623.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_2d_features, check_int, check_names
from coopml.coalitions.game import MAX_EXACT_PLAYERS, CoalitionGame

__all__ = ["knn_game", "knn_shapley"]

#: Distance-matrix entries per block of validation points (64 MiB of float64).
_BLOCK_ENTRIES = 8_000_000


def knn_shapley(
    X_train: ArrayLike, y_train: ArrayLike, X_val: ArrayLike, y_val: ArrayLike, k: int = 5
) -> NDArray[np.float64]:
    """Exact Shapley value of every training point for the KNN utility (Jia et al. 2019).

    Parameters
    ----------
    X_train : array-like of shape (n_train, n_features)
    y_train : array-like of shape (n_train,)
    X_val : array-like of shape (n_val, n_features)
    y_val : array-like of shape (n_val,)
    k : int, default 5
        Number of neighbours ``K``.

    Returns
    -------
    ndarray of shape (n_train,)
        Values averaged over the validation points; they sum to
        ``v(all) - v(empty)`` with ``v(empty) = 0``.

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> knn_shapley(X, [0, 0, 1, 1], [[0.2]], [0], k=1).tolist()
    [0.5, 0.5, 0.0, 0.0]
    """
    X, y, Xv, yv, k = _check(X_train, y_train, X_val, y_val, k)
    n = X.shape[0]
    rank = np.arange(1, n)  # i = 1 .. N-1 (1-based ranks)
    factor = np.minimum(k, rank) / (k * rank)
    values = np.zeros(n)
    for start, stop in _blocks(Xv.shape[0], n):
        order = _stable_argsort(_sq_distances(Xv[start:stop], X))
        match = (y[order] == yv[start:stop, None]).astype(np.float64)
        steps = (match[:, :-1] - match[:, 1:]) * factor  # s_i - s_{i+1}, i = 1..N-1
        s = np.empty_like(match)
        s[:, -1] = match[:, -1] / n
        s[:, :-1] = s[:, -1:] + np.cumsum(steps[:, ::-1], axis=1)[:, ::-1]
        values += np.bincount(order.ravel(), weights=s.ravel(), minlength=n)
    return values / Xv.shape[0]


def knn_game(
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    groups: ArrayLike,
    k: int = 5,
    names: Sequence[str] | None = None,
) -> CoalitionGame:
    """The KNN utility game whose players are groups of training points (parties).

    Parameters
    ----------
    X_train, y_train, X_val, y_val, k
        As in :func:`knn_shapley`.
    groups : array-like of int, shape (n_train,)
        Player of each training point, ``0 .. M - 1`` (every player holds a point;
        ``M`` at most 25).
    names : sequence of str, optional
        Player names; default ``"0", "1", ...``.

    Returns
    -------
    CoalitionGame
        ``v(S)`` is the KNN utility of the pooled points of coalition ``S`` (mean over
        validation points; ``v(empty) = 0``).

    Examples
    --------
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> game = knn_game(X, [0, 0, 1, 1], [[0.2]], [0], groups=[0, 0, 1, 1], k=1)
    >>> game.table.tolist(), game.shapley().values.tolist()
    ([0.0, 1.0, 0.0, 1.0], [1.0, 0.0])
    """
    X, y, Xv, yv, k = _check(X_train, y_train, X_val, y_val, k)
    g = np.asarray(groups)
    if g.shape != (X.shape[0],) or not np.issubdtype(g.dtype, np.integer) or g.min() < 0:
        raise ValueError(
            "parameter 'groups' must hold one non-negative integer per training point "
            f"({X.shape[0]}); got shape {g.shape}, dtype {g.dtype}"
        )
    m = int(g.max()) + 1
    check_int("number of groups", m, maximum=MAX_EXACT_PLAYERS)
    missing = np.setdiff1d(np.arange(m), g)
    if missing.size:
        raise ValueError(f"parameter 'groups' must use every player 0..{m - 1}; missing {missing}")
    names = check_names("names", [str(i) for i in range(m)] if names is None else names, m)
    # Each group's k nearest points (fewer if it holds fewer), per validation point.
    cand_d, cand_match, cand_group = [], [], []
    for j in range(m):
        rows = np.flatnonzero(g == j)
        kj = min(k, rows.size)
        d = _sq_distances(Xv, X[rows])
        near = np.argpartition(d, kj - 1, axis=1)[:, :kj] if kj < rows.size else None
        idx = np.broadcast_to(np.arange(rows.size), d.shape) if near is None else near
        cand_d.append(np.take_along_axis(d, idx, axis=1))
        cand_match.append((y[rows][idx] == yv[:, None]).astype(np.float64))
        cand_group.append(np.full(idx.shape, j))
    dist = np.concatenate(cand_d, axis=1)  # (n_val, C), C <= m k
    order = np.lexsort((np.concatenate(cand_group, axis=1), dist), axis=1)
    match = np.take_along_axis(np.concatenate(cand_match, axis=1), order, axis=1)
    group = np.take_along_axis(np.concatenate(cand_group, axis=1), order, axis=1)
    masks = np.arange(1 << m, dtype=np.int64)
    table = np.zeros(1 << m)
    chunk = max(1, _BLOCK_ENTRIES // (masks.size * group.shape[1]))
    for start in range(0, Xv.shape[0], chunk):
        grp, mt = group[start : start + chunk], match[start : start + chunk]
        member = (masks[:, None, None] >> grp[None]) & 1  # (2^m, chunk, C)
        taken = member * (np.cumsum(member, axis=2) <= k)
        table += np.einsum("scj,cj->s", taken, mt) / k
    return CoalitionGame(table / Xv.shape[0], names, {"k": k, "n_val": int(Xv.shape[0])})


def _check(
    X_train: ArrayLike, y_train: ArrayLike, X_val: ArrayLike, y_val: ArrayLike, k: int
) -> tuple[NDArray[np.float64], NDArray[np.generic], NDArray[np.float64], NDArray[np.generic], int]:
    X = check_2d_features("X_train", X_train)
    Xv = check_2d_features("X_val", X_val)
    y, yv = np.asarray(y_train), np.asarray(y_val)
    if y.shape != (X.shape[0],):
        raise ValueError(
            f"parameter 'y_train' must have one label per row of 'X_train' ({X.shape[0]}); "
            f"got shape {y.shape}"
        )
    if yv.shape != (Xv.shape[0],):
        raise ValueError(
            f"parameter 'y_val' must have one label per row of 'X_val' ({Xv.shape[0]}); "
            f"got shape {yv.shape}"
        )
    if Xv.shape[1] != X.shape[1]:
        raise ValueError(
            f"parameter 'X_val' must have as many features as 'X_train' ({X.shape[1]}); "
            f"got {Xv.shape[1]}"
        )
    return X, y, Xv, yv, check_int("k", k, minimum=1)


def _sq_distances(A: NDArray[np.float64], B: NDArray[np.float64]) -> NDArray[np.float64]:
    """Squared Euclidean distances (len(A), len(B)); same order as the distances."""
    d = (A**2).sum(axis=1)[:, None] - 2.0 * (A @ B.T) + (B**2).sum(axis=1)[None, :]
    return np.maximum(d, 0.0)


def _stable_argsort(d: NDArray[np.float64]) -> NDArray[np.intp]:
    """Row-wise argsort, equal distances in index order (introsort, then a stable
    re-sort of the rows that hold ties: the same result as ``kind="stable"``, faster)."""
    order = np.argsort(d, axis=1)
    ties = (np.diff(np.take_along_axis(d, order, axis=1), axis=1) == 0).any(axis=1)
    if ties.any():
        order[ties] = np.argsort(d[ties], axis=1, kind="stable")
    return order


def _blocks(n_val: int, n_train: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_ENTRIES // max(n_train, 1))
    return [(s, min(s + step, n_val)) for s in range(0, n_val, step)]
