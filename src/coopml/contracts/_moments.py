"""First and second moments of the program over an outcome space (private kernel).

At contributions ``m`` it evaluates, in chunks of outcomes so that memory stays small,

* the objective ``Pi(m) = sum_n P(n) a(n.m)``, its gradient and the per-outcome Hessian
  weights ``P(n) a''(n.m)``;
* the reward caps ``tbar_i(m) = E[v(a(n.m)) | n_i >= 1]``, their Jacobian and per-outcome
  Hessian weights ``P(n) (v'' a'^2 + v' a'')``.

A Hessian is ``sum_n h(n) n n^T`` for per-outcome weights ``h`` (one pass).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from coopml.contracts.accuracy import AccuracyCurve
from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.valuation import Valuation

FloatArray = NDArray[np.float64]
CHUNK = 1 << 15


class Moments:
    """Cached evaluation of the program's expectations at one ``m`` at a time."""

    def __init__(self, space: OutcomeSpace, curve: AccuracyCurve, valuation: Valuation) -> None:
        self.space = space
        self.curve = curve
        self.valuation = valuation
        self.n_evaluations = 0
        self._key: bytes | None = None

    def _chunks(self) -> range:
        return range(0, self.space.n_outcomes, CHUNK)

    def at(self, m: FloatArray) -> Moments:
        """Evaluate everything at ``m`` (no-op if already there)."""
        m = np.ascontiguousarray(m, dtype=np.float64)
        key = m.tobytes()
        if key == self._key:
            return self
        sp = self.space
        I = sp.n_types
        K = sp.n_outcomes
        self.value = 0.0
        self.grad = np.zeros(I)
        self.tbar_num = np.zeros(I)
        self.jac_num = np.zeros((I, I))
        self.model_value = np.empty(K)
        self.h_obj = np.empty(K)
        self.h_val = np.empty(K)
        for s in self._chunks():
            n = sp.counts[s : s + CHUNK]
            w = sp.weights[s : s + CHUNK]
            pres = sp.present[s : s + CHUNK]
            a, a1, a2 = self.curve.derivatives(n @ m)
            v, v1, v2 = self.valuation.derivatives(a)
            self.value += float(w @ a)
            self.grad += (w * a1) @ n
            self.tbar_num += (w * v) @ pres
            self.jac_num += pres.T @ ((w * v1 * a1)[:, None] * n)
            self.model_value[s : s + CHUNK] = v
            self.h_obj[s : s + CHUNK] = w * a2
            self.h_val[s : s + CHUNK] = w * (v2 * a1 * a1 + v1 * a2)
        self.tbar = self.tbar_num / sp.presence
        self.jac = self.jac_num / sp.presence[:, None]
        self.n_evaluations += 1
        self._key = key
        return self

    def hessian(self, obj_weight: float, bc_weights: FloatArray) -> FloatArray:
        """``obj_weight * Hess Pi + sum_i bc_weights[i] * Hess tbar_i`` at the last ``m``."""
        sp = self.space
        mult = bc_weights / sp.presence
        H = np.zeros((sp.n_types, sp.n_types))
        for s in self._chunks():
            n = sp.counts[s : s + CHUNK]
            h = obj_weight * self.h_obj[s : s + CHUNK]
            h = h + self.h_val[s : s + CHUNK] * (sp.present[s : s + CHUNK] @ mult)
            H += n.T @ (h[:, None] * n)
        return H
