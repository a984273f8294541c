r"""Closed forms of the quadratic-cost, linear-revenue fine-tuning game (DERIVED).

**DERIVED, not quoted**: these formulas are derived by backward induction for the
special case :math:`\phi_0 = c_0 \alpha_0^2`, :math:`\phi_i = c_i (\alpha_i-\alpha_0)^2`,
:math:`r_i(\alpha) = r_i \alpha` of the game of Laufer, Kleinberg & Heidari (2023) (the
paper's full text was not available; the model structure follows its abstract and the
authors' follow-up work). coopml uses them as a fast path and checks them against the
general numerical solver in its tests.

Specialist :math:`i` maximises :math:`(1-\delta_i) r_i \alpha_i - c_i(\alpha_i-\alpha_0)^2`,
so :math:`\alpha_i^* = \alpha_0 + (1-\delta_i) r_i / (2 c_i)`; anticipating it, the
generalist maximises :math:`\sum_j \delta_j r_j \alpha_j^* - c_0 \alpha_0^2`:

.. math::

    \alpha_0^* = \frac{\sum_j \delta_j r_j}{2 c_0}, \qquad
    \alpha_i^* = \alpha_0^* + \frac{(1-\delta_i) r_i}{2 c_i}.

With one specialist (:math:`c_1, r`):

.. math::

    U_G(\delta) = r^2\Big[\frac{\delta^2}{4c_0} + \frac{\delta(1-\delta)}{2c_1}\Big], \quad
    U_D(\delta) = r^2\Big[\frac{\delta(1-\delta)}{2c_0} + \frac{(1-\delta)^2}{4c_1}\Big].

Every solution depends on :math:`\kappa = c_1/c_0` only, and swapping
:math:`c_0 \leftrightarrow c_1` maps :math:`\delta \mapsto 1-\delta`. Pareto set:
:math:`[(c_1-c_0)/(2c_1-c_0), 1]` if :math:`c_1 > c_0`, :math:`[0, 1]` if equal,
:math:`[0, c_0/(2c_0-c_1)]` if :math:`c_1 < c_0`. Utilitarian
:math:`\delta = c_1/(c_0+c_1)`; egalitarian: the root in :math:`[0, 1]` of
:math:`3(c_1-c_0)\delta^2 + (4c_0-2c_1)\delta - c_0 = 0`; Nash: the best root of the
cubic :math:`(U_G U_D)' = 0`; Kalai-Smorodinsky: the Pareto root of
:math:`U_G/\bar U_G = U_D/\bar U_D`; max-performance: :math:`\delta = 1` if
:math:`c_1 > c_0`, :math:`0` if :math:`c_1 < c_0` (:math:`\alpha_1^*` is linear in
:math:`\delta`). Vertical integration (one firm pays both costs):
:math:`\alpha_0 = \sum_j r_j/(2c_0)`, :math:`\alpha_i = \alpha_0 + r_i/(2c_i)`, welfare
:math:`(\sum_j r_j)^2/(4c_0) + \sum_j r_j^2/(4c_j)`.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive

__all__ = [
    "quadratic_egalitarian_share",
    "quadratic_equilibrium",
    "quadratic_kalai_smorodinsky_share",
    "quadratic_max_performance_share",
    "quadratic_nash_share",
    "quadratic_pareto_set",
    "quadratic_solution_shares",
    "quadratic_utilitarian_share",
    "quadratic_utilities",
    "quadratic_vertical_integration",
]

Array = NDArray[np.float64]


def _check(c0: float, c1: float) -> tuple[float, float]:
    return check_positive("c0", c0), check_positive("c1", c1)


def _vector(name: str, value: ArrayLike) -> Array:
    out = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if out.ndim != 1 or not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError(f"parameter '{name}' must be finite and > 0 (entrywise); got {value!r}")
    return out


def quadratic_equilibrium(
    c0: float, c: ArrayLike, r: ArrayLike, delta: ArrayLike
) -> dict[str, Any]:
    """DERIVED closed-form SPE for ``n`` specialists with per-domain shares ``delta``.

    Parameters
    ----------
    c0 : float
        Generalist's quadratic cost coefficient.
    c, r : array_like of shape (n,)
        Specialists' quadratic cost coefficients and revenue slopes.
    delta : array_like of shape (n,) or float
        Revenue shares to the generalist (a float is a common share).

    Returns
    -------
    dict
        ``alpha0`` (float), ``alpha`` (n,), ``u_generalist`` (float), ``u_specialists`` (n,).

    Examples
    --------
    >>> out = quadratic_equilibrium(1.0, [1.0], [1.0], 0.5)
    >>> out["alpha0"], out["alpha"].tolist(), out["u_generalist"]
    (0.25, [0.5], 0.1875)
    """
    c0 = check_positive("c0", c0)
    c, r = _vector("c", c), _vector("r", r)
    d = np.broadcast_to(np.asarray(delta, dtype=np.float64), c.shape)
    alpha0 = float(np.sum(d * r) / (2 * c0))
    alpha = alpha0 + (1 - d) * r / (2 * c)
    u_g = float(np.sum(d * r * alpha) - c0 * alpha0**2)
    u_s = (1 - d) * r * alpha - c * (alpha - alpha0) ** 2
    return {"alpha0": alpha0, "alpha": alpha, "u_generalist": u_g, "u_specialists": u_s}


def quadratic_utilities(c0: float, c1: float, r: float, delta: ArrayLike) -> Array:
    """DERIVED ``(U_G(delta), U_D(delta))`` with one specialist; shape (m, 2) for m shares.

    Examples
    --------
    >>> quadratic_utilities(1.0, 1.0, 1.0, [0.0, 1.0]).tolist()
    [[0.0, 0.25], [0.25, 0.0]]
    """
    c0, c1 = _check(c0, c1)
    r = check_positive("revenue", r)
    d = np.atleast_1d(np.asarray(delta, dtype=np.float64))
    u_g = r**2 * (d**2 / (4 * c0) + d * (1 - d) / (2 * c1))
    u_d = r**2 * (d * (1 - d) / (2 * c0) + (1 - d) ** 2 / (4 * c1))
    return np.column_stack([u_g, u_d])


def _polys(c0: float, c1: float) -> tuple[Polynomial, Polynomial]:
    """``U_G / r^2`` and ``U_D / r^2`` as polynomials in delta."""
    u_g = Polynomial([0.0, 1 / (2 * c1), 1 / (4 * c0) - 1 / (2 * c1)])
    u_d = Polynomial([1 / (4 * c1), 1 / (2 * c0) - 1 / (2 * c1), 1 / (4 * c1) - 1 / (2 * c0)])
    return u_g, u_d


def _roots_in(p: Polynomial, low: float, high: float) -> Array:
    roots = p.roots() if p.degree() > 0 else np.array([])
    real = roots[np.abs(np.imag(roots)) < 1e-9].real
    return np.sort(real[(real >= low - 1e-12) & (real <= high + 1e-12)].clip(low, high))


def quadratic_pareto_set(c0: float, c1: float) -> tuple[float, float]:
    """DERIVED Pareto-optimal shares: the interval between argmax U_D and argmax U_G.

    Examples
    --------
    >>> quadratic_pareto_set(1.0, 2.0)
    (0.3333333333333333, 1.0)
    """
    c0, c1 = _check(c0, c1)
    if c1 > c0:
        return ((c1 - c0) / (2 * c1 - c0), 1.0)
    if c1 < c0:
        return (0.0, c0 / (2 * c0 - c1))
    return (0.0, 1.0)


def quadratic_utilitarian_share(c0: float, c1: float) -> float:
    """DERIVED utilitarian share ``c1 / (c0 + c1)``.

    Examples
    --------
    >>> quadratic_utilitarian_share(1.0, 3.0)
    0.75
    """
    c0, c1 = _check(c0, c1)
    return c1 / (c0 + c1)


def quadratic_egalitarian_share(c0: float, c1: float) -> float:
    """DERIVED egalitarian share: root in [0, 1] of ``3(c1-c0)d^2 + (4c0-2c1)d - c0``.

    Examples
    --------
    >>> round(quadratic_egalitarian_share(1.0, 2.0), 6)
    0.57735
    """
    c0, c1 = _check(c0, c1)
    roots = _roots_in(Polynomial([-c0, 4 * c0 - 2 * c1, 3 * (c1 - c0)]), 0.0, 1.0)
    return float(roots[0])


def quadratic_nash_share(c0: float, c1: float) -> float:
    """DERIVED Nash share: the root of ``(U_G U_D)' = 0`` in [0, 1] with the largest product.

    Examples
    --------
    >>> quadratic_nash_share(1.0, 1.0)
    0.5
    """
    c0, c1 = _check(c0, c1)
    u_g, u_d = _polys(c0, c1)
    product = u_g * u_d
    candidates = np.concatenate([_roots_in(product.deriv(), 0.0, 1.0), [0.0, 1.0]])
    return float(candidates[np.argmax(product(candidates))])


def quadratic_kalai_smorodinsky_share(c0: float, c1: float) -> float:
    """DERIVED KS share: the Pareto root of ``U_G / max U_G = U_D / max U_D``.

    Examples
    --------
    >>> quadratic_kalai_smorodinsky_share(1.0, 1.0)
    0.5
    """
    c0, c1 = _check(c0, c1)
    u_g, u_d = _polys(c0, c1)
    low, high = quadratic_pareto_set(c0, c1)
    ideal_g, ideal_d = float(u_g(high)), float(u_d(low))
    roots = _roots_in(ideal_d * u_g - ideal_g * u_d, low, high)
    return float(roots[0])


def quadratic_max_performance_share(c0: float, c1: float) -> float:
    """DERIVED share maximising ``alpha_1*``: 1 if ``c1 > c0``, 0 if ``c1 < c0``; with
    ``c1 == c0`` every share gives the same performance and the utilitarian 1/2 is returned.

    Examples
    --------
    >>> quadratic_max_performance_share(1.0, 2.0)
    1.0
    """
    c0, c1 = _check(c0, c1)
    return 1.0 if c1 > c0 else 0.0 if c1 < c0 else 0.5


def quadratic_vertical_integration(c0: float, c: ArrayLike, r: ArrayLike) -> dict[str, Any]:
    """DERIVED first best: one firm chooses every performance level and pays every cost.

    Examples
    --------
    >>> out = quadratic_vertical_integration(1.0, [1.0], [1.0])
    >>> out["alpha0"], out["alpha"].tolist(), out["welfare"]
    (0.5, [1.0], 0.5)
    """
    c0 = check_positive("c0", c0)
    c, r = _vector("c", c), _vector("r", r)
    alpha0 = float(r.sum() / (2 * c0))
    alpha = alpha0 + r / (2 * c)
    welfare = float(r.sum() ** 2 / (4 * c0) + np.sum(r**2 / (4 * c)))
    return {"alpha0": alpha0, "alpha": alpha, "welfare": welfare}


def quadratic_solution_shares(c0: float, c1: float) -> dict[str, float]:
    """DERIVED share of every solution concept (keys as :data:`SOLUTION_NAMES`).

    Examples
    --------
    >>> shares = quadratic_solution_shares(1.0, 1.0)
    >>> sorted(shares), {round(v, 6) for v in shares.values()}
    (['egalitarian', 'kalai_smorodinsky', 'max_performance', 'nash', 'utilitarian'], {0.5})
    """
    return {
        "nash": quadratic_nash_share(c0, c1),
        "kalai_smorodinsky": quadratic_kalai_smorodinsky_share(c0, c1),
        "egalitarian": quadratic_egalitarian_share(c0, c1),
        "utilitarian": quadratic_utilitarian_share(c0, c1),
        "max_performance": quadratic_max_performance_share(c0, c1),
    }
