r"""Revenue functions :math:`r_i(\alpha_i)` of a domain at performance :math:`\alpha_i`.

In the fine-tuning game (Laufer, Kleinberg & Heidari 2023) the model earns
:math:`r_i(\alpha_i)` in domain :math:`i`, split :math:`\delta_i` to the generalist and
:math:`1 - \delta_i` to the specialist. Revenue is non-decreasing; concave revenue with
convex costs makes every best response a single KKT candidate.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive
from coopml.finetuning.costs import _apply, forward_derivative

__all__ = ["CallableRevenue", "LinearRevenue", "PowerRevenue", "Revenue"]

Array = NDArray[np.float64]


@runtime_checkable
class Revenue(Protocol):
    """Revenue of a domain as a function of performance ``alpha >= 0``."""

    def __call__(self, alpha: ArrayLike) -> Array:
        """Revenue at performance levels ``alpha`` (any shape)."""
        ...

    def marginal(self, alpha: ArrayLike) -> Array:
        """Derivative of the revenue at ``alpha``."""
        ...


@dataclass(frozen=True)
class LinearRevenue:
    """``r(alpha) = slope * alpha``: the closed-form case.

    Examples
    --------
    >>> float(LinearRevenue(2.0)(1.5))
    3.0
    """

    slope: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "slope", check_positive("slope", self.slope))

    def __call__(self, alpha: ArrayLike) -> Array:
        return self.slope * np.asarray(alpha, dtype=np.float64)

    def marginal(self, alpha: ArrayLike) -> Array:
        return np.full_like(np.asarray(alpha, dtype=np.float64), self.slope)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {"kind": "linear", "slope": self.slope}


@dataclass(frozen=True)
class PowerRevenue:
    """``r(alpha) = scale * alpha**exponent`` with ``0 < exponent <= 1`` (concave).

    Examples
    --------
    >>> float(PowerRevenue(2.0, 0.5)(4.0))
    4.0
    """

    scale: float
    exponent: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_positive("scale", self.scale))
        exponent = check_positive("exponent", self.exponent)
        if exponent > 1:
            raise ValueError(f"parameter 'exponent' must lie in (0, 1]; got {exponent}")
        object.__setattr__(self, "exponent", exponent)

    def __call__(self, alpha: ArrayLike) -> Array:
        return self.scale * np.power(
            np.maximum(np.asarray(alpha, dtype=np.float64), 0), self.exponent
        )

    def marginal(self, alpha: ArrayLike) -> Array:
        a = np.maximum(np.asarray(alpha, dtype=np.float64), 1e-300)
        return self.scale * self.exponent * np.power(a, self.exponent - 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {"kind": "power", "scale": self.scale, "exponent": self.exponent}


@dataclass(frozen=True)
class CallableRevenue:
    """A user revenue function ``func(alpha)`` (vectorised unless ``vectorized=False``).

    Examples
    --------
    >>> r = CallableRevenue(np.log1p)
    >>> round(float(r.marginal(0.0)), 4)
    1.0
    """

    func: Callable[..., Any]
    vectorized: bool = True

    def __post_init__(self) -> None:
        if not callable(self.func):
            raise TypeError(f"parameter 'func' must be callable; got {type(self.func).__name__}")
        self(np.zeros(1))

    def __call__(self, alpha: ArrayLike) -> Array:
        return _apply(self.func, alpha, self.vectorized, "func")

    def marginal(self, alpha: ArrayLike) -> Array:
        return forward_derivative(self, alpha)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (the callable by name)."""
        return {"kind": "callable", "func": getattr(self.func, "__name__", repr(self.func))}
