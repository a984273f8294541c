r"""Ordinary least squares and ridge regression of many coalitions from per-party
sufficient statistics.

For a coalition :math:`S` with pooled rows :math:`X_S, y_S`, scikit-learn's
``Ridge(alpha)`` (``LinearRegression`` is :math:`\alpha = 0`) with an intercept solves

.. math::

    (X_c^\top X_c + \alpha I)\, w = X_c^\top y_c, \qquad
    b = \bar y - \bar x^\top w,

with :math:`X_c, y_c` centred by the coalition means. Both sides are sums over the
parties in :math:`S` of :math:`n_j`, :math:`\sum x`, :math:`\sum y`, :math:`X_j^\top X_j`,
:math:`X_j^\top y_j`, so one coalition costs one :math:`d \times d` solve, batched over
many coalitions (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*,
2nd ed., 2009, §3.4.1). Rows are shifted by the grand means first, which leaves the
model unchanged and keeps the centred Gram matrices free of cancellation.

**Tolerance.** Validation predictions agree with scikit-learn's to about
``1e-9`` relative to the target scale when the centred Gram matrix is well
conditioned. scikit-learn's ``LinearRegression`` solves least squares with an SVD
(error :math:`\sim \kappa(X)\,\epsilon`) and the normal equations here err by
:math:`\sim \kappa(X)^2 \epsilon`; coalitions whose Gram matrix has an estimated
condition number above ``1e8`` (with :math:`\alpha > 0`: the bound
:math:`(\operatorname{tr} C + \alpha)/\alpha`), including every rank-deficient one (fewer
rows than features, where scikit-learn returns the minimum-norm solution), are refit
with scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LinearRegression, Ridge

from coopml.learning.fast._base import FastBlock, StatisticsLearner, spd_solve

__all__ = ["FastLinearRegression"]

#: Coalitions whose Gram matrix is estimated to have a larger condition number are refit.
MAX_CONDITION = 1e8


class FastLinearRegression(StatisticsLearner):
    """Batched ``LinearRegression`` / ``Ridge`` (``solver`` ``"auto"``, ``"cholesky"``,
    ``"svd"``; scalar ``alpha``; ``positive=False``).

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    >>> fast = FastLinearRegression(Ridge(alpha=2.0), [X[:20], X[20:]], [y[:20], y[20:]], X[:5])
    >>> block = fast.fit_block(np.array([[1.0, 1.0], [0.0, 1.0]]))
    >>> bool(np.allclose(block.predictions[1], Ridge(alpha=2.0).fit(X[20:], y[20:]).predict(X[:5])))
    True
    """

    estimator_types = (LinearRegression, Ridge)

    @classmethod
    def _supports_params(cls, params: dict[str, Any]) -> bool:
        if params.get("positive", False):
            return False
        if "alpha" in params:  # Ridge
            alpha = params["alpha"]
            return (
                isinstance(alpha, int | float)
                and not isinstance(alpha, bool)
                and 0 < alpha < np.inf
                and params["solver"] in ("auto", "cholesky", "svd")
            )
        return True

    def _configure(self) -> None:
        self.alpha = float(self.estimator_params.get("alpha", 0.0))
        self.fit_intercept = bool(self.estimator_params["fit_intercept"])

    def center(self, n: float, sum_x: NDArray[np.float64], sum_y: float = 0.0) -> dict[str, Any]:
        """The grand means of features and target (zero without an intercept: a common
        shift then changes the model)."""
        if not self.fit_intercept:
            return {"x": np.zeros(np.shape(sum_x)), "y": 0.0}
        return {"x": np.asarray(sum_x, dtype=np.float64) / n, "y": float(sum_y) / n}

    @staticmethod
    def party_statistics(
        X: NDArray[np.float64], y: NDArray[Any], center: dict[str, Any], n_classes: int = 0
    ) -> dict[str, NDArray[np.float64]]:
        """Row count, sums, Gram matrix and cross products about ``center``.

        Examples
        --------
        >>> center = {"x": np.zeros(2), "y": 0.0}
        >>> s = FastLinearRegression.party_statistics(np.eye(2), np.ones(2), center)
        >>> s["n"].item(), s["gram"].tolist(), s["xty"].tolist()
        (2.0, [1.0, 0.0, 0.0, 1.0], [1.0, 1.0])
        """
        Xc = np.asarray(X, dtype=np.float64) - center["x"]
        yc = np.asarray(y, dtype=np.float64) - center["y"]
        return {
            "n": np.asarray(float(Xc.shape[0])),
            "sx": Xc.sum(axis=0),
            "sy": np.asarray(yc.sum()),
            "gram": (Xc.T @ Xc).ravel(),
            "xty": Xc.T @ yc,
        }

    def load_statistics(
        self, statistics: dict[str, NDArray[np.float64]], X_val: NDArray[np.float64]
    ) -> None:
        self.x_shift = np.asarray(self.shifts["x"], dtype=np.float64)
        self.y_shift = float(self.shifts["y"])
        for name in ("n", "sx", "sy", "gram", "xty"):  # (M,), (M, d), (M,), (M, d*d), (M, d)
            setattr(self, name, statistics[name])
        self.X_val_shifted = X_val - self.x_shift
        be = self.backend
        self._dev = {
            name: be.asarray(getattr(self, name))
            for name in ("n", "sx", "sy", "gram", "xty", "X_val_shifted", "x_shift")
        }
        self._eye = be.eye(self.n_features)

    def _fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        be, dev = self.backend, self._dev
        d = self.n_features
        A = be.asarray(A)
        n = A @ dev["n"]
        C = (A @ dev["gram"]).reshape(-1, d, d)
        c = A @ dev["xty"]
        if self.fit_intercept:
            xbar = (A @ dev["sx"]) / n[:, None]
            ybar = (A @ dev["sy"]) / n
            C -= n[:, None, None] * xbar[:, :, None] * xbar[:, None, :]
            c -= (n * ybar)[:, None] * xbar
        C += self.alpha * self._eye
        rcond = 1.0 / MAX_CONDITION
        enough = (n > d + self.fit_intercept) if self.alpha == 0 else None
        w, ok, _ = spd_solve(C, c[:, :, None], rcond, enough, backend=be)
        w = w[:, :, 0]
        if self.alpha > 0:  # exact bound: cond(C) <= (tr C + alpha) / alpha
            ok &= be.diagonal(C).sum(axis=1) <= MAX_CONDITION * self.alpha
        if self.fit_intercept:
            b = ybar - (xbar * w).sum(axis=1)
        else:
            b = be.zeros(A.shape[0])
        predictions = w @ be.swap(dev["X_val_shifted"]) + (b + self.y_shift)[:, None]
        intercept = b + self.y_shift - w @ dev["x_shift"]
        out = be.numpy
        return FastBlock(out(ok), out(predictions), {"coef": out(w), "intercept": out(intercept)})

    def _set_fitted(self, model: Any, block: FastBlock, b: int) -> None:
        model.coef_ = block.params["coef"][b].copy()
        model.intercept_ = float(block.params["intercept"][b]) if self.fit_intercept else 0.0
