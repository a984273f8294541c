"""Shared search engine of the bargaining solutions (private).

Every solution except on convex sets is "maximise a score of the gains ``u - d``":
the score is ``-inf`` where an outcome is not individually rational. Finite sets are
enumerated exactly; curves are searched on their grid and refined with a bounded scalar
optimiser around the best grid point. Convex sets are solved with cvxpy by each
solution module; :func:`convex_pareto_check` certifies Pareto optimality there.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml.bargaining.result import BargainingSolution
from coopml.bargaining.utility_sets import (
    ConvexUtilitySet,
    FiniteUtilitySet,
    UtilityCurve,
    import_cvxpy,
)

Score = Callable[[NDArray[np.float64]], NDArray[np.float64]]
Array = NDArray[np.float64]


def check_problem(problem: Any) -> UtilityCurve | FiniteUtilitySet | ConvexUtilitySet:
    if not isinstance(problem, UtilityCurve | FiniteUtilitySet | ConvexUtilitySet):
        raise TypeError(
            "parameter 'problem' must be a UtilityCurve, FiniteUtilitySet or ConvexUtilitySet; "
            f"got {type(problem).__name__}"
        )
    return problem


def check_vector(name: str, value: ArrayLike | None, n: int, *, default: float) -> Array:
    if value is None:
        return np.full(n, default)
    try:
        array = np.array(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"parameter '{name}' must be a numeric vector; got {value!r}") from None
    if array.shape != (n,):
        raise ValueError(
            f"parameter '{name}' must have one entry per player ({n}); got {array.shape[0]}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"parameter '{name}' must be finite; got {array.tolist()}")
    return array


def check_weights(weights: ArrayLike | None, n: int) -> Array:
    w = check_vector("weights", weights, n, default=1.0)
    if np.any(w <= 0):
        raise ValueError(f"parameter 'weights' must be > 0 for every player; got {w.tolist()}")
    return w


def tolerance(values: Array) -> float:
    """Absolute comparison tolerance relative to the scale of ``values``."""
    scale = float(np.max(np.abs(values))) if values.size else 0.0
    return 1e-10 * max(scale, 1e-300)


def dominated_rows(U: Array, V: Array, tol: float = 0.0) -> NDArray[np.bool_]:
    """``out[i]``: some row of ``V`` is >= ``U[i] - tol / 1000`` everywhere and > ``U[i] + tol``
    in one coordinate: rounding noise (far below ``tol``) does not break a tie, and a
    strict improvement must exceed ``tol``."""
    out = np.zeros(U.shape[0], dtype=bool)
    chunk = max(1, int(4e6 // max(1, V.shape[0] * V.shape[1])))
    for start in range(0, U.shape[0], chunk):
        block = U[start : start + chunk, None, :]
        ge = np.all(V[None, :, :] >= block - 1e-3 * tol, axis=2)
        gt = np.any(V[None, :, :] > block + tol, axis=2)
        out[start : start + chunk] = np.any(ge & gt, axis=1)
    return out


def _tie_break(scores: Array, gains: Array) -> int:
    """Index of the best score; among near-ties, the largest total gain, then the first."""
    best = float(np.max(scores))
    near = np.flatnonzero(scores >= best - 1e-12 * max(1.0, abs(best)))
    return int(near[np.argmax(gains[near].sum(axis=1))])


def no_agreement(method: str, d: Array, info: Mapping[str, Any]) -> BargainingSolution:
    return BargainingSolution(
        method=method,
        utilities=d,
        disagreement=d,
        pareto_optimal=False,
        agreement=False,
        info=dict(info, reason="no outcome improves on the disagreement point"),
    )


def solve_finite(
    problem: FiniteUtilitySet, d: Array, method: str, score: Score, info: Mapping[str, Any]
) -> BargainingSolution:
    gains = problem.utilities - d
    scores = score(gains)
    if not np.any(np.isfinite(scores)):
        return no_agreement(method, d, info)
    k = _tie_break(np.where(np.isfinite(scores), scores, -np.inf), gains)
    u = problem.utilities[k]
    return BargainingSolution(
        method=method,
        utilities=u,
        disagreement=d,
        point=problem.outcome(k),
        index=k,
        pareto_optimal=not dominated_rows(u[None, :], problem.utilities)[0],
        info=dict(info, score=float(scores[k])),
    )


def zoom_max(
    f: Callable[[Array], Array], lo: float, hi: float, *, points: int = 33, rounds: int = 7
) -> tuple[float, float]:
    """Maximise a vectorised ``f`` on ``[lo, hi]`` by repeated grid zooming.

    Each round evaluates ``points`` equally spaced parameters in one call (so a batched
    utility function pays for one evaluation per round, not per point) and zooms into
    the two cells around the best one; the bracket shrinks 16-fold per round. Ties go to
    the earliest point, so an end point that is as good as its inside wins.
    """
    best_t, best = lo, -np.inf
    for _ in range(rounds):
        ts = np.linspace(lo, hi, points)
        values = np.asarray(f(ts), dtype=np.float64)
        k = int(np.argmax(values))
        if values[k] > best:
            best_t, best = float(ts[k]), float(values[k])
        lo, hi = ts[max(k - 1, 0)], ts[min(k + 1, points - 1)]
        if hi - lo <= 1e-15 * max(1.0, abs(best_t)):
            break
    return best_t, best


def neighbours(grid: Array, k: int) -> tuple[float, float]:
    return float(grid[max(k - 1, 0)]), float(grid[min(k + 1, grid.size - 1)])


def curve_anchors(curve: UtilityCurve) -> tuple[Array, Array]:
    """Refined maximiser of each coordinate: extra points for domination checks (cached)."""
    cached: tuple[Array, Array] | None = curve.cache.get("anchors")
    if cached is not None:
        return cached
    ts = []
    for i in range(curve.n_players):

        def coordinate(x: Array, i: int = i) -> Array:
            return curve.evaluate(x)[:, i]

        k = int(np.argmax(curve.values[:, i]))
        t, _ = zoom_max(coordinate, *neighbours(curve.grid, k))
        ts.append(t)
    anchors = (np.array(ts), curve.evaluate(ts))
    curve.cache["anchors"] = anchors
    return anchors


def curve_local_maxima(curve: UtilityCurve, *, per_player: int = 16) -> tuple[Array, Array]:
    """Refined strict local maxima of each coordinate other than its global one (cached).

    A grid point is a strict local maximum of ``u_i`` when it is at least both
    neighbours and above one of them by more than the tolerance (so flat stretches do
    not count); up to ``per_player`` of the highest per coordinate are refined between
    their neighbours with :func:`scipy.optimize.minimize_scalar` (bounded Brent) and
    kept where the refinement improves on the grid. On a curve that jumps or has flat
    pieces, such a maximum can be a Pareto-optimal outcome that no grid point attains
    (e.g. one player's utility peaks where the other's stays at zero). The global
    maximum of each coordinate is :func:`curve_anchors`.
    """
    cached: tuple[Array, Array] | None = curve.cache.get("local_maxima")
    if cached is not None:
        return cached
    from scipy.optimize import minimize_scalar

    grid, values = curve.grid, curve.values
    tol = tolerance(values)
    xatol = 1e-12 * (curve.interval[1] - curve.interval[0])
    # a peak's refinement stays within its neighbours, so it cannot gain more than the
    # local variation: peaks dominated even after adding it are not worth refining
    padded = np.pad(values, ((1, 1), (0, 0)), mode="edge")
    variation = np.maximum(np.abs(padded[:-2] - values), np.abs(padded[2:] - values)).max(axis=1)
    reference = np.vstack([values, curve_anchors(curve)[1]])
    hopeless = dominated_rows(values + variation[:, None], reference, tol)
    ts: list[float] = []
    for i in range(curve.n_players):
        v = values[:, i]
        left, right = padded[:-2, i], padded[2:, i]  # the ends repeat themselves
        peaks = np.flatnonzero(
            (v >= left) & (v >= right) & ((v > left + tol) | (v > right + tol)) & ~hopeless
        )
        peaks = peaks[peaks != int(np.argmax(v))]
        for k in peaks[np.argsort(-v[peaks], kind="stable")][:per_player]:
            lo, hi = neighbours(grid, int(k))

            def negative(x: float, i: int = i) -> float:
                return -float(curve.evaluate([x])[0, i])

            res = minimize_scalar(
                negative, bounds=(lo, hi), method="bounded", options={"xatol": xatol}
            )
            ts.append(float(res.x) if -float(res.fun) > v[k] else float(grid[k]))
    t_arr = np.array(ts, dtype=np.float64)
    maxima = (
        (t_arr, curve.evaluate(t_arr))
        if t_arr.size
        else (t_arr, np.empty((0, curve.n_players), dtype=np.float64))
    )
    curve.cache["local_maxima"] = maxima
    return maxima


def curve_candidates(curve: UtilityCurve) -> tuple[Array, Array]:
    """Refined global and local maxima of every coordinate: ``(parameters, utilities)``."""
    anchor_t, anchor_u = curve_anchors(curve)
    local_t, local_u = curve_local_maxima(curve)
    return np.concatenate([anchor_t, local_t]), np.vstack([anchor_u, local_u])


def curve_reference(curve: UtilityCurve) -> Array:
    """Grid values (breakpoint samples included) plus every refined coordinate maximum:
    the points a curve solution or Pareto set is compared to."""
    return np.vstack([curve.values, curve_candidates(curve)[1]])


def solve_curve(
    curve: UtilityCurve, d: Array, method: str, score: Score, info: Mapping[str, Any]
) -> BargainingSolution:
    gains = curve.values - d
    scores = score(gains)
    if not np.any(np.isfinite(scores)):
        return no_agreement(method, d, info)
    k = _tie_break(np.where(np.isfinite(scores), scores, -np.inf), gains)
    t, value = zoom_max(lambda x: score(curve.evaluate(x) - d), *neighbours(curve.grid, k))
    if not value >= scores[k]:
        t, value = float(curve.grid[k]), float(scores[k])
    u = curve(t)
    reference = curve_reference(curve)
    pareto = not dominated_rows(u[None, :], reference, tolerance(reference))[0]
    return BargainingSolution(
        method=method,
        utilities=u,
        disagreement=d,
        point=t,
        parameter=t,
        pareto_optimal=pareto,
        info=dict(info, score=value, n_grid=curve.n_grid),
    )


# ----------------------------------------------------------------------------- convex sets

_OK = ("optimal", "optimal_inaccurate")
_TIGHT = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def solve_cvx(
    problem: ConvexUtilitySet,
    objective: Callable[[Any, Any], Any],
    extra: Callable[[Any, Any], Sequence[Any]],
) -> tuple[str, float, Array | None, Array | None]:
    """Solve ``maximize objective(x, u)`` over the set plus ``extra(x, u)`` constraints.

    Returns ``(status, value, u, x)``; ``u`` and ``x`` are ``None`` unless solved.
    """
    cp = import_cvxpy()

    x, u, constraints = problem.instantiate()
    prob = cp.Problem(cp.Maximize(objective(x, u)), [*constraints, *extra(x, u)])
    try:
        # "solution may be inaccurate" warnings are replaced by the status we report
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if problem.solver in (None, "CLARABEL"):
                # tight tolerances: an objective accurate to eps locates a flat maximiser
                # only to sqrt(eps); cvxpy's defaults (1e-8) would leave ~1e-4 errors
                prob.solve(solver="CLARABEL", **_TIGHT)
                if str(prob.status) != "optimal":
                    prob.solve(solver="CLARABEL")
            else:
                prob.solve(solver=problem.solver)
    except cp.error.SolverError as exc:
        return f"solver_error: {exc}", float("nan"), None, None
    status = str(prob.status)
    if status in ("unbounded", "unbounded_inaccurate"):
        raise ValueError(
            "parameter 'problem' must describe a bounded utility set; the solver reports "
            f"the objective as unbounded ({status})"
        )
    if status not in _OK or u.value is None:
        return status, float("nan"), None, None
    return (
        status,
        float(prob.value),
        np.asarray(u.value, dtype=np.float64).reshape(-1),
        np.asarray(x.value, dtype=np.float64).reshape(-1),
    )


def convex_pareto_check(problem: ConvexUtilitySet, u_star: Array) -> bool:
    """Pareto optimal iff no point of the set improves the total while dominating ``u_star``."""
    scale = max(1.0, float(np.max(np.abs(u_star))))
    # a small slack keeps the feasible set from collapsing to the single point u_star
    status, value, _, _ = solve_cvx(
        problem,
        lambda x, u: sum(u[i] for i in range(problem.n_players)),
        lambda x, u: [u >= u_star - 1e-9 * scale],
    )
    if status not in _OK:
        return True  # u_star itself is feasible; a failed check is reported as not disproved
    return bool(value - float(np.sum(u_star)) <= 1e-6 * scale)


def convex_solution(
    problem: ConvexUtilitySet,
    d: Array,
    method: str,
    status: str,
    u: Array | None,
    x: Array | None,
    info: Mapping[str, Any],
) -> BargainingSolution:
    if u is None or x is None:
        if status.startswith("solver_error"):
            return BargainingSolution(
                method=method,
                utilities=d,
                disagreement=d,
                pareto_optimal=False,
                agreement=False,
                converged=False,
                info=dict(info, status=status),
            )
        return no_agreement(method, d, dict(info, status=status))
    return BargainingSolution(
        method=method,
        utilities=u,
        disagreement=d,
        point=x,
        pareto_optimal=convex_pareto_check(problem, u),
        converged=status == "optimal",
        info=dict(info, status=status),
    )


def lexicographic_cvx(
    problem: ConvexUtilitySet,
    d: Array,
    method: str,
    direction: Array,
    info: Mapping[str, Any],
) -> BargainingSolution:
    """Max ``s`` with ``u - d >= s * direction``; if that point is only weakly Pareto
    optimal (a flat part of the boundary), the largest total among the ties.

    ``direction = 1`` gives the egalitarian solution, ``direction = a - d`` (ideal gains)
    the Kalai-Smorodinsky solution.
    """
    cp = import_cvxpy()

    s = cp.Variable()
    status, value, u, x = solve_cvx(problem, lambda x, u: s, lambda x, u: [u - d >= s * direction])
    if u is None or x is None or value < -1e-9:
        return convex_solution(problem, d, method, status, None, None, info)
    info = dict(info, level=value)
    if convex_pareto_check(problem, u):
        return convex_solution(problem, d, method, status, u, x, info)
    level = max(value, 0.0) - 1e-8 * max(1.0, abs(value))
    status2, _, u2, x2 = solve_cvx(
        problem,
        lambda x, u: sum(u[i] for i in range(problem.n_players)),
        lambda x, u: [u - d >= level * direction],
    )
    if u2 is None:
        status2, u2, x2 = status, u, x
    return convex_solution(problem, d, method, status2, u2, x2, info)
