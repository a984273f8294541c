r"""Valuations :math:`v(r)`: what a participant is willing to pay for a model of accuracy
:math:`r`.

Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) require :math:`v` concave and
non-decreasing; their experiments use :math:`v(r) = 100\,r`. Any object with the
:class:`Valuation` protocol plugs in (:class:`CustomValuation` wraps callables).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive

__all__ = ["CustomValuation", "LinearValuation", "Valuation"]

FloatArray = NDArray[np.float64]


@runtime_checkable
class Valuation(Protocol):
    """A concave, non-decreasing valuation with exact derivatives ``(v, v', v'')``."""

    def __call__(self, r: ArrayLike) -> FloatArray: ...

    def derivatives(self, r: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]: ...


@dataclass(frozen=True)
class LinearValuation:
    """:math:`v(r) = \\mathrm{scale}\\cdot r` (the paper uses ``scale = 100``).

    Examples
    --------
    >>> float(LinearValuation(100.0)(0.5))
    50.0
    """

    scale: float = 100.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", check_positive("valuation_scale", self.scale))

    def __call__(self, r: ArrayLike) -> FloatArray:
        return self.scale * np.asarray(r, dtype=np.float64)

    def derivatives(self, r: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return ``(v(r), v'(r), v''(r))``."""
        r = np.asarray(r, dtype=np.float64)
        return self.scale * r, np.full_like(r, self.scale), np.zeros_like(r)


@dataclass(frozen=True)
class CustomValuation:
    """Any concave, non-decreasing valuation given as callables.

    Examples
    --------
    >>> v = CustomValuation(np.sqrt, lambda r: 0.5 / np.sqrt(r), lambda r: -0.25 * r**-1.5)
    >>> [float(x) for x in v.derivatives(4.0)]
    [2.0, 0.25, -0.03125]
    """

    func: Callable[[Any], Any]
    derivative: Callable[[Any], Any]
    second_derivative: Callable[[Any], Any]

    def __post_init__(self) -> None:
        for name in ("func", "derivative", "second_derivative"):
            if not callable(getattr(self, name)):
                raise TypeError(f"parameter '{name}' must be callable; got {getattr(self, name)!r}")

    def __call__(self, r: ArrayLike) -> FloatArray:
        return np.asarray(self.func(np.asarray(r, dtype=np.float64)), dtype=np.float64)

    def derivatives(self, r: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return ``(v(r), v'(r), v''(r))``."""
        r = np.asarray(r, dtype=np.float64)
        v = self(r)
        return (
            v,
            np.broadcast_to(np.asarray(self.derivative(r), dtype=np.float64), v.shape).copy(),
            np.broadcast_to(
                np.asarray(self.second_derivative(r), dtype=np.float64), v.shape
            ).copy(),
        )
