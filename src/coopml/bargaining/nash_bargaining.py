r"""The Nash bargaining solution.

.. math::

    N(S, d) = \arg\max_{u \in S,\ u > d} \sum_i w_i \log(u_i - d_i),

the maximiser of the (weighted) product of gains over the disagreement point. With
equal weights it is the unique solution that is Pareto optimal, symmetric, invariant to
positive affine rescaling of each player's utility and independent of irrelevant
alternatives (Nash 1950); unequal weights give the asymmetric solution of Kalai (1977).
On a convex set the problem is convex and solved exactly with cvxpy.

References
----------
J. F. Nash, "The bargaining problem", Econometrica 18 (1950) 155-162.
E. Kalai, "Nonsymmetric Nash solutions and replications of 2-person bargaining",
International Journal of Game Theory 6 (1977) 129-133.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from coopml.bargaining import _engine
from coopml.bargaining.result import BargainingSolution
from coopml.bargaining.utility_sets import (
    ConvexUtilitySet,
    FiniteUtilitySet,
    UtilitySet,
    import_cvxpy,
)

__all__ = ["nash_bargaining"]


def nash_bargaining(
    problem: UtilitySet,
    disagreement: ArrayLike | None = None,
    *,
    weights: ArrayLike | None = None,
) -> BargainingSolution:
    """Nash bargaining solution: maximise ``sum_i w_i log(u_i - d_i)`` over ``u > d``.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set ``S``.
    disagreement : array_like of shape (n_players,), optional
        The disagreement point ``d`` (default: zeros).
    weights : array_like of shape (n_players,), optional
        Bargaining powers ``w_i > 0`` (default: equal, the symmetric solution).

    Returns
    -------
    BargainingSolution
        ``agreement`` is false (and ``utilities == d``) when no outcome gives every
        player a strictly positive gain.

    Examples
    --------
    >>> from coopml.bargaining import ConvexUtilitySet, UtilityCurve
    >>> s = nash_bargaining(UtilityCurve(lambda t: np.column_stack([t, 1 - t])))
    >>> round(s.parameter, 6), s.pareto_optimal
    (0.5, True)
    >>> box = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] + 2 * u[1] <= 2]))
    >>> np.round(nash_bargaining(box).utilities, 4).tolist()
    [1.0, 0.5]
    """
    problem = _engine.check_problem(problem)
    n = problem.n_players
    d = _engine.check_vector("disagreement", disagreement, n, default=0.0)
    w = _engine.check_weights(weights, n)
    info = {"weights": w.tolist()}
    if isinstance(problem, ConvexUtilitySet):
        cp = import_cvxpy()

        status, _, u, x = _engine.solve_cvx(
            problem, lambda x, u: cp.sum(cp.multiply(w, cp.log(u - d))), lambda x, u: []
        )
        return _engine.convex_solution(problem, d, "nash", status, u, x, info)

    def score(gains: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.where(gains > 0, gains, np.nan)) @ w
        return np.where(np.all(gains > 0, axis=1), logs, -np.inf)

    if isinstance(problem, FiniteUtilitySet):
        return _engine.solve_finite(problem, d, "nash", score, info)
    return _engine.solve_curve(problem, d, "nash", score, info)
