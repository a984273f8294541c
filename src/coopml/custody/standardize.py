r"""Standardisation in parties custody: every coalition's scaler from summed moments.

``make_pipeline(StandardScaler(), estimator)`` fits the scaler on the coalition's
pooled rows: mean :math:`m_C`, variance :math:`v_C` (``ddof=0``) and scale
:math:`s_C = \sqrt{v_C}` (1 for a constant feature). These follow from the sums of the
members' row counts, feature sums and per-feature sums of squares, which the operator
already holds (no new request, no new disclosure):

* **linear and ridge regression, LDA** -- the Gram matrix's diagonal;
* **Gaussian naive Bayes** -- the class sums of squares;
* **logistic regression** -- each party's Hessian at zero (asked anyway, for every
  coalition's first Newton step): :math:`\tfrac14\sum \tilde x \tilde x^\top` for two
  classes, :math:`\tfrac1K(1 - \tfrac1K)\sum \tilde x \tilde x^\top` per class block for
  :math:`K`.

The model is then fit **in the standardised space**, exactly as the pipeline does on the
pooled rows:

* the sufficient statistics are transformed per coalition (with
  :math:`z = (x - m_C)/s_C`: :math:`Z^\top Z = D^{-1}(G - n\bar u \bar u^\top)D^{-1}`,
  class sums :math:`(\Sigma_k - n_k \bar u)/s`, class sums of squares
  :math:`(Q_k - 2\bar u\Sigma_k + n_k\bar u^2)/s^2`, all about the common centre) and
  fit by the same kernels, so Gaussian naive Bayes' ``var_smoothing`` uses the largest
  *standardised* variance, as the pipeline's does;
* logistic regression runs Newton's method in the standardised parametrisation while
  the agents keep answering the gradient and Hessian of their raw rows at raw
  parameters: :math:`w = w_z/s`, :math:`b = b_z - \sum w_z \bar u/s`, so
  :math:`\nabla_z = J^\top \nabla`, :math:`\nabla^2_z = J^\top \nabla^2 J`, and the L2
  penalty is on :math:`w_z`.

A constant feature (scikit-learn's rule, or a variance below the moments' own rounding,
``16 eps`` of the feature's mean square about the centre) has scale 1 and a standardised
column of zeros: its coefficient is zero, as scikit-learn's fit on that column gives.

Each coalition's model is a ``Pipeline(StandardScaler, estimator)`` with the scaler's
fitted attributes set (:meth:`StandardizedStatistics.estimator`); the validator scores
the same model written in raw features (:meth:`StandardizedStatistics.scoring_params`:
an affine change of variables, equal predictions to rounding), so the agents' protocol
is unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from coopml.custody.newton import FederatedLogisticRegression
from coopml.custody.statistics import Moments
from coopml.custody.transport import Transport
from coopml.learning.fast import (
    FastBlock,
    FastGaussianNB,
    FastLinearDiscriminantAnalysis,
    FastLinearRegression,
)
from coopml.learning.fast._base import StatisticsLearner

__all__ = [
    "StandardizedLogisticRegression",
    "StandardizedStatistics",
    "coalition_scaler",
    "raw_params",
]

#: Coalitions fit per batch of the standardised statistics.
CHUNK = 256
_EPS = float(np.finfo(np.float64).eps)


def coalition_scaler(
    n: NDArray[np.float64], s1: NDArray[np.float64], s2: NDArray[np.float64], shift: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Each coalition's ``StandardScaler`` from its row count ``n`` (B,), feature sums
    ``s1`` and sums of squares ``s2`` (B, d) about ``shift`` (d,).

    Returns the mean about ``shift`` :math:`\\bar u`, the absolute mean, the variance
    (``ddof=0``) and the scale (1 for a constant feature, see the module docstring).

    Examples
    --------
    >>> u, mean, var, scale = coalition_scaler(
    ...     np.array([4.0]), np.array([[2.0, 0.0]]), np.array([[3.0, 0.0]]), np.array([1.0, 5.0]))
    >>> mean.tolist(), var.tolist(), scale.tolist()
    ([[1.5, 5.0]], [[0.5, 0.0]], [[0.7071067811865476, 1.0]])
    """
    n = np.asarray(n, dtype=np.float64)[:, None]
    u = s1 / n
    square = s2 / n
    var = np.maximum(square - u**2, 0.0)
    mean = np.asarray(shift, dtype=np.float64)[None, :] + u
    constant = (var <= n * _EPS * var + (n * mean * _EPS) ** 2) | (var <= 16 * _EPS * square)
    var = np.where(constant & (var < 16 * _EPS * square), 0.0, var)
    scale = np.where(constant, 1.0, np.sqrt(var))
    return u, mean, var, scale


def raw_params(
    params: dict[str, NDArray[Any]], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> dict[str, NDArray[Any]]:
    """A block's standardised models written in raw features (predictions equal to
    rounding): linear coefficients :math:`w/s`, intercepts :math:`b - \\sum w m/s`;
    Gaussian naive Bayes and LDA class means :math:`m + s\\theta`, variances
    :math:`s^2\\sigma^2` (``mean``, ``scale``: (B, d))."""
    out = {k: np.asarray(v) for k, v in params.items() if not k.startswith("scaler_")}
    if "coef" in out:
        coef = out["coef"]
        m, s = (mean, scale) if coef.ndim == 2 else (mean[:, None, :], scale[:, None, :])
        out["coef"] = coef / s
        out["intercept"] = out["intercept"] - (out["coef"] * m).sum(axis=-1)
    for key in ("theta", "means"):
        if key in out:
            out[key] = mean[:, None, :] + scale[:, None, :] * out[key]
    if "var" in out:
        out["var"] = out["var"] * scale[:, None, :] ** 2
    return out


def _pipeline(steps: tuple[str, str], model: Any, block: FastBlock, b: int) -> Pipeline:
    """Coalition ``b``'s ``Pipeline(StandardScaler, model)``, the scaler from the
    block's ``scaler_*`` parameters."""
    p = block.params
    mean, var, scale = p["scaler_mean"][b], p["scaler_var"][b], p["scaler_scale"][b]
    scaler = StandardScaler()
    scaler.mean_, scaler.var_, scaler.scale_ = mean.copy(), var.copy(), scale.copy()
    scaler.n_features_in_ = int(mean.shape[0])
    scaler.n_samples_seen_ = np.int64(round(float(p["scaler_n"][b])))
    return Pipeline([(steps[0], scaler), (steps[1], model)])


def _scoring_params(block: FastBlock) -> dict[str, NDArray[Any]]:
    """The block's models in raw features, as the validator rebuilds them."""
    return raw_params(block.params, block.params["scaler_mean"], block.params["scaler_scale"])


class StandardizedStatistics:
    """Every coalition's standardised model from raw per-party statistics.

    Parameters
    ----------
    raw : StatisticsLearner
        The learner built from the agents' raw statistics
        (:func:`~coopml.custody.statistics.statistics_learner`).
    steps : tuple of str
        The pipeline's step names (scaler, estimator).
    """

    def __init__(self, raw: StatisticsLearner, steps: tuple[str, str]) -> None:
        self.raw, self.steps = raw, steps
        self.is_classifier = raw.is_classifier
        self.n_features = raw.n_features
        self.n_players = raw.n_players
        estimator = raw.estimator_class(**raw.estimator_params)
        classes = getattr(raw, "classes", None)
        if classes is not None:
            self.classes, self.class_counts = raw.classes, raw.class_counts
        self._estimator = estimator
        self._shell = type(raw).shell(estimator, self.n_features, classes)
        self.shift = np.asarray(raw.shifts["x"], dtype=np.float64)

    def fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        """Fit the coalitions of membership ``A`` (B, M) in their standardised spaces."""
        blocks = [self._fit_chunk(A[i : i + CHUNK]) for i in range(0, A.shape[0], CHUNK)]
        if len(blocks) == 1:
            return blocks[0]
        return FastBlock(
            np.concatenate([b.ok for b in blocks]),
            np.concatenate([b.predictions for b in blocks]),
            {k: np.concatenate([b.params[k] for b in blocks]) for k in blocks[0].params},
        )

    def _fit_chunk(self, A: NDArray[np.float64]) -> FastBlock:
        raw, d = self.raw, self.n_features
        B = A.shape[0]
        center: dict[str, Any] = {"x": np.zeros(d)}
        r: Any = raw  # the stacked statistics each learner keeps (load_statistics)
        if isinstance(raw, FastLinearRegression):
            n = A @ r.n
            sx, sy = A @ r.sx, A @ r.sy
            gram = (A @ r.gram).reshape(B, d, d)
            u, mean, var, scale = coalition_scaler(n, sx, np.einsum("bii->bi", gram), self.shift)
            stats = {
                "n": n,
                "sx": np.zeros((B, d)),
                "sy": sy,
                "gram": self._scaled_gram(gram, n, u, var, scale).reshape(B, -1),
                "xty": self._zeroed((A @ r.xty - u * sy[:, None]) / scale, var, scale),
            }
            center["y"] = raw.y_shift
        elif isinstance(raw, FastGaussianNB):
            K = self.classes.size
            counts = A @ raw.class_counts
            sums = (A @ raw.sums).reshape(B, K, d)
            squares = (A @ raw.squares).reshape(B, K, d)
            n = counts.sum(axis=1)
            u, mean, var, scale = coalition_scaler(
                n, sums.sum(axis=1), squares.sum(axis=1), self.shift
            )
            uk, sk = u[:, None, :], scale[:, None, :]
            z_sums = (sums - counts[:, :, None] * uk) / sk
            z_squares = (squares - 2 * uk * sums + counts[:, :, None] * uk**2) / sk**2
            keep = ~self._constant(var, scale)[:, None, :]
            stats = {
                "counts": counts,
                "sums": np.where(keep, z_sums, 0.0).reshape(B, -1),
                "squares": np.where(keep, z_squares, 0.0).reshape(B, -1),
            }
        elif isinstance(raw, FastLinearDiscriminantAnalysis):
            K = self.classes.size
            counts = A @ raw.class_counts
            sums = (A @ raw.class_sums).reshape(B, K, d)
            gram = (A @ raw.gram).reshape(B, d, d)
            n = counts.sum(axis=1)
            u, mean, var, scale = coalition_scaler(
                n, sums.sum(axis=1), np.einsum("bii->bi", gram), self.shift
            )
            z_sums = (sums - counts[:, :, None] * u[:, None, :]) / scale[:, None, :]
            constant = self._constant(var, scale)[:, None, :]
            stats = {
                "counts": counts,
                "class_sums": np.where(constant, 0.0, z_sums).reshape(B, -1),
                "gram": self._scaled_gram(gram, n, u, var, scale).reshape(B, -1),
            }
        else:  # pragma: no cover - statistics_learner builds only these
            raise TypeError(f"{type(raw).__name__} has no standardised statistics")
        inner = type(raw).__new__(type(raw))
        inner._setup(self._estimator, B, d, "numpy")
        if self.is_classifier:
            inner.classes, inner.class_counts = self.classes, stats["counts"]
        inner.shifts = center
        inner.X_val = np.empty((0, d))
        inner.load_statistics(stats, inner.X_val)
        block = inner.fit_block(np.eye(B))
        block.params.update(scaler_mean=mean, scaler_var=var, scaler_scale=scale, scaler_n=n)
        return block

    @staticmethod
    def _constant(var: NDArray[np.float64], scale: NDArray[np.float64]) -> NDArray[np.bool_]:
        """The features the scaler treats as constant (scale 1 and no variance above
        rounding): their standardised column is zero."""
        return (scale == 1.0) & (var <= _EPS)

    def _zeroed(self, x: Any, var: Any, scale: Any) -> Any:
        return np.where(self._constant(var, scale), 0.0, x)

    def _scaled_gram(self, gram: Any, n: Any, u: Any, var: Any, scale: Any) -> Any:
        """:math:`Z^\\top Z` of the standardised rows; a constant feature's row and
        column zero but for ``n`` on the diagonal (its coefficient then solves to zero)."""
        centred = gram - n[:, None, None] * u[:, :, None] * u[:, None, :]
        z = centred / (scale[:, :, None] * scale[:, None, :])
        constant = self._constant(var, scale)
        z = np.where(constant[:, :, None] | constant[:, None, :], 0.0, z)
        d = z.shape[1]
        z[:, np.arange(d), np.arange(d)] += np.where(constant, n[:, None], 0.0)
        return z

    def estimator(self, block: FastBlock, b: int) -> Pipeline:
        """Coalition ``b``'s ``Pipeline(StandardScaler, estimator)``."""
        return _pipeline(self.steps, self._shell.estimator(block, b), block, b)

    def scoring_params(self, block: FastBlock) -> dict[str, NDArray[Any]]:
        """The block's models in raw features, as the validator rebuilds them."""
        return _scoring_params(block)


class StandardizedLogisticRegression(FederatedLogisticRegression):
    """:class:`~coopml.custody.newton.FederatedLogisticRegression` in each coalition's
    standardised parametrisation (module docstring); the agents' requests are those of
    the raw fit."""

    steps: tuple[str, str]
    _n: NDArray[np.float64]
    _s1: NDArray[np.float64]
    _zero: dict[tuple[int, ...], tuple[NDArray[np.float64], NDArray[np.float64]]]

    @classmethod
    def from_agents(
        cls,
        estimator: Any,
        transport: Transport,
        moments: Moments,
        steps: tuple[str, str] = ("standardscaler", "logisticregression"),
    ) -> StandardizedLogisticRegression:
        self = super().from_agents(estimator, transport, moments)
        assert isinstance(self, StandardizedLogisticRegression)
        if self.noisy:
            raise ValueError(
                "parameter 'learner' standardises the features of a logistic regression "
                "whose agents add privacy noise: the noisy Newton method has no exact "
                "scaler; standardise the files alike at every party, or drop the noise"
            )
        if not self.fit_intercept:
            raise ValueError(
                "parameter 'learner' standardises the features of a LogisticRegression "
                "with fit_intercept=False, which parties custody does not train (the "
                "centring needs an intercept in raw features); use fit_intercept=True or "
                "custody='operator'"
            )
        self.steps = steps
        self._n = np.asarray(moments.n, dtype=np.float64)
        self._s1 = moments.sum_x - self._n[:, None] * self.shift[None, :]
        self._zero = {}
        return self

    # ------------------------------------------------------------ scaler and Jacobian
    def _pieces(self, classes: NDArray[np.intp]) -> tuple[Any, Any]:
        """Each party's raw gradient and Hessian at zero for ``classes`` (one round
        trip, cached): every coalition's first step and its sums of squares."""
        key = tuple(classes.tolist())
        if key not in self._zero:
            M, size = self.n_players, self.p * (1 if classes.size == 2 else classes.size)
            g, h = FederatedLogisticRegression._data_grad_hess(
                self, np.zeros((M, size)), np.eye(M), classes
            )
            self._zero[key] = (np.asarray(g), np.asarray(h))
        return self._zero[key]

    def _scaler(self, A: Any, classes: NDArray[np.intp]) -> tuple[Any, ...]:
        """The scaler of each coalition of ``A`` holding the classes ``classes``: its
        parties' rows are all of those classes, so their Hessians at zero cover them."""
        _, h = self._pieces(classes)
        K = classes.size
        weight = 0.25 if K == 2 else (1.0 / K) * (1.0 - 1.0 / K)
        d = self.n_features
        s2 = np.einsum("mii->mi", h[:, :d, :d]) / weight  # (M, d) about the shift
        A = np.asarray(A)
        return coalition_scaler(A @ self._n, A @ self._s1, A @ s2, self.shift)

    def _jacobian(self, A: Any, classes: NDArray[np.intp]) -> NDArray[np.float64]:
        """:math:`J` (b, P, P): raw parameters = J standardised parameters (per class)."""
        u, _, _, scale = self._scaler(A, classes)
        b, d, p = u.shape[0], self.n_features, self.p
        J1 = np.zeros((b, p, p))
        J1[:, np.arange(d), np.arange(d)] = 1.0 / scale
        J1[:, d, :d] = -u / scale
        J1[:, d, d] = 1.0
        K = 1 if classes.size == 2 else classes.size
        J = np.zeros((b, K * p, K * p))
        for k in range(K):
            J[:, k * p : (k + 1) * p, k * p : (k + 1) * p] = J1
        return J

    # ------------------------------------------------------------ the fit
    def _newton(
        self, A: Any, classes: NDArray[np.intp], start: Any = None, warm: bool = False
    ) -> tuple[Any, Any]:
        if warm:  # from zero (the same in both parametrisations), first step from pieces
            self._pieces(classes)
            size = self.p * (1 if classes.size == 2 else classes.size)
            return super()._newton(A, classes, np.zeros(size), warm=False)
        return super()._newton(A, classes, start, warm)

    def _data_loss(self, theta: Any, A: Any, classes: NDArray[np.intp]) -> Any:
        raw = (self._jacobian(A, classes) @ np.asarray(theta)[:, :, None])[:, :, 0]
        return super()._data_loss(raw, A, classes)

    def _data_grad_hess(self, theta: Any, A: Any, classes: NDArray[np.intp]) -> tuple[Any, Any]:
        J = self._jacobian(A, classes)
        if not np.any(theta):  # zero: the parties' pieces, no round trip
            g0, h0 = self._pieces(classes)
            A = np.asarray(A)
            grad = A @ g0
            hess = (A @ h0.reshape(h0.shape[0], -1)).reshape(-1, *h0.shape[1:])
        else:
            raw = (J @ np.asarray(theta)[:, :, None])[:, :, 0]
            grad, hess = super()._data_grad_hess(raw, A, classes)
        Jt = np.swapaxes(J, 1, 2)
        return (Jt @ np.asarray(grad)[:, :, None])[:, :, 0], Jt @ np.asarray(hess) @ J

    def _fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        block = super()._fit_block(A)
        p = block.params
        # the standardised model's intercept (the raw fit's shift does not apply)
        p["intercept"] = p["intercept"] + p["coef"] @ self.shift
        B, d = A.shape[0], self.n_features
        scaler = {k: np.zeros((B, d)) for k in ("scaler_mean", "scaler_var", "scaler_scale")}
        scaler["scaler_n"] = A @ self._n
        present = p["present"]
        patterns, which = np.unique(present, axis=0, return_inverse=True)
        for g, pattern in enumerate(patterns):
            idx = np.flatnonzero(which.ravel() == g)
            _, mean, var, scale = self._scaler(A[idx], np.flatnonzero(pattern))
            scaler["scaler_mean"][idx], scaler["scaler_var"][idx] = mean, var
            scaler["scaler_scale"][idx] = scale
        p.update(scaler)
        return block

    def estimator(self, block: FastBlock, b: int) -> Pipeline:
        """Coalition ``b``'s ``Pipeline(StandardScaler, LogisticRegression)``."""
        return _pipeline(self.steps, super().estimator(block, b), block, b)

    def scoring_params(self, block: FastBlock) -> dict[str, NDArray[Any]]:
        """The block's models in raw features, as the validator rebuilds them."""
        return _scoring_params(block)
