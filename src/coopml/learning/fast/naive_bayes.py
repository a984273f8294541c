r"""Gaussian naive Bayes of many coalitions from per-party class moments.

For each class :math:`k` Gaussian naive Bayes stores the prior :math:`\pi_k = n_k/n`,
the feature means :math:`\theta_{kf}` and variances :math:`\sigma^2_{kf} + \epsilon`
with :math:`\epsilon` = ``var_smoothing`` times the largest feature variance of the
training data, and predicts :math:`\arg\max_k \log\pi_k - \tfrac12\sum_f
\log(2\pi\sigma^2_{kf}) + (x_f - \theta_{kf})^2/\sigma^2_{kf}` (Hastie, Tibshirani &
Friedman, *The Elements of Statistical Learning*, 2nd ed., 2009, §6.6.3; scikit-learn's
``GaussianNB``). Class counts, sums and sums of squares add over parties, so every
coalition's model is a few vectorised sums. Rows are shifted by the grand mean first
(moments about a nearby point lose little to cancellation).

**Tolerance.** Means and variances agree with scikit-learn's to about ``1e-12``
relative, joint log-likelihoods to about ``1e-9``; a coalition with a validation point
whose two best classes tie to ``1e-9`` is refit with scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.naive_bayes import GaussianNB

from coopml.learning.fast._base import FastBlock, StatisticsLearner, masked_argmax

__all__ = ["FastGaussianNB"]

TIE_TOL = 1e-9


class FastGaussianNB(StatisticsLearner):
    """Batched ``GaussianNB`` (``priors=None``).

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    >>> fast = FastGaussianNB(GaussianNB(), [X[:30], X[30:]], [y[:30], y[30:]], X)
    >>> block = fast.fit_block(np.array([[1.0, 1.0]]))
    >>> bool((fast.classes[block.predictions[0]] == GaussianNB().fit(X, y).predict(X)).all())
    True
    """

    estimator_types = (GaussianNB,)
    is_classifier = True

    @classmethod
    def _supports_params(cls, params: dict[str, Any]) -> bool:
        return params["priors"] is None

    def _configure(self) -> None:
        self.var_smoothing = float(self.estimator_params["var_smoothing"])

    @staticmethod
    def party_statistics(
        X: NDArray[np.float64], y: NDArray[Any], center: dict[str, Any], n_classes: int
    ) -> dict[str, NDArray[np.float64]]:
        """Class counts, and per class the sums and sums of squares about ``center``
        (``y``: class indices; shapes (K,), (K*d,), (K*d,))."""
        Z = np.asarray(X, dtype=np.float64) - center["x"]
        codes = np.asarray(y)
        by_class = [Z[codes == k] for k in range(n_classes)]
        return {
            "counts": np.bincount(codes, minlength=n_classes).astype(np.float64),
            "sums": np.stack([C.sum(axis=0) for C in by_class]).ravel(),
            "squares": np.stack([(C**2).sum(axis=0) for C in by_class]).ravel(),
        }

    def load_statistics(
        self, statistics: dict[str, NDArray[np.float64]], X_val: NDArray[np.float64]
    ) -> None:
        self.shift = np.asarray(self.shifts["x"], dtype=np.float64)
        self.sums = statistics["sums"]  # (M, K*d)
        self.squares = statistics["squares"]
        self.X_val_shifted = X_val - self.shift
        be = self.backend
        self._dev = {
            "class_counts": be.asarray(self.class_counts),
            "sums": be.asarray(self.sums),
            "squares": be.asarray(self.squares),
            "x": be.asarray(self.X_val_shifted),
            "x2": be.asarray(self.X_val_shifted**2),
            "shift": be.asarray(self.shift),
        }

    def _fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        be, dev = self.backend, self._dev
        K, d = self.classes.size, self.n_features
        A = be.asarray(A)
        B = A.shape[0]
        counts = A @ dev["class_counts"]
        present = counts > 0
        n = counts.sum(axis=1)
        sums = (A @ dev["sums"]).reshape(B, K, d)
        squares = (A @ dev["squares"]).reshape(B, K, d)
        safe_counts = be.clip_min(counts, 1.0)[:, :, None]
        theta = sums / safe_counts
        var = be.clip_min(squares / safe_counts - theta**2, 0.0)
        total_mean = sums.sum(axis=1) / n[:, None]
        total_var = squares.sum(axis=1) / n[:, None] - total_mean**2
        epsilon = self.var_smoothing * be.amax(total_var, 1)
        var += epsilon[:, None, None]
        ok = be.where(present[:, :, None], var > 0, True).reshape(B, -1).all(axis=1)
        keep = present[:, :, None] & ok[:, None, None]
        inv = be.where(keep, 1.0 / be.where(var > 0, var, 1.0), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            const = be.log(counts / n[:, None]) - 0.5 * be.log(2 * np.pi * var).sum(axis=2)
        # sum_f (x_f - theta_kf)^2 / var_kf as two (n_val, d) @ (d, B*K) products
        lin = be.swap((inv * theta).reshape(B * K, d))
        quad = dev["x2"] @ be.swap(inv.reshape(B * K, d)) - 2.0 * (dev["x"] @ lin)
        mahal = quad.reshape(-1, B, K) + (theta**2 * inv).sum(axis=2)[None, :, :]
        scores = be.permute(const[None, :, :] - 0.5 * mahal, (1, 0, 2))  # (B, n_val, K)
        predictions, tie = masked_argmax(scores, present, TIE_TOL, be)
        ok &= ~tie
        out = be.numpy
        params = {"theta": out(theta + dev["shift"]), "var": out(var), "epsilon": out(epsilon)}
        params["counts"], params["present"] = out(counts), out(present)
        return FastBlock(out(ok), out(predictions), params)

    def _set_fitted(self, model: Any, block: FastBlock, b: int) -> None:
        p = block.params
        keep = p["present"][b]
        model.classes_ = self.classes[keep]
        model.class_count_ = p["counts"][b][keep]
        model.class_prior_ = model.class_count_ / model.class_count_.sum()
        model.theta_ = p["theta"][b][keep]
        model.var_ = p["var"][b][keep]
        model.epsilon_ = float(p["epsilon"][b])
