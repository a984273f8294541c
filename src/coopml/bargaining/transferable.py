r"""Bargaining with transferable utility: splitting a joint surplus by side payments.

With transferable utility the players can reach every split of a joint value :math:`v`,
so the utility-possibility set is :math:`S = \{u : \sum_i u_i \le v\}` and with
disagreement point :math:`d` the surplus is :math:`s = v - \sum_i d_i`. On this set the
solutions have closed forms:

* Nash (weights :math:`w`): :math:`u_i = d_i + s\, w_i / \sum_j w_j` (equal gains
  without weights);
* Kalai-Smorodinsky: every ideal gain equals :math:`s`, so the gains are equal;
* egalitarian: equal gains;
* utilitarian: every split with :math:`\sum_i u_i = v` maximises the sum; the equal
  split of the surplus is returned (``info["unique"]`` is false).

There is an agreement iff :math:`s > 0` (every player strictly gains).

References
----------
J. F. Nash, "The bargaining problem", Econometrica 18 (1950) 155-162.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from coopml.bargaining import _engine
from coopml.bargaining.result import BargainingSolution

__all__ = ["TU_RULES", "transferable_utility_split"]

TU_RULES = ("nash", "kalai_smorodinsky", "egalitarian", "utilitarian")
"""Bargaining rules accepted by :func:`transferable_utility_split`."""


def transferable_utility_split(
    total: float,
    disagreement: ArrayLike,
    rule: str = "nash",
    *,
    weights: ArrayLike | None = None,
) -> BargainingSolution:
    """Split a joint value among players with side payments, by a bargaining rule.

    Parameters
    ----------
    total : float
        The joint value ``v`` the players share if they agree.
    disagreement : array_like of shape (n_players,)
        What each player gets without agreement.
    rule : {"nash", "kalai_smorodinsky", "egalitarian", "utilitarian"}
    weights : array_like of shape (n_players,), optional
        Bargaining powers (``"nash"`` only; default equal).

    Returns
    -------
    BargainingSolution
        ``utilities`` is the split (``point`` the side payments ``u - d``); no agreement
        (``utilities == d``) when the surplus is not positive.

    Examples
    --------
    >>> s = transferable_utility_split(10.0, [2.0, 4.0])
    >>> s.utilities.tolist(), s.agreement
    ([4.0, 6.0], True)
    >>> transferable_utility_split(10.0, [2.0, 4.0], weights=[3, 1]).utilities.tolist()
    [5.0, 5.0]
    >>> transferable_utility_split(5.0, [2.0, 4.0]).agreement
    False
    """
    if rule not in TU_RULES:
        allowed = ", ".join(repr(r) for r in TU_RULES)
        raise ValueError(f"parameter 'rule' must be one of {allowed}; got {rule!r}")
    d = _engine.check_vector("disagreement", disagreement, np.size(disagreement), default=0.0)
    if isinstance(total, bool) or not isinstance(total, int | float | np.integer | np.floating):
        raise TypeError(f"parameter 'total' must be a real number; got {total!r}")
    v = float(total)
    if not np.isfinite(v):
        raise ValueError(f"parameter 'total' must be finite; got {v}")
    if weights is not None and rule != "nash":
        raise ValueError(f"parameter 'weights' applies to rule 'nash' only; got rule {rule!r}")
    w = _engine.check_weights(weights, d.size)
    surplus = v - float(d.sum())
    info = {"surplus": surplus, "unique": rule != "utilitarian", "weights": w.tolist()}
    if not surplus > _engine.tolerance(np.append(d, v)):
        return _engine.no_agreement(rule, d, info)
    gains = surplus * w / w.sum()
    return BargainingSolution(
        method=rule, utilities=d + gains, disagreement=d, point=gains, info=info
    )
