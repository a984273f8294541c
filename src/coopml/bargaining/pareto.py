r"""Pareto frontiers of utility-possibility sets.

An outcome :math:`u \in S` is Pareto optimal when no :math:`v \in S` has
:math:`v \ge u` with :math:`v_j > u_j` for some :math:`j`. On a parametrised curve the
Pareto-optimal parameters form a union of intervals and isolated points
(:class:`~coopml.bargaining.ParetoSet`; possibly disconnected, e.g. the multi-specialist
fine-tuning game of Laufer, Kleinberg & Heidari 2023); for quasi-concave two-player
curves it is the interval between the players' maximisers. A curve that is only
piecewise continuous -- it jumps, or one player's utility is flat on a piece while the
other's peaks -- can have Pareto-optimal parameters no interval holds: the set is
computed over the union of the continuous pieces (the grid), the curve's values at and
beside its breakpoints, and the refined local maxima of every player's utility. On
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

__all__ = ["MIN_GAP", "pareto_frontier", "pareto_mask"]

MIN_GAP = 1e-7
"""Smallest gap, relative to a curve's parameter range, kept between parts of its Pareto
set: closer parts are joined. A numerical curve (e.g. subgame-perfect utilities found by
an optimiser) is accurate to about ``1e-9`` near its kinks, which leaves specks of
"Pareto-optimal" parameters a few ``1e-9`` beside the true end of an interval."""


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
        Curves: ``pareto_set`` (:class:`ParetoSet`) holds the Pareto-optimal parameters
        as a union of closed intervals (``intervals``, ends refined to the last
        Pareto-optimal parameter) and isolated points (``isolated``), found over the
        grid, both sides of every breakpoint of the curve and the refined local maxima
        of every player's utility; parts closer than :data:`MIN_GAP` are joined.
        ``points`` lists the Pareto grid parameters and the isolated points. Finite
        sets: ``indices`` of the non-dominated rows. Convex sets: weighted-sum
        maximisers (``points`` are the decision variables).

    Examples
    --------
    >>> from coopml.bargaining import UtilityCurve
    >>> curve = UtilityCurve(lambda t: np.column_stack([t, t * (1 - t)]))
    >>> [tuple(round(v, 6) for v in i) for i in pareto_frontier(curve).intervals]
    [(0.5, 1.0)]

    One player's utility peaks at 0.7 where the other's is flat at 0: an isolated point.

    >>> flat = UtilityCurve(lambda t: np.column_stack(
    ...     [np.where(t < 0.5, t, 0.6 - (t - 0.7) ** 2), np.where(t < 0.5, 1 - t, 0.0)]))
    >>> print(pareto_frontier(flat).pareto_set)
    [0.0000, 0.5000] ∪ {0.7000}
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
    """Pareto set of a curve over the union of its continuous pieces and isolated points.

    Candidates are the grid (with the one-sided samples around every breakpoint) and the
    refined maxima of every coordinate (global and local); the non-dominated filter runs
    over all of them. Runs of consecutive non-dominated grid points are intervals whose
    ends are refined against the dominated neighbour; a run that does not widen, a
    refined maximum that no interval holds, and an "interval" whose utilities all tie
    (the flat top of one smooth maximum, narrower than the grid spacing) are isolated
    points.
    """
    cand_t, cand_u = _engine.curve_candidates(curve)
    reference = _engine.curve_reference(curve)
    tol = _engine.tolerance(reference)
    grid = curve.grid
    mask = ~_engine.dominated_rows(curve.values, reference, tol)
    lows, highs = _refine_runs(curve, mask, reference, tol)
    spacing = (curve.interval[1] - curve.interval[0]) / (curve.n_grid - 1)
    eps = 1e-12 * (curve.interval[1] - curve.interval[0])

    # every Pareto outcome found, as (t, u): intervals are checked for ties below
    found_t = [*cand_t[~_engine.dominated_rows(cand_u, reference, tol)].tolist()]
    intervals: list[tuple[float, float]] = []
    isolated: list[float] = []
    if lows.size:
        ends = curve.evaluate(np.concatenate([lows, highs]))
        u_low, u_high = ends[: lows.size], ends[lows.size :]
        for a, b, ua, ub in zip(lows, highs, u_low, u_high, strict=True):
            if b - a <= eps:
                isolated.append(float(a))
            elif b - a <= spacing and np.all(np.abs(ua - ub) <= 2 * tol):
                found_t.extend([float(a), float(b)])  # one outcome: its best sample below
            else:
                intervals.append((float(a), float(b)))
    points = _isolated_points(curve, intervals, isolated, found_t, tol, spacing, eps)
    intervals, points = _merge_close(
        intervals, points, MIN_GAP * (curve.interval[1] - curve.interval[0])
    )
    # the listed outcomes: the Pareto grid points plus the isolated points off the grid
    extra = np.array([t for t in points if not np.any(np.abs(grid[mask] - t) <= eps)])
    ts = np.concatenate([grid[mask], extra])
    us = (
        np.vstack([curve.values[mask], curve.evaluate(extra)]) if extra.size else curve.values[mask]
    )
    order = np.argsort(ts, kind="stable")
    return ParetoFrontier(
        utilities=us[order],
        points=tuple(float(t) for t in ts[order]),
        intervals=tuple(intervals),
        isolated=tuple(points),
    )


def _merge_close(
    intervals: list[tuple[float, float]], points: list[float], gap: float
) -> tuple[list[tuple[float, float]], list[float]]:
    """Join an interval with the next interval or point less than ``gap`` away: the
    curve cannot resolve such gaps (see :data:`MIN_GAP`)."""
    parts = sorted([*((a, b, True) for a, b in intervals), *((t, t, False) for t in points)])
    merged: list[tuple[float, float, bool]] = []
    for a, b, is_interval in parts:
        if merged and (is_interval or merged[-1][2]) and a - merged[-1][1] <= gap:
            low, high, _ = merged[-1]
            merged[-1] = (low, max(high, b), True)
        else:
            merged.append((a, b, is_interval))
    return [(a, b) for a, b, i in merged if i], [a for a, _, i in merged if not i]


def _refine_runs(
    curve: UtilityCurve, mask: NDArray[np.bool_], reference: NDArray[np.float64], tol: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Ends of every run of Pareto grid points, refined together between the Pareto grid
    point ("good") and its dominated neighbour ("bad"): each round probes 16 points per
    bracket in one batched evaluation of the curve and keeps the last non-dominated one,
    so every returned end is itself a Pareto-optimal parameter."""
    grid = curve.grid
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
    return good[:k], good[k:]


def _isolated_points(
    curve: UtilityCurve,
    intervals: list[tuple[float, float]],
    isolated: list[float],
    found: list[float],
    tol: float,
    spacing: float,
    eps: float,
) -> list[float]:
    """Isolated Pareto points from the degenerate runs and the Pareto outcomes found
    outside every interval, one per outcome: parameters within a grid spacing of each
    other whose utilities tie are one outcome (the one with the largest total is kept),
    and an outcome that ties with the end of an adjacent interval belongs to it."""
    candidates = np.array(sorted(set(isolated) | set(found)), dtype=np.float64)
    if not candidates.size:
        return []
    inside = np.array([any(a - eps <= t <= b + eps for a, b in intervals) for t in candidates])
    candidates = candidates[~inside]
    if not candidates.size:
        return []
    values = curve.evaluate(candidates)
    if intervals:
        ends_t = np.array([v for pair in intervals for v in pair])
        ends_u = curve.evaluate(ends_t)
        near = np.abs(candidates[:, None] - ends_t[None, :]) <= spacing
        tied = np.all(np.abs(values[:, None, :] - ends_u[None, :, :]) <= 2 * tol, axis=2)
        keep = ~np.any(near & tied, axis=1)
        candidates, values = candidates[keep], values[keep]
    kept: list[int] = []
    for j in np.argsort(-values.sum(axis=1), kind="stable"):
        same = [
            abs(candidates[j] - candidates[i]) <= spacing
            and bool(np.all(np.abs(values[j] - values[i]) <= 2 * tol))
            for i in kept
        ]
        if not any(same):
            kept.append(int(j))
    return sorted(float(candidates[j]) for j in kept)


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
