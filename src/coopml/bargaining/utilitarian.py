r"""The utilitarian solution.

.. math::

    U(S, d) = \arg\max_{u \in S,\ u \ge d} \sum_i w_i u_i,

the individually rational outcome with the largest (weighted) total utility. It is
Pareto optimal but not invariant to rescaling utilities; it needs comparable units
(here: money). See Thomson (1994) for its axiomatic treatment.

References
----------
W. Thomson, "Cooperative models of bargaining", Handbook of Game Theory 2 (1994)
1237-1284.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from coopml.bargaining import _engine
from coopml.bargaining.result import BargainingSolution
from coopml.bargaining.utility_sets import ConvexUtilitySet, FiniteUtilitySet, UtilitySet

__all__ = ["utilitarian"]


def utilitarian(
    problem: UtilitySet,
    disagreement: ArrayLike | None = None,
    *,
    weights: ArrayLike | None = None,
) -> BargainingSolution:
    """Utilitarian solution: maximise ``sum_i w_i u_i`` over individually rational ``u >= d``.

    Parameters
    ----------
    problem : UtilityCurve, FiniteUtilitySet or ConvexUtilitySet
        The utility-possibility set ``S``.
    disagreement : array_like of shape (n_players,), optional
        The disagreement point ``d`` (default: zeros).
    weights : array_like of shape (n_players,), optional
        Positive welfare weights (default: equal).

    Returns
    -------
    BargainingSolution
        Ties are broken toward the largest unweighted total gain.

    Examples
    --------
    >>> from coopml.bargaining import FiniteUtilitySet
    >>> s = utilitarian(FiniteUtilitySet([[3, 0], [1, 1], [2, 2]]))
    >>> s.index, s.utilities.tolist()
    (2, [2.0, 2.0])
    """
    problem = _engine.check_problem(problem)
    n = problem.n_players
    d = _engine.check_vector("disagreement", disagreement, n, default=0.0)
    w = _engine.check_weights(weights, n)
    info = {"weights": w.tolist()}
    if isinstance(problem, ConvexUtilitySet):
        status, _, u, x = _engine.solve_cvx(problem, lambda x, u: w @ u, lambda x, u: [u >= d])
        return _engine.convex_solution(problem, d, "utilitarian", status, u, x, info)

    def score(gains: np.ndarray) -> np.ndarray:
        return np.where(np.all(gains >= 0, axis=1), gains @ w, -np.inf)

    if isinstance(problem, FiniteUtilitySet):
        return _engine.solve_finite(problem, d, "utilitarian", score, info)
    return _engine.solve_curve(problem, d, "utilitarian", score, info)
