r"""Linear discriminant analysis of many coalitions from per-party class statistics.

With class counts :math:`n_k`, class means :math:`\mu_k`, priors :math:`\pi_k = n_k/n`
and the pooled within-class covariance

.. math::

    \Sigma = \frac1n \sum_k \sum_{i: y_i = k} (x_i - \mu_k)(x_i - \mu_k)^\top
           = \frac1n \Bigl(X^\top X - \sum_k n_k \mu_k \mu_k^\top\Bigr),

LDA assigns :math:`x` to :math:`\arg\max_k\, x^\top \Sigma^{-1}\mu_k - \tfrac12
\mu_k^\top\Sigma^{-1}\mu_k + \log\pi_k` (Hastie, Tibshirani & Friedman, *The Elements
of Statistical Learning*, 2nd ed., 2009, §4.3). Counts, class sums and
:math:`X_j^\top X_j` add over parties, so a coalition costs one :math:`d \times d`
factorisation, batched over many coalitions.

scikit-learn's default ``solver="svd"`` computes the same classifier through two SVDs
(its decision function differs from the one above by a class-independent shift, so
predictions and probabilities agree) *unless* it truncates a rank: a within-class
singular value of the standardised data at or below ``tol``, or a between-class one at or
below ``tol`` times the largest. Such coalitions are detected (exact eigenvalues of the
standardised scatter for every coalition whose Cholesky pivots come near ``tol``) and
refit with scikit-learn, as are those whose covariance is too ill conditioned for the
``"lsqr"``/``"eigen"`` solvers and those with a validation point whose two best class
scores tie to ``1e-9``. Other coalitions agree with scikit-learn's predictions exactly
and with its decision scores to about ``1e-9`` relative.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from coopml.learning.fast._base import FastBlock, StatisticsLearner, masked_argmax, spd_solve

__all__ = ["FastLinearDiscriminantAnalysis"]

TIE_TOL = 1e-9
MAX_CONDITION = 1e8


class FastLinearDiscriminantAnalysis(StatisticsLearner):
    """Batched ``LinearDiscriminantAnalysis`` (any solver; ``shrinkage=None``,
    ``priors=None``, ``covariance_estimator=None``).

    Examples
    --------
    >>> from sklearn.discriminant_analysis import LinearDiscriminantAnalysis as LDA
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 3)), rng.integers(0, 2, 60)
    >>> fast = FastLinearDiscriminantAnalysis(LDA(), [X[:30], X[30:]], [y[:30], y[30:]], X)
    >>> block = fast.fit_block(np.array([[1.0, 1.0]]))
    >>> bool((fast.classes[block.predictions[0]] == LDA().fit(X, y).predict(X)).all())
    True
    """

    estimator_types = (LinearDiscriminantAnalysis,)
    is_classifier = True

    @classmethod
    def _supports_params(cls, params: dict[str, Any]) -> bool:
        return (
            params["shrinkage"] is None
            and params["priors"] is None
            and params["covariance_estimator"] is None
            and params["solver"] in ("svd", "lsqr", "eigen")
        )

    def _configure(self) -> None:
        self.solver = self.estimator_params["solver"]
        self.tol = float(self.estimator_params["tol"])

    @staticmethod
    def party_statistics(
        X: NDArray[np.float64], y: NDArray[Any], center: dict[str, Any], n_classes: int
    ) -> dict[str, NDArray[np.float64]]:
        """Class counts, class sums and the Gram matrix about ``center`` (``y``: class
        indices; shapes (K,), (K*d,), (d*d,))."""
        Z = np.asarray(X, dtype=np.float64) - center["x"]
        codes = np.asarray(y)
        return {
            "counts": np.bincount(codes, minlength=n_classes).astype(np.float64),
            "class_sums": np.stack([Z[codes == k].sum(axis=0) for k in range(n_classes)]).ravel(),
            "gram": (Z.T @ Z).ravel(),
        }

    def load_statistics(
        self, statistics: dict[str, NDArray[np.float64]], X_val: NDArray[np.float64]
    ) -> None:
        self.shift = np.asarray(self.shifts["x"], dtype=np.float64)
        self.class_sums = statistics["class_sums"]  # (M, K*d)
        self.gram = statistics["gram"]  # (M, d*d)
        self.X_val_shifted = X_val - self.shift
        self._shape = (self.classes.size, self.n_features)
        be = self.backend
        self._dev = {
            name: be.asarray(getattr(self, name))
            for name in ("class_counts", "class_sums", "gram", "X_val_shifted", "shift")
        }

    def _fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        be, dev = self.backend, self._dev
        K, d = self._shape
        A = be.asarray(A)
        B = A.shape[0]
        counts = A @ dev["class_counts"]  # (B, K)
        present = counts > 0
        n = counts.sum(axis=1)
        sums = (A @ dev["class_sums"]).reshape(B, K, d)
        means = sums / be.clip_min(counts, 1.0)[:, :, None]
        scatter = (A @ dev["gram"]).reshape(B, d, d)
        scatter -= be.swap(sums) @ means  # minus sum_k n_k mu_k mu_k'
        diag = be.diagonal(scatter)
        ok = (diag > 0).all(axis=1)
        scale = 1.0 / be.sqrt(be.where(diag > 0, diag, 1.0))
        # R: the standardised scatter, unit diagonal; eig(R) are sklearn's squared S.
        R = scatter
        R *= scale[:, :, None]
        R *= scale[:, None, :]
        rhs = be.swap(means) * scale[:, :, None]  # (B, d, K)
        rcond = 1.0 / MAX_CONDITION if self.solver != "svd" else 0.0
        full_rank = ok & (n - present.sum(axis=1) >= d)  # else the scatter is singular
        Y, solved, pivots = spd_solve(R, rhs, rcond, full_rank, backend=be)
        ok &= solved
        if self.solver == "svd":
            ok &= self._full_within_rank(R, pivots, ok)
        Z = Y * (scale[:, :, None] * n[:, None, None])  # Sigma^{-1} mu_k, Sigma = scatter / n
        quad = (means * be.swap(Z)).sum(axis=2)  # mu_k' Sigma^{-1} mu_k
        priors = counts / n[:, None]
        with np.errstate(divide="ignore"):
            intercept = -0.5 * quad + be.log(priors)
        if self.solver == "svd":
            ok &= self._full_between_rank(means, Z, priors, present, ok)
        # All validation scores in one matrix product: (n_val, d) @ (d, B*K).
        scores = dev["X_val_shifted"] @ be.permute(Z, (1, 0, 2)).reshape(d, B * K)
        scores = be.permute(scores.reshape(-1, B, K), (1, 0, 2)) + intercept[:, None, :]
        predictions, tie = masked_argmax(scores, present, TIE_TOL, be)
        ok &= ~tie
        coef = be.swap(Z)  # (B, K, d)
        intercept = intercept - coef @ dev["shift"]
        out = be.numpy
        params = {"coef": out(coef), "intercept": out(intercept)}
        params["means"] = out(means + dev["shift"])
        params["priors"], params["present"] = out(priors), out(present)
        return FastBlock(out(ok), out(predictions), params)

    def _full_within_rank(self, R: Any, pivots: Any, ok: Any) -> Any:
        """Whether sklearn's svd solver keeps every within-class direction (S > tol)."""
        be = self.backend
        full = ok.clone() if be.name == "torch" else ok.copy()
        threshold = self.tol**2
        # The smallest eigenvalue is at most the smallest pivot; check near ones exactly.
        near = ok & (be.amin(pivots, 1) < 1e4 * threshold)
        if bool(near.any()):
            full[near] = be.eigvalsh(R[near])[:, 0] > 1.01 * threshold
        return full

    def _full_between_rank(self, means: Any, Z: Any, priors: Any, present: Any, ok: Any) -> Any:
        """Whether sklearn's svd solver keeps K-1 between-class directions (S > tol * S_0)."""
        be = self.backend
        n_present = present.sum(axis=1)
        full = ok | ~ok
        check = ok & (n_present >= 3)
        if not bool(check.any()):
            return full
        mu, z, pi = means[check], Z[check], priors[check]
        K = pi.shape[1]
        Q = mu @ z  # mu_k' Sigma^{-1} mu_l
        P = be.eye(K)[None] - pi[:, None, :]  # rows: e_k - pi
        Qc = P @ Q @ be.swap(P)
        w = be.sqrt(pi)
        eig = be.eigvalsh(w[:, :, None] * Qc * w[:, None, :])  # ascending
        kp = n_present[check]
        rows = be.arange(kp.shape[0])
        smallest_kept = eig[rows, K + 1 - kp]  # the (K-1)-th largest
        structural = be.abs(eig[rows, K - kp])  # the K-th largest, zero in exact arithmetic
        cut = self.tol**2 * eig[:, K - 1]
        full[check] = (smallest_kept > 4 * cut) & (structural < 0.25 * cut)
        return full

    def _set_fitted(self, model: Any, block: FastBlock, b: int) -> None:
        p = block.params
        keep = p["present"][b]
        coef, intercept = p["coef"][b][keep], p["intercept"][b][keep]
        if keep.sum() == 2:  # sklearn stores the binary problem as one row
            coef, intercept = coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        model.classes_ = self.classes[keep]
        model.priors_ = p["priors"][b][keep]
        model.means_ = p["means"][b][keep]
        model.xbar_ = model.priors_ @ model.means_
        model.coef_, model.intercept_ = coef, intercept
