r"""The egalitarian solution.

.. math::

    E(S, d) = \arg\max_{u \in S} \min_i (u_i - d_i),

the outcome whose smallest gain is largest (Kalai 1977). On strictly comprehensive
convex sets every player gains the same amount. Ties (flat parts of the boundary, finite
sets) are broken toward the largest total gain, which makes the solution Pareto
optimal -- a first step of the leximin refinement.

References
----------
E. Kalai, "Proportional solutions to bargaining situations: interpersonal utility
comparisons", Econometrica 45 (1977) 1623-1630.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from coopml.bargaining import _engine
from coopml.bargaining.result import BargainingSolution
from coopml.bargaining.utility_sets import ConvexUtilitySet, FiniteUtilitySet, UtilitySet

__all__ = ["egalitarian"]


def egalitarian(problem: UtilitySet, disagreement: ArrayLike | None = None) -> BargainingSolution:
    """Egalitarian solution: maximise the smallest gain ``min_i (u_i - d_i) >= 0``.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set ``S``.
    disagreement : array_like of shape (n_players,), optional
        The disagreement point ``d`` (default: zeros).

    Returns
    -------
    BargainingSolution
        ``info["level"]`` (convex sets) or ``info["score"]`` is the common gain.

    Examples
    --------
    >>> from coopml.bargaining import ConvexUtilitySet
    >>> box = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] + 2 * u[1] <= 3]))
    >>> np.round(egalitarian(box).utilities, 4).tolist()
    [1.0, 1.0]
    """
    problem = _engine.check_problem(problem)
    d = _engine.check_vector("disagreement", disagreement, problem.n_players, default=0.0)
    if isinstance(problem, ConvexUtilitySet):
        return _engine.lexicographic_cvx(problem, d, "egalitarian", np.ones(problem.n_players), {})

    def score(gains: np.ndarray) -> np.ndarray:
        low = gains.min(axis=1)
        return np.where(low >= 0, low, -np.inf)

    if isinstance(problem, FiniteUtilitySet):
        return _engine.solve_finite(problem, d, "egalitarian", score, {})
    return _engine.solve_curve(problem, d, "egalitarian", score, {})
