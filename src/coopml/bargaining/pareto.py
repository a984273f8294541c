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

    def pareto_at(t: float) -> bool:
        return not _engine.dominated_rows(curve.evaluate([t]), reference, tol)[0]

    def boundary(good: float, bad: float) -> float:
        for _ in range(60):
            mid = 0.5 * (good + bad)
            if pareto_at(mid):
                good = mid
            else:
                bad = mid
        return good

    intervals = []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1, strict=True):
        low = grid[start] if start == 0 else boundary(grid[start], grid[start - 1])
        high = grid[stop] if stop == grid.size - 1 else boundary(grid[stop], grid[stop + 1])
        intervals.append((float(low), float(high)))
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
        _, _, u, x = _engine.solve_cvx(problem, lambda x, u, w=w: w @ u, lambda x, u: [])
        if u is not None:
            us.append(u)
            xs.append(x)
    if not us:
        raise ValueError("parameter 'problem' describes an empty (infeasible) utility set")
    return ParetoFrontier(utilities=np.array(us), points=tuple(xs))
