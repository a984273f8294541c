r"""Pareto frontiers of utility-possibility sets.

An outcome :math:`u \in S` is Pareto optimal when no :math:`v \in S` has
:math:`v \ge u` with :math:`v_j > u_j` for some :math:`j`. On a parametrised curve the
Pareto-optimal parameters form a union of intervals (possibly disconnected, e.g. the
multi-specialist fine-tuning game of Laufer, Kleinberg & Heidari 2023); for
quasi-concave two-player curves it is the interval between the players' maximisers. On
a convex set every strictly positive weighting :math:`\max_u w \cdot u` gives a Pareto
point; sweeping the weights traces the (supported) frontier.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_int
from coopml.bargaining import _engine
from coopml.bargaining.result import ParetoFrontier
from coopml.bargaining.utility_sets import (
    ConvexUtilitySet,
    FiniteUtilitySet,
    UtilityCurve,
    UtilitySet,
)

__all__ = ["pareto_frontier", "pareto_mask"]


def pareto_mask(utilities: ArrayLike, *, tol: float = 0.0) -> NDArray[np.bool_]:
    """Non-dominated filter: which rows no other row weakly improves (strictly somewhere).

    Parameters
    ----------
    utilities : array_like of shape (n_points, n_players)
        One utility vector per row.
    tol : float
        Differences up to ``tol`` count as ties.

    Returns
    -------
    ndarray of bool, shape (n_points,)

    Examples
    --------
    >>> pareto_mask([[1, 0], [0, 1], [0.5, 0.5], [0.4, 0.4], [1, 0]]).tolist()
    [True, True, True, False, True]
    """
    U = np.asarray(utilities, dtype=np.float64)
    if U.ndim != 2:
        raise ValueError(
            f"parameter 'utilities' must have shape (n_points, n_players); got {U.shape}"
        )
    if not np.all(np.isfinite(U)):
        raise ValueError("parameter 'utilities' must be finite (no NaN or inf)")
    if tol < 0:
        raise ValueError(f"parameter 'tol' must be >= 0; got {tol}")
    return ~_engine.dominated_rows(U, U, tol)


def pareto_frontier(problem: UtilitySet, *, n_points: int = 64) -> ParetoFrontier:
    """The Pareto-optimal outcomes of a utility-possibility set.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set.
    n_points : int
        Convex sets only: number of weight vectors swept (each a convex program).

    Returns
    -------
    ParetoFrontier
        Curves: ``intervals`` holds the Pareto-optimal parameters as a union of closed
        intervals whose endpoints are refined by bisection, and ``points`` the Pareto
        grid parameters. Finite sets: ``indices`` of the non-dominated rows. Convex
        sets: weighted-sum maximisers (``points`` are the decision variables).

    Examples
    --------
    >>> from coopml.bargaining import UtilityCurve
    >>> curve = UtilityCurve(lambda t: np.column_stack([t, t * (1 - t)]))
    >>> [tuple(round(v, 6) for v in i) for i in pareto_frontier(curve).intervals]
    [(0.5, 1.0)]
    """
    problem = _engine.check_problem(problem)
    check_int("n_points", n_points, minimum=1)
    if isinstance(problem, FiniteUtilitySet):
        mask = pareto_mask(problem.utilities)
        idx = np.flatnonzero(mask)
        return ParetoFrontier(
            utilities=problem.utilities[idx],
            points=tuple(problem.outcome(int(i)) for i in idx),
            indices=idx,
        )
    if isinstance(problem, UtilityCurve):
        return _curve_frontier(problem)
    return _convex_frontier(problem, n_points)


def _curve_frontier(curve: UtilityCurve) -> ParetoFrontier:
    reference = _engine.curve_reference(curve)
    tol = _engine.tolerance(reference)
    mask = ~_engine.dominated_rows(curve.values, reference, tol)
    grid = curve.grid

    # endpoints of every run of Pareto grid points, refined together between the Pareto
    # grid point ("good") and its dominated neighbour ("bad")
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    good = np.concatenate([grid[starts], grid[stops]])
    bad = np.concatenate(
        [grid[np.maximum(starts - 1, 0)], grid[np.minimum(stops + 1, grid.size - 1)]]
    )
    fractions = np.linspace(0.0, 1.0, 17)
    for _ in range(14):  # each round shrinks every bracket 16-fold, in one batched call
        if np.all(np.abs(good - bad) <= 1e-14 * max(1.0, float(np.abs(grid).max()))):
            break
        ts = good[:, None] + fractions[None, :] * (bad - good)[:, None]
        dominated = _engine.dominated_rows(curve.evaluate(ts.ravel()), reference, tol)
        dominated = dominated.reshape(ts.shape)
        dominated[:, -1] = True  # the far end is known to be dominated
        first_bad = np.argmax(dominated, axis=1)
        rows = np.arange(ts.shape[0])
        good, bad = ts[rows, np.maximum(first_bad - 1, 0)], ts[rows, first_bad]
    k = starts.size
    intervals = [(float(a), float(b)) for a, b in zip(good[:k], good[k:], strict=True)]
    if not intervals:  # every grid point is dominated by a refined maximiser
        ts, us = _engine.curve_anchors(curve)
        keep = ~_engine.dominated_rows(us, reference, tol)
        intervals = sorted((float(t), float(t)) for t in ts[keep])
    return ParetoFrontier(
        utilities=curve.values[mask],
        points=tuple(float(t) for t in grid[mask]),
        intervals=tuple(intervals),
    )


def _simplex_weights(n: int, n_points: int) -> NDArray[np.float64]:
    """At least ``n_points`` strictly positive weight vectors on the simplex (a lattice)."""
    if n == 2:
        theta = np.linspace(0, np.pi / 2, n_points + 2)[1:-1]
        return np.column_stack([np.cos(theta), np.sin(theta)])
    k = n
    while len(list(itertools.combinations(range(k - 1), n - 1))) < n_points:
        k += 1
    rows = []
    for cuts in itertools.combinations(range(1, k), n - 1):
        parts = np.diff(np.concatenate([[0], cuts, [k]]))
        rows.append(parts / k)
    return np.array(rows)


def _convex_frontier(problem: ConvexUtilitySet, n_points: int) -> ParetoFrontier:
    us: list[NDArray[np.float64]] = []
    xs: list[Any] = []
    for w in _simplex_weights(problem.n_players, n_points):

        def weighted(x: Any, u: Any, w: NDArray[np.float64] = w) -> Any:
            return w @ u

        _, _, u, x = _engine.solve_cvx(problem, weighted, lambda x, u: [])
        if u is not None:
            us.append(u)
            xs.append(x)
    if not us:
        raise ValueError("parameter 'problem' describes an empty (infeasible) utility set")
    return ParetoFrontier(utilities=np.array(us), points=tuple(xs))
