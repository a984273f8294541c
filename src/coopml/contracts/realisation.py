r"""Proportional assignment: turning expected rewards into real stochastic model rewards.

The first-moment program of Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) chooses
expected rewards :math:`t_i \le \bar t_i(m) = E[v(a(n\cdot m)) \mid n_i \ge 1]`. They are
realised by proportional assignment: in outcome :math:`n`, a type-:math:`i` participant
receives a model worth

.. math:: \rho_i(n) = \frac{t_i}{\bar t_i(m)}\, v(a(n\cdot m)),

never more than the trained model (because :math:`t_i \le \bar t_i`) and with conditional
mean exactly :math:`t_i`. With a linear valuation :math:`v(r) = s\,r` the model handed
out has accuracy :math:`\rho_i(n)/s`, i.e. the trained model degraded to a fraction
:math:`t_i / \bar t_i` of its accuracy (for instance by noise, or a checkpoint from
earlier in training).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml.contracts.accuracy import AccuracyCurve
from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.valuation import Valuation

__all__ = ["max_rewards", "proportional_rewards"]

FloatArray = NDArray[np.float64]


def max_rewards(
    contributions: ArrayLike, space: OutcomeSpace, curve: AccuracyCurve, valuation: Valuation
) -> tuple[FloatArray, FloatArray]:
    """The trained model's value per outcome and the reward caps ``tbar_i(m)``.

    Returns
    -------
    model_values : ndarray of shape (K,)
        ``v(a(n.m))`` for every outcome of ``space``.
    tbar : ndarray of shape (I,)
        ``E[v(a(n.m)) | n_i >= 1]``.

    Examples
    --------
    >>> from coopml.contracts import (GeneralizationBoundCurve, LinearValuation,
    ...                               enumerate_outcomes)
    >>> space = enumerate_outcomes(2, [0.5, 0.5])
    >>> values, tbar = max_rewards([500.0, 1000.0], space, GeneralizationBoundCurve(),
    ...                            LinearValuation())
    >>> values.round(2).tolist(), tbar.round(2).tolist()
    ([81.26, 78.53, 74.0], [77.02, 79.44])
    """
    m = np.asarray(contributions, dtype=np.float64)
    values = np.asarray(valuation(curve(space.counts @ m)), dtype=np.float64)
    return values, space.conditional_expectations(values)


def proportional_rewards(
    contributions: ArrayLike,
    rewards: ArrayLike,
    space: OutcomeSpace,
    curve: AccuracyCurve,
    valuation: Valuation,
) -> FloatArray:
    """Realised model values ``rho_i(n)`` of every type in every outcome.

    Parameters
    ----------
    contributions, rewards : array-like of shape (I,)
        The menu ``(m, t)``.
    space : OutcomeSpace

    Returns
    -------
    ndarray of shape (K, I)
        ``(t_i / tbar_i) v(a(n.m))`` where ``n_i >= 1``; ``nan`` where type ``i`` is
        absent from the outcome (nobody of that type to pay).

    Examples
    --------
    >>> from coopml.contracts import (GeneralizationBoundCurve, LinearValuation,
    ...                               enumerate_outcomes)
    >>> space = enumerate_outcomes(2, [0.5, 0.5])
    >>> rho = proportional_rewards([500.0, 1000.0], [70.0, 79.44], space,
    ...                            GeneralizationBoundCurve(), LinearValuation())
    >>> rho.round(2).tolist()
    [[nan, 81.26], [71.37, 78.53], [67.26, nan]]
    """
    t = np.asarray(rewards, dtype=np.float64)
    values, tbar = max_rewards(contributions, space, curve, valuation)
    share = np.divide(t, tbar, out=np.zeros_like(t), where=tbar > 0)
    rho = values[:, None] * share[None, :]
    return np.where(space.present > 0, rho, np.nan)
