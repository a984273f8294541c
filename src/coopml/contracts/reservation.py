r"""Reservation utilities: what each type gets by training alone.

In Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) a type-:math:`i` participant who
stays out trains on its own data and obtains

.. math:: f_i = \max\{0,\ \max_{m \ge 0} v(a(m)) - c_i m\},

the reservation utility that individual rationality (IR) must respect; the maximiser is
the reservation contribution :math:`m_i^{\mathrm{res}}` (0 when training alone does not
pay). The curve need not be concave near 0 (the generalisation bound is clipped at 0),
so the maximum is located on a log-spaced grid and refined with bounded Brent search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq, minimize_scalar

from coopml.contracts.accuracy import AccuracyCurve
from coopml.contracts.valuation import Valuation

__all__ = ["ReservationResult", "reservation_utilities"]

FloatArray = NDArray[np.float64]
_GRID = np.logspace(-3, 12, 1501)


@dataclass(frozen=True)
class ReservationResult:
    """Training alone, per type.

    Attributes
    ----------
    contributions : ndarray of shape (I,)
        :math:`m_i^{\\mathrm{res}}` (0 where training alone does not pay).
    utilities : ndarray of shape (I,)
        :math:`f_i \\ge 0`.
    model_values : ndarray of shape (I,)
        :math:`v(a(m_i^{\\mathrm{res}}))`.
    """

    contributions: FloatArray
    utilities: FloatArray
    model_values: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return {
            "contributions": self.contributions.tolist(),
            "utilities": self.utilities.tolist(),
            "model_values": self.model_values.tolist(),
        }


def _best_alone(cost: float, curve: AccuracyCurve, valuation: Valuation) -> float:
    phi = valuation(curve(_GRID)) - cost * _GRID
    j = int(np.argmax(phi))
    if j == _GRID.size - 1:
        raise ValueError(
            f"training alone is unbounded for cost {cost}: v(a(m)) - c m still increases at "
            f"m = {_GRID[-1]:.0e}; the accuracy curve must be concave and bounded"
        )
    if phi[j] <= 0.0:
        return 0.0
    lo, hi = _GRID[max(j - 1, 0)], _GRID[j + 1]

    def slope(m: float) -> float:  # first-order condition v'(a(m)) a'(m) - c
        a, d1, _ = curve.derivatives(m)
        return float(valuation.derivatives(a)[1] * d1) - cost

    if slope(lo) > 0 > slope(hi):
        return float(brentq(slope, lo, hi, xtol=1e-12, rtol=1e-15))
    res = minimize_scalar(
        lambda m: -float(valuation(curve(m)) - cost * m),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-10 * hi},
    )
    return float(res.x) if -res.fun >= phi[j] else float(_GRID[j])


def reservation_utilities(
    costs: ArrayLike, curve: AccuracyCurve, valuation: Valuation
) -> ReservationResult:
    """Reservation contributions and utilities :math:`f_i` of every type.

    Parameters
    ----------
    costs : array-like of shape (I,)
        Marginal cost of a data point for each type.
    curve : AccuracyCurve
    valuation : Valuation

    Examples
    --------
    >>> from coopml.contracts import GeneralizationBoundCurve, LinearValuation
    >>> res = reservation_utilities([0.02, 0.01], GeneralizationBoundCurve(), LinearValuation())
    >>> res.contributions.round(1).tolist(), res.utilities.round(2).tolist()
    ([715.6, 1148.5], [55.26, 64.16])
    """
    c = np.asarray(costs, dtype=np.float64)
    m = np.array([_best_alone(float(ci), curve, valuation) for ci in c])
    values = np.asarray(valuation(curve(m)), dtype=np.float64)
    f = np.maximum(values - c * m, 0.0)
    m = np.where(f > 0.0, m, 0.0)
    return ReservationResult(contributions=m, utilities=f, model_values=np.where(f > 0, values, 0))
