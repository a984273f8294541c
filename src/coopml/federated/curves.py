r"""Global accuracy curves :math:`P(E)` of the round game (seed 004, reconstructed).

The shared model's accuracy as a function of the effective training data :math:`E`,
increasing and concave. :class:`AccuracyCurve` is the power law :math:`P(E) = A_{max} -
a E^{-b}` of learning-curve studies, fitted from pilot FedAvg runs; any object with
``__call__(E)`` and ``derivative(E)`` (:class:`AccuracyModel`) plugs into
:class:`~coopml.federated.round_game.RoundGame`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive

__all__ = ["AccuracyCurve", "AccuracyModel"]

FloatArray = NDArray[np.float64]


@runtime_checkable
class AccuracyModel(Protocol):
    """A global accuracy curve :math:`P(E)`: increasing and concave in effective data."""

    def __call__(self, E: ArrayLike) -> Any: ...

    def derivative(self, E: ArrayLike) -> Any: ...


@dataclass(frozen=True)
class AccuracyCurve:
    r"""Power-law accuracy curve :math:`P(E) = A_{max} - a E^{-b}` (reconstructed form).

    Parameters
    ----------
    A_max : float
        Asymptotic accuracy, > 0.
    a : float
        Scale of the accuracy gap, > 0.
    b : float
        Decay exponent, > 0.

    Examples
    --------
    >>> P = AccuracyCurve(A_max=0.95, a=2.0, b=0.5)
    >>> round(float(P(400.0)), 4), round(float(P.derivative(400.0)), 6)
    (0.85, 0.000125)
    >>> E = np.array([50.0, 100.0, 200.0, 400.0, 800.0])
    >>> fitted = AccuracyCurve.fit(E, P(E))
    >>> round(fitted.A_max, 3), round(fitted.a, 3), round(fitted.b, 3)
    (0.95, 2.0, 0.5)
    """

    A_max: float
    a: float
    b: float

    def __post_init__(self) -> None:
        check_positive("A_max", self.A_max)
        check_positive("a", self.a)
        check_positive("b", self.b)

    def __call__(self, E: ArrayLike) -> Any:
        E_arr = np.asarray(E, dtype=np.float64)
        return self.A_max - self.a * np.power(E_arr, -self.b)

    def derivative(self, E: ArrayLike) -> Any:
        """:math:`P'(E) = a b E^{-b-1}` (> 0, decreasing)."""
        E_arr = np.asarray(E, dtype=np.float64)
        return self.a * self.b * np.power(E_arr, -self.b - 1.0)

    @classmethod
    def fit(cls, E: ArrayLike, acc: ArrayLike, *, A_max_bound: float = 1.0) -> AccuracyCurve:
        """Least-squares fit to pilot runs (effective data ``E``, measured accuracy ``acc``).

        Parameters
        ----------
        E : array-like of shape (n_runs,)
            Effective data sizes of the pilot runs (> 0), at least three distinct values.
        acc : array-like of shape (n_runs,)
            Accuracy measured in each run.
        A_max_bound : float, default 1.0
            Upper bound on the fitted asymptote (1 for accuracies).
        """
        from scipy.optimize import OptimizeWarning, curve_fit

        E_arr = np.asarray(E, dtype=np.float64).ravel()
        acc_arr = np.asarray(acc, dtype=np.float64).ravel()
        if E_arr.shape != acc_arr.shape:
            raise ValueError(
                f"parameters 'E' and 'acc' must have the same length; got {E_arr.size} "
                f"and {acc_arr.size}"
            )
        if np.unique(E_arr).size < 3:
            raise ValueError(
                f"parameter 'E' must hold at least 3 distinct values; got {np.unique(E_arr).size}"
            )
        if not (np.all(np.isfinite(E_arr)) and np.all(E_arr > 0)):
            raise ValueError("parameter 'E' must be finite and > 0")
        if not np.all(np.isfinite(acc_arr)):
            raise ValueError("parameter 'acc' must be finite")
        upper = max(float(A_max_bound), float(acc_arr.max()) + 1e-6)

        def model(x: FloatArray, A: float, log_a: float, b: float) -> FloatArray:
            return A - np.exp(log_a) * np.power(x, -b)

        best: tuple[float, FloatArray] | None = None
        for b0 in (0.3, 0.7, 1.5):
            gap = max(upper - float(acc_arr.min()), 1e-3)
            p0 = [
                min(float(acc_arr.max()) + 1e-3, upper),
                math.log(gap) + b0 * math.log(float(E_arr.min())),
                b0,
            ]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OptimizeWarning)
                    popt, _ = curve_fit(
                        model,
                        E_arr,
                        acc_arr,
                        p0=p0,
                        bounds=([float(acc_arr.max()) - 1e-9, -50.0, 1e-3], [upper, 50.0, 5.0]),
                        maxfev=20_000,
                    )
            except RuntimeError:
                continue
            sse = float(np.sum((model(E_arr, *popt) - acc_arr) ** 2))
            if best is None or sse < best[0]:
                best = (sse, np.asarray(popt))
        if best is None:
            raise RuntimeError("AccuracyCurve.fit: least squares did not converge")
        A, log_a, b = (float(v) for v in best[1])
        return cls(A_max=A, a=math.exp(log_a), b=b)
