r"""Investment cost functions of the fine-tuning game.

The generalist pays :math:`\phi_0(\alpha_0)` to bring the model from performance 0 to
:math:`\alpha_0`; specialist :math:`i` pays :math:`\phi_i(\alpha_i; \alpha_0)` to adapt it
from :math:`\alpha_0` to :math:`\alpha_i \ge \alpha_0` (Laufer, Kleinberg & Heidari 2023).
coopml writes every cost as a function of the *increment* :math:`x` (:math:`x = \alpha_0`
for the generalist, :math:`x = \alpha_i - \alpha_0` for a specialist):

.. math::

    \phi(x) = F + \sum_{k \ge 1} a_k x^k \quad (\text{polynomial}), \qquad
    \phi(x) = F + g(x) \quad (\text{user callable}, g(0) = 0),

where the fixed cost :math:`F` is paid by any firm that takes part (also a free-rider
with :math:`x = 0`) and avoided by abstaining. Fixed parts create abstention and linear
parts free-riding; pure quadratic increments make every specialist contribute.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive

__all__ = ["CallableCost", "Cost", "PolynomialCost"]

Array = NDArray[np.float64]


@runtime_checkable
class Cost(Protocol):
    """A cost of an increment ``x >= 0``: ``fixed`` plus a variable part, ``variable(0) = 0``."""

    @property
    def fixed(self) -> float:
        """Entry cost paid by a firm that takes part (also with a zero increment)."""
        ...

    def __call__(self, x: ArrayLike) -> Array:
        """Total cost ``fixed + variable(x)``."""
        ...

    def variable(self, x: ArrayLike) -> Array:
        """The variable cost of increments ``x`` (any shape), without the fixed part."""
        ...

    def marginal(self, x: ArrayLike) -> Array:
        """The derivative of the variable cost at ``x``."""
        ...


@dataclass(frozen=True)
class PolynomialCost:
    """``phi(x) = fixed + sum_k coefficients[k-1] * x**k`` for increments ``x >= 0``.

    Parameters
    ----------
    coefficients : sequence of float
        ``(a_1, a_2, ...)``: ``a_1`` is the linear part, ``a_2`` the quadratic, ... All
        must be >= 0 and one of degree >= 2 must be > 0, so that costs outgrow revenue.
    fixed : float
        Entry cost ``F >= 0``, paid by a firm that takes part at all.

    Examples
    --------
    >>> phi = PolynomialCost.quadratic(2.0, linear=0.5, fixed=0.1)
    >>> phi.coefficients, float(phi(1.0)), float(phi.marginal(0.0))
    ((0.5, 2.0), 2.6, 0.5)
    """

    coefficients: tuple[float, ...]
    fixed: float = 0.0

    def __post_init__(self) -> None:
        coefs = _coefficients(self.coefficients)
        object.__setattr__(self, "coefficients", coefs)
        object.__setattr__(self, "fixed", check_positive("fixed", self.fixed, strict=False))

    @classmethod
    def quadratic(cls, c: float, *, linear: float = 0.0, fixed: float = 0.0) -> PolynomialCost:
        """``fixed + linear * x + c * x**2`` (``c > 0``)."""
        check_positive("c", c)
        return cls((linear, c), fixed=fixed)

    @property
    def degree(self) -> int:
        """The degree of the polynomial."""
        return len(self.coefficients)

    @property
    def is_pure_quadratic(self) -> bool:
        """``c * x**2`` only: the closed-form case."""
        return self.fixed == 0 and self.degree == 2 and self.coefficients[0] == 0

    def variable(self, x: ArrayLike) -> Array:
        """Variable cost ``sum_k a_k x**k`` (shape of ``x``)."""
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros_like(x)
        for a in reversed(self.coefficients):
            out = (out + a) * x
        return out

    def marginal(self, x: ArrayLike) -> Array:
        """Derivative ``sum_k k a_k x**(k-1)``."""
        x = np.asarray(x, dtype=np.float64)
        out = np.zeros_like(x)
        for k in range(self.degree, 0, -1):
            out = out * x + k * self.coefficients[k - 1]
        return out

    def __call__(self, x: ArrayLike) -> Array:
        """Total cost ``fixed + variable(x)`` of taking part with increment ``x``."""
        return self.fixed + self.variable(x)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {"kind": "polynomial", "coefficients": list(self.coefficients), "fixed": self.fixed}


@dataclass(frozen=True)
class CallableCost:
    """A user cost ``phi(x) = fixed + func(x)`` with ``func(0) = 0``.

    Parameters
    ----------
    func : callable
        Variable cost of increments; vectorised (arrays in, same-shape arrays out) unless
        ``vectorized=False``. Must be 0 at 0 (put constant costs in ``fixed``).
    fixed : float
        Entry cost ``F >= 0``.
    vectorized : bool
        Whether ``func`` accepts arrays.

    Examples
    --------
    >>> phi = CallableCost(np.expm1, fixed=0.2)
    >>> round(float(phi(1.0)), 4), round(float(phi.marginal(0.0)), 4)
    (1.9183, 1.0)
    """

    func: Callable[..., Any]
    fixed: float = 0.0
    vectorized: bool = True

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise TypeError(f"parameter 'func' must be callable; got {type(self.func).__name__}")
        object.__setattr__(self, "fixed", check_positive("fixed", self.fixed, strict=False))
        at_zero = float(self.variable(np.zeros(1))[0])
        if not abs(at_zero) <= 1e-12:
            raise ValueError(
                f"parameter 'func' must be 0 at 0 (put constant costs in 'fixed'); got {at_zero}"
            )

    def variable(self, x: ArrayLike) -> Array:
        """Variable cost ``func(x)`` (shape of ``x``)."""
        return _apply(self.func, x, self.vectorized, "func")

    def marginal(self, x: ArrayLike) -> Array:
        """Derivative of ``func``: second-order forward difference (never evaluated below ``x``)."""
        return forward_derivative(self.variable, x)

    def __call__(self, x: ArrayLike) -> Array:
        """Total cost ``fixed + func(x)``."""
        return self.fixed + self.variable(x)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (the callable by name)."""
        return {
            "kind": "callable",
            "func": getattr(self.func, "__name__", repr(self.func)),
            "fixed": self.fixed,
        }


def forward_derivative(f: Callable[[Array], Array], x: ArrayLike) -> Array:
    """``f'(x)`` by the second-order one-sided formula ``(-3f(x) + 4f(x+h) - f(x+2h)) / 2h``."""
    x = np.asarray(x, dtype=np.float64)
    h = 1e-5 * np.maximum(1.0, np.abs(x))
    return (-3 * f(x) + 4 * f(x + h) - f(x + 2 * h)) / (2 * h)


def _coefficients(values: Sequence[float]) -> tuple[float, ...]:
    try:
        coefs = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(
            f"parameter 'coefficients' must be a sequence of numbers; got {values!r}"
        ) from None
    if not coefs or not all(np.isfinite(c) and c >= 0 for c in coefs):
        raise ValueError(
            f"parameter 'coefficients' must be a non-empty sequence of finite numbers >= 0; "
            f"got {list(coefs)}"
        )
    if not any(c > 0 for c in coefs[1:]):
        raise ValueError(
            "parameter 'coefficients' must have a positive coefficient of degree >= 2 so that "
            f"costs outgrow revenue; got {list(coefs)}"
        )
    while coefs[-1] == 0:
        coefs = coefs[:-1]
    return coefs


def _apply(func: Callable[..., Any], x: ArrayLike, vectorized: bool, name: str) -> Array:
    x = np.asarray(x, dtype=np.float64)
    if vectorized:
        out = np.asarray(func(x), dtype=np.float64)
    else:
        out = np.array([float(func(float(v))) for v in x.reshape(-1)]).reshape(x.shape)
    if out.shape != x.shape:
        try:
            out = np.broadcast_to(out, x.shape).copy()
        except ValueError:
            raise ValueError(
                f"parameter '{name}' must map an array of shape {x.shape} to the same shape; "
                f"got {out.shape} (pass vectorized=False for a scalar function)"
            ) from None
    return out
