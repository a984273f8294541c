r"""Accuracy curves :math:`a(M)`: the accuracy of a model trained on :math:`M` data points.

The contract program of Wang, Wu, Liu & Low, *Paid with Models: Optimal Contract Design
for Collaborative Machine Learning* (AAAI 2025, arXiv:2412.11122) needs a concave,
non-decreasing curve with its first and second derivatives (the exact gradient and
Hessian of the convex program are built from them). Three are offered, and any object
with the :class:`AccuracyCurve` protocol plugs in:

* :class:`GeneralizationBoundCurve` -- the "standard generalisation bound" of the
  paper's experiments (Mohri, Rostamizadeh & Talwalkar 2018),

  .. math:: a(M) = \max\{0,\ a_{\mathrm{opt}} - (\sqrt{2k(2 + \ln(M/k))} + 4)/\sqrt{M}\}

  for :math:`M > k e^{-2}` and 0 otherwise;
* :class:`PowerLawCurve` -- :math:`a(M) = a_{\max}(1 - (1 + M/s)^{-\alpha})`, concave,
  increasing, :math:`a(0) = 0`;
* :class:`CustomCurve` -- any concave increasing callable with its derivatives.

A power law fitted to learning-curve points measured by really training a scikit-learn
learner is in :mod:`coopml.contracts.learning_curve`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive

__all__ = [
    "AccuracyCurve",
    "CustomCurve",
    "GeneralizationBoundCurve",
    "PowerLawCurve",
]

FloatArray = NDArray[np.float64]


@runtime_checkable
class AccuracyCurve(Protocol):
    """A concave, non-decreasing accuracy curve with exact derivatives.

    ``curve(M)`` is the accuracy at training-set size ``M`` (elementwise over arrays);
    ``curve.derivatives(M)`` returns ``(a, a', a'')`` in one pass; ``curve.sup`` is
    :math:`\\sup_M a(M)` (``inf`` if unknown), used only to scale the program.
    """

    @property
    def sup(self) -> float: ...

    def __call__(self, M: ArrayLike) -> FloatArray: ...

    def derivatives(self, M: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]: ...


@dataclass(frozen=True)
class GeneralizationBoundCurve:
    r"""The standard generalisation-bound accuracy curve of the paper.

    .. math::

        a(M) = \max\{0,\ a_{\mathrm{opt}} - (s + 4)/\sqrt{M}\},\quad
        s = \sqrt{2k(2 + L)},\ L = \ln(M/k),

        a'(M) = \frac{kL + 2s + k}{s M^{3/2}},\qquad
        a''(M) = \frac{k[-k(3 + 8L + 3L^2) - 6s(2 + L)]}{s^3 M^{5/2}},

    where the bound is positive; both derivatives are 0 where the curve is clipped at 0.
    (The Hessian in the authors' script differs; the formula above is the exact second
    derivative, checked against finite differences in the tests.)

    Parameters
    ----------
    k : float, default 1
        Complexity constant of the bound.
    a_opt : float, default 1
        Accuracy of the best model in the class (the curve's supremum).

    Examples
    --------
    >>> curve = GeneralizationBoundCurve()
    >>> round(float(curve(1000.0)), 6)
    0.740034
    >>> a, d1, d2 = curve.derivatives([10.0, 1000.0])
    >>> a.tolist()[0], bool(d1[1] > 0 > d2[1])
    (0.0, True)
    """

    k: float = 1.0
    a_opt: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_positive("k", self.k))
        object.__setattr__(self, "a_opt", check_positive("a_opt", self.a_opt))

    @property
    def sup(self) -> float:
        """The supremum :math:`a_{\\mathrm{opt}}`."""
        return self.a_opt

    def __call__(self, M: ArrayLike) -> FloatArray:
        return self.derivatives(M, order=0)[0]

    def derivatives(
        self, M: ArrayLike, order: int = 2
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return ``(a(M), a'(M), a''(M))``; derivatives are skipped (zeros) below ``order``."""
        M = np.asarray(M, dtype=np.float64)
        k = self.k
        live = M > k * np.exp(-2.0)
        Ml = np.where(live, M, k)  # placeholder where the bound is undefined
        L = np.log(Ml / k)
        s = np.sqrt(2.0 * k * (2.0 + L))
        root = np.sqrt(Ml)
        a = self.a_opt - (s + 4.0) / root
        live &= a > 0.0
        a = np.where(live, a, 0.0)
        zeros = np.zeros_like(a)
        if order == 0:
            return a, zeros, zeros
        s = np.where(live, s, 1.0)
        d1 = np.where(live, (k * L + 2.0 * s + k) / (s * Ml * root), 0.0)
        if order == 1:
            return a, d1, zeros
        d2 = np.where(
            live,
            k
            * (-k * (3.0 + 8.0 * L + 3.0 * L * L) - 6.0 * s * (2.0 + L))
            / (s**3 * Ml * Ml * root),
            0.0,
        )
        return a, d1, d2


@dataclass(frozen=True)
class PowerLawCurve:
    r"""A saturating power law :math:`a(M) = a_{\max}\,(1 - (1 + M/s)^{-\alpha})`.

    Concave and increasing for every :math:`a_{\max}, s, \alpha > 0`, with
    :math:`a(0) = 0` and :math:`a(M) \to a_{\max}`. The tail
    :math:`a_{\max} - a(M) \approx a_{\max}(s/M)^{\alpha}` is the power-law learning
    curve of Hestness et al. (2017).

    Parameters
    ----------
    a_max : float
        The supremum of the curve.
    scale : float
        The training-set size ``s`` at which the power law takes hold.
    exponent : float
        The decay exponent ``alpha``.

    Examples
    --------
    >>> curve = PowerLawCurve(a_max=0.9, scale=50.0, exponent=0.5)
    >>> round(float(curve(150.0)), 4)
    0.45
    """

    a_max: float
    scale: float
    exponent: float

    def __post_init__(self) -> None:
        for name in ("a_max", "scale", "exponent"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name)))

    @property
    def sup(self) -> float:
        """The supremum ``a_max``."""
        return self.a_max

    def __call__(self, M: ArrayLike) -> FloatArray:
        return self.derivatives(M, order=0)[0]

    def derivatives(
        self, M: ArrayLike, order: int = 2
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return ``(a(M), a'(M), a''(M))`` (``M`` is clipped at 0)."""
        M = np.maximum(np.asarray(M, dtype=np.float64), 0.0)
        base = 1.0 + M / self.scale
        tail = base ** (-self.exponent)
        a = self.a_max * (1.0 - tail)
        d1 = self.a_max * self.exponent / self.scale * tail / base
        d2 = -(self.exponent + 1.0) / self.scale * d1 / base
        return a, d1, d2


@dataclass(frozen=True)
class CustomCurve:
    """Any concave, non-decreasing curve given as callables.

    Parameters
    ----------
    func : callable
        ``func(M) -> a(M)``, elementwise over float arrays.
    derivative : callable
        ``derivative(M) -> a'(M)``.
    second_derivative : callable or None
        ``second_derivative(M) -> a''(M)``; if omitted, a central finite difference of
        ``derivative`` (step ``1e-4 * max(1, M)``) is used, and the solver's Hessian is
        then approximate.
    sup : float, default inf
        The supremum of the curve, if known (used only to scale the program).

    Examples
    --------
    >>> curve = CustomCurve(lambda M: 1 - 1 / (1 + np.asarray(M) / 100),
    ...                     lambda M: 100 / (100 + np.asarray(M)) ** 2, sup=1.0)
    >>> [round(float(x), 6) for x in curve.derivatives(100.0)]
    [0.5, 0.0025, -2.5e-05]
    """

    func: Callable[[Any], Any]
    derivative: Callable[[Any], Any]
    second_derivative: Callable[[Any], Any] | None = None
    sup: float = field(default=float("inf"))

    def __post_init__(self) -> None:
        for name in ("func", "derivative"):
            if not callable(getattr(self, name)):
                raise TypeError(f"parameter '{name}' must be callable; got {getattr(self, name)!r}")
        if self.second_derivative is not None and not callable(self.second_derivative):
            raise TypeError(
                f"parameter 'second_derivative' must be callable or None; "
                f"got {self.second_derivative!r}"
            )

    def __call__(self, M: ArrayLike) -> FloatArray:
        return np.asarray(self.func(np.asarray(M, dtype=np.float64)), dtype=np.float64)

    def derivatives(
        self, M: ArrayLike, order: int = 2
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return ``(a(M), a'(M), a''(M))``."""
        M = np.asarray(M, dtype=np.float64)
        a = self(M)
        d1 = np.broadcast_to(np.asarray(self.derivative(M), dtype=np.float64), a.shape)
        if self.second_derivative is not None:
            d2 = np.asarray(self.second_derivative(M), dtype=np.float64)
        else:
            h = 1e-4 * np.maximum(1.0, np.abs(M))
            up = np.asarray(self.derivative(M + h), dtype=np.float64)
            down = np.asarray(self.derivative(np.maximum(M - h, 0.0)), dtype=np.float64)
            d2 = (up - down) / (M + h - np.maximum(M - h, 0.0))
        return a, np.array(d1), np.broadcast_to(d2, a.shape).copy()
