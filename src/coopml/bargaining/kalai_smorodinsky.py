r"""The Kalai-Smorodinsky solution.

With the ideal point :math:`a_i = \max\{u_i : u \in S, u \ge d\}`,

.. math::

    KS(S, d) = \arg\max_{u \in S,\ u \ge d} \min_i \frac{u_i - d_i}{a_i - d_i},

the furthest point of :math:`S` on the segment from :math:`d` to :math:`a`: gains are
proportional to the ideal gains. It replaces Nash's independence of irrelevant
alternatives by individual monotonicity (Kalai & Smorodinsky 1975). Ties are broken
toward the largest total gain (Pareto optimality). Players whose ideal gain is zero are
left out of the ratio.

References
----------
E. Kalai and M. Smorodinsky, "Other solutions to Nash's bargaining problem",
Econometrica 43 (1975) 513-518.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from coopml.bargaining import _engine
from coopml.bargaining.result import BargainingSolution
from coopml.bargaining.utility_sets import (
    ConvexUtilitySet,
    FiniteUtilitySet,
    UtilityCurve,
    UtilitySet,
)

__all__ = ["ideal_point", "kalai_smorodinsky"]


def ideal_point(problem: UtilitySet, disagreement: ArrayLike | None = None) -> np.ndarray:
    """The ideal (utopia) point: each player's best individually rational utility.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set ``S``.
    disagreement : array_like of shape (n_players,), optional
        The disagreement point ``d`` (default: zeros).

    Returns
    -------
    ndarray of shape (n_players,)
        ``a_i = max{u_i : u in S, u >= d}``; equals ``d`` when no outcome is individually
        rational.

    Examples
    --------
    >>> from coopml.bargaining import FiniteUtilitySet
    >>> ideal_point(FiniteUtilitySet([[3, 0], [1, 1], [2, 2], [5, -1]])).tolist()
    [3.0, 2.0]
    """
    problem = _engine.check_problem(problem)
    n = problem.n_players
    d = _engine.check_vector("disagreement", disagreement, n, default=0.0)
    if isinstance(problem, ConvexUtilitySet):
        ideal = d.copy()
        for i in range(n):

            def own(x: Any, u: Any, i: int = i) -> Any:
                return u[i]

            _, value, u, _ = _engine.solve_cvx(problem, own, lambda x, u: [u >= d])
            if u is None:
                return d.copy()
            ideal[i] = value
        return ideal
    values = problem.utilities if isinstance(problem, FiniteUtilitySet) else problem.values
    rational = np.all(values >= d, axis=1)
    if not np.any(rational):
        return d.copy()
    ideal = values[rational].max(axis=0)
    if isinstance(problem, UtilityCurve):
        curve_: UtilityCurve = problem
        _, anchors = _engine.curve_anchors(problem)
        for i in range(n):
            if np.all(anchors[i] >= d):  # the unconstrained maximiser is individually rational
                ideal[i] = max(ideal[i], anchors[i, i])
                continue
            scores = np.where(rational, values[:, i], -np.inf)
            k = int(np.argmax(scores))
            lo, hi = _engine.neighbours(problem.grid, k)

            def rational_i(t: np.ndarray, i: int = i, curve: UtilityCurve = curve_) -> np.ndarray:
                return _rational_coordinate(curve.evaluate(t), d, i)

            _, best = _engine.zoom_max(rational_i, lo, hi)
            ideal[i] = max(ideal[i], best)
    return ideal


def _rational_coordinate(U: np.ndarray, d: np.ndarray, i: int) -> np.ndarray:
    return np.where(np.all(U >= d, axis=1), U[:, i], -np.inf)


def kalai_smorodinsky(
    problem: UtilitySet, disagreement: ArrayLike | None = None
) -> BargainingSolution:
    """Kalai-Smorodinsky solution: gains proportional to the ideal gains ``a - d``.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set ``S``.
    disagreement : array_like of shape (n_players,), optional
        The disagreement point ``d`` (default: zeros).

    Returns
    -------
    BargainingSolution
        ``info["ideal"]`` is the ideal point ``a``.

    Examples
    --------
    >>> from coopml.bargaining import ConvexUtilitySet
    >>> box = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] + 2 * u[1] <= 2]))
    >>> np.round(kalai_smorodinsky(box).utilities, 4).tolist()
    [1.0, 0.5]
    """
    problem = _engine.check_problem(problem)
    n = problem.n_players
    d = _engine.check_vector("disagreement", disagreement, n, default=0.0)
    ideal = ideal_point(problem, d)
    span = ideal - d
    info = {"ideal": ideal.tolist()}
    active = span > _engine.tolerance(np.abs(ideal) + np.abs(d))
    if not np.any(active):
        return _engine.no_agreement("kalai_smorodinsky", d, info)
    if isinstance(problem, ConvexUtilitySet):
        return _engine.lexicographic_cvx(
            problem, d, "kalai_smorodinsky", np.where(active, span, 0.0), info
        )

    def score(gains: np.ndarray) -> np.ndarray:
        low = (gains[:, active] / span[active]).min(axis=1)
        return np.where(np.all(gains >= 0, axis=1), low, -np.inf)

    if isinstance(problem, FiniteUtilitySet):
        return _engine.solve_finite(problem, d, "kalai_smorodinsky", score, info)
    return _engine.solve_curve(problem, d, "kalai_smorodinsky", score, info)
