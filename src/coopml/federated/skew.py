r"""Skew maps: label skew of an organisation's data after mixing in synthetic samples.

Organisation :math:`i` holds :math:`n_i` real samples with skew :math:`h_i^0 =
\tfrac12\lVert p_i - u\rVert_1` against the reference label distribution :math:`u`; mixing
in :math:`s_i` synthetic samples with labels drawn from :math:`u` gives :math:`h_i(s_i)`,
decreasing and convex in :math:`s_i` (:class:`MixingSkew`: :math:`h^0 n / (n + s)`,
reconstructed form of CoCoGen+, arXiv 2604.14886). Other forms follow :class:`SkewMap`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq

__all__ = ["MixingSkew", "SkewMap", "falling_root", "inverse_marginal"]

_RTOL_MIN = 4 * float(np.finfo(np.float64).eps)  # the smallest rtol brentq accepts


@runtime_checkable
class SkewMap(Protocol):
    """Skew after mixing ``s`` synthetic samples: decreasing and convex in ``s``."""

    def __call__(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any: ...

    def derivative(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any: ...


@dataclass(frozen=True)
class MixingSkew:
    r"""Skew of a mix of ``n`` skewed real and ``s`` reference-distributed samples.

    :math:`h(s) = h^0 n / (n + s)` (the total-variation distance of the mixture to the
    reference, when the synthetic labels follow it exactly).

    Examples
    --------
    >>> MixingSkew()(100.0, 0.4, 100.0)
    np.float64(0.2)
    """

    def __call__(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any:
        s_, h_, n_ = (np.asarray(v, dtype=np.float64) for v in (s, h0, n))
        return h_ * n_ / (n_ + s_)

    def derivative(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any:
        s_, h_, n_ = (np.asarray(v, dtype=np.float64) for v in (s, h0, n))
        return -h_ * n_ / (n_ + s_) ** 2

    def inverse_marginal(self, y: float, h0: float, n: float) -> float:
        """The ``s >= -n`` where ``-h'(s) = y`` (``y > 0``); may be negative."""
        return math.sqrt(h0 * n / y) - n


def inverse_marginal(skew: SkewMap, y: float, h0: float, n: float, s_max: float) -> float:
    """``s`` in ``[0, s_max]`` with ``-h'(s) = y``, clipped (-h' is decreasing)."""
    if y <= 0:
        return s_max
    inv = getattr(skew, "inverse_marginal", None)
    if inv is not None:
        return float(min(max(inv(y, h0, n), 0.0), s_max))
    return falling_root(lambda s: -float(skew.derivative(s, h0, n)) - y, s_max, 1e-12)


def falling_root(f: Callable[[float], float], s_max: float, rtol: float) -> float:
    """Where the decreasing ``f`` crosses zero in ``[0, s_max]`` (an end when it does not),
    by :func:`scipy.optimize.brentq` to a relative width ``rtol``."""
    if s_max == 0 or f(0.0) <= 0:
        return 0.0
    if f(s_max) >= 0:
        return s_max
    return float(brentq(f, 0.0, s_max, xtol=rtol * max(1.0, s_max), rtol=_RTOL_MIN))
