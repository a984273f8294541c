r"""Learning curves: the error of a model trained on :math:`N` samples.

.. math::

    \varepsilon(N) = \varepsilon_\infty + A N^{-\beta},

a power law (Hestness et al. 2017); a small :math:`\beta` is a *hard* task (error falls
slowly with data). In the data-sharing model of Tsoy & Konstantinov (NeurIPS 2023,
arXiv 2305.16052; **reconstructed** here) model quality enters the market through the
marginal cost :math:`c_i = c_0 + \kappa\,\varepsilon(N_i)`.
:func:`fit_learning_curve` measures a curve on real data: a learner is trained on nested
subsets of increasing size, the validation error is recorded over several random splits,
and :math:`(\varepsilon_\infty, A, \beta)` are fitted by nonlinear least squares with
standard errors from the Jacobian.

References
----------
J. Hestness et al., "Deep learning scaling is predictable, empirically",
arXiv 1712.00409 (2017).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares
from sklearn.base import clone

from coopml._validation import (
    RandomState,
    check_2d_features,
    check_choice,
    check_int,
    check_positive,
    spawn_generators,
)
from coopml.data.party import Party

__all__ = ["LearningCurve", "LearningCurveFit", "default_sizes", "fit_learning_curve"]


@dataclass(frozen=True)
class LearningCurve:
    """The power-law learning curve ``eps(N) = eps_inf + A * N**(-beta)``.

    Parameters
    ----------
    eps_inf : float
        Irreducible error (>= 0).
    A : float
        Scale (>= 0).
    beta : float
        Decay exponent (> 0); small is a hard task.

    Examples
    --------
    >>> LearningCurve(0.0, 1.0, 0.5)([1, 4, 100]).tolist()
    [1.0, 0.5, 0.1]
    """

    eps_inf: float
    A: float
    beta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "eps_inf", check_positive("eps_inf", self.eps_inf, strict=False))
        object.__setattr__(self, "A", check_positive("A", self.A, strict=False))
        object.__setattr__(self, "beta", check_positive("beta", self.beta))

    def __call__(self, n: ArrayLike) -> NDArray[np.float64]:
        """Errors at sample sizes ``n`` (any shape, entries > 0), same shape."""
        n = np.asarray(n, dtype=np.float64)
        if np.any(~np.isfinite(n)) or np.any(n <= 0):
            raise ValueError("parameter 'n' must contain finite sample sizes > 0")
        return self.eps_inf + self.A * n ** (-self.beta)

    def to_dict(self) -> dict[str, float]:
        """``{"eps_inf", "A", "beta"}``."""
        return {"eps_inf": self.eps_inf, "A": self.A, "beta": self.beta}


@dataclass(frozen=True, kw_only=True)
class LearningCurveFit:
    """A learning curve fitted to measured validation errors.

    Parameters
    ----------
    curve : LearningCurve
        The least-squares fit.
    stderr : ndarray of shape (3,)
        Standard errors of ``(eps_inf, A, beta)`` (``nan`` where not identifiable).
    sizes : ndarray of shape (n_sizes,)
        Training-set sizes.
    errors : ndarray of shape (n_repeats, n_sizes)
        Validation error of every repeat at every size.
    converged : bool
        Whether the least-squares solver reported success.

    Examples
    --------
    >>> fit = LearningCurveFit(curve=LearningCurve(0, 1, 1), stderr=[0, 0, 0],
    ...                        sizes=[1, 2], errors=[[1.0, 0.5]], converged=True)
    >>> fit.mean_errors.tolist()
    [1.0, 0.5]
    """

    curve: LearningCurve
    stderr: NDArray[np.float64]
    sizes: NDArray[np.float64]
    errors: NDArray[np.float64]
    converged: bool

    def __post_init__(self) -> None:
        for name in ("stderr", "sizes", "errors"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def mean_errors(self) -> NDArray[np.float64]:
        """Mean validation error per size, shape (n_sizes,)."""
        return np.asarray(self.errors.mean(axis=0))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the fit."""
        return {
            "curve": self.curve.to_dict(),
            "stderr": [None if np.isnan(s) else float(s) for s in self.stderr],
            "sizes": self.sizes.tolist(),
            "errors": self.errors.tolist(),
            "converged": self.converged,
        }


def default_sizes(n_train: int, n_sizes: int = 6) -> NDArray[np.int64]:
    """``n_sizes`` training sizes spaced geometrically from ``max(10, n_train / 30)``
    (tiny training sets say little about the regime the analysis evaluates) to
    ``n_train``.

    Examples
    --------
    >>> default_sizes(1000).tolist()
    [33, 65, 129, 256, 505, 1000]
    """
    top = max(int(n_train), 3)
    low = min(max(10, round(top / 30)), max(1, top // 8))
    return np.unique(np.geomspace(low, top, n_sizes).round().astype(np.int64))


def fit_learning_curve(
    learner: Any,
    X: ArrayLike | Party,
    y: ArrayLike | None = None,
    *,
    sizes: ArrayLike | None = None,
    n_repeats: int = 3,
    validation_fraction: float = 0.3,
    scale: str = "log",
    random_state: RandomState = None,
) -> LearningCurveFit:
    """Measure and fit a learning curve on real data.

    Each repeat permutes the rows; with a :class:`~coopml.data.Party` that has its own
    validation data (``X_val``, ``y_val``) that data is the validation set of every
    repeat, otherwise each repeat holds out its own random ``validation_fraction`` of
    the rows. The learner (cloned) is trained on the nested prefixes of length
    ``sizes`` of the remaining rows; the error is the misclassification rate ``1 -
    accuracy`` on the validation rows (for classifiers; ``learner.score`` is used, so
    regressors give ``1 - R^2``). ``(eps_inf, A, beta)`` are fitted to the mean errors
    by bounded nonlinear least squares, by default on the log of the error (relative
    residuals, so the small errors at large sizes, which the sharing analysis
    evaluates, weigh as much as the large ones at small sizes); standard errors come
    from the Jacobian.

    Parameters
    ----------
    learner : scikit-learn estimator
        Anything with ``fit`` and ``score``; cloned for every training run.
    X : array_like of shape (n_samples, n_features), or Party
        Features, or a party whose training (and validation) data is used.
    y : array_like of shape (n_samples,), optional
        Labels (not with a Party).
    sizes : array_like of int, shape (n_sizes,), optional
        Increasing training-set sizes (>= 3 sizes, each <= the training rows); default
        six sizes spaced geometrically up to all training rows.
    n_repeats : int
        Random splits / orders (>= 1).
    validation_fraction : float
        Share of rows held out for validation in each repeat, in (0, 1) (ignored for a
        party with validation data).
    scale : {"log", "linear"}
        Fit the log of the errors (relative residuals) or the errors themselves.
    random_state : int, Generator or None
        Randomness of the splits (one spawned stream per repeat).

    Returns
    -------
    LearningCurveFit

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.naive_bayes import GaussianNB
    >>> X, y = load_digits(return_X_y=True)
    >>> fit = fit_learning_curve(GaussianNB(), X, y, sizes=[50, 100, 200, 400, 800],
    ...                          n_repeats=2, random_state=0)
    >>> fit.errors.shape, bool(fit.curve.beta > 0)
    ((2, 5), True)
    >>> from coopml.data import Party
    >>> party = Party("firm", X[:900], y[:900], X_val=X[900:], y_val=y[900:])
    >>> fit_learning_curve(GaussianNB(), party, n_repeats=1).sizes.tolist()
    [30.0, 59.0, 117.0, 231.0, 456.0, 900.0]
    """
    X_val: NDArray[np.float64] | None = None
    y_val: NDArray[Any] | None = None
    if isinstance(X, Party):
        if y is not None:
            raise ValueError("parameter 'y' must be None when 'X' is a Party; got labels")
        party = X
        X, y = np.asarray(party.X), np.asarray(party.y)
        if party.X_val is not None and party.y_val is not None:
            X_val, y_val = np.asarray(party.X_val), np.asarray(party.y_val)
    X = check_2d_features("X", X)
    if y is None:
        raise ValueError("parameter 'y' is required when 'X' is an array; got None")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(
            f"parameter 'y' must be 1-D with one entry per row of X ({X.shape[0]}); "
            f"got shape {y.shape}"
        )
    check_int("n_repeats", n_repeats, minimum=1)
    check_choice("scale", scale, ("log", "linear"))
    if not 0 < float(validation_fraction) < 1:
        raise ValueError(
            f"parameter 'validation_fraction' must lie in (0, 1); got {validation_fraction}"
        )
    n_val = 0 if X_val is not None else max(1, round(float(validation_fraction) * X.shape[0]))
    n_train = X.shape[0] - n_val
    s = default_sizes(n_train) if sizes is None else np.asarray(sizes, dtype=np.int64)
    if s.ndim != 1 or s.size < 3 or np.any(np.diff(s) <= 0) or s[0] < 1 or s[-1] > n_train:
        raise ValueError(
            "parameter 'sizes' must be >= 3 strictly increasing integers in "
            f"[1, {n_train}] (the training rows); got {np.asarray(sizes).tolist()}"
        )
    errors = np.empty((n_repeats, s.size))
    for r, rng in enumerate(spawn_generators(random_state, n_repeats)):
        perm = rng.permutation(X.shape[0])
        train = perm[n_val:]
        if X_val is None or y_val is None:
            Xv, yv = X[perm[:n_val]], y[perm[:n_val]]
        else:
            Xv, yv = X_val, y_val
        for k, size in enumerate(s):
            model = clone(learner).fit(X[train[:size]], y[train[:size]])
            errors[r, k] = 1.0 - float(model.score(Xv, yv))
    mean = errors.mean(axis=0)
    x = s.astype(np.float64)

    if scale == "log":  # relative residuals: the small errors at large N count as much
        target = np.log(np.maximum(mean, 1e-3 * max(float(mean.max()), 1e-12)))

        def residuals(theta: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.log(theta[0] + theta[1] * x ** (-theta[2]) + 1e-300) - target
    else:

        def residuals(theta: NDArray[np.float64]) -> NDArray[np.float64]:
            return theta[0] + theta[1] * x ** (-theta[2]) - mean

    start = np.array([max(mean.min() * 0.5, 0.0), max(mean[0], 1e-3) * x[0] ** 0.5, 0.5])
    res = least_squares(residuals, start, bounds=([0.0, 0.0, 1e-6], [np.inf, np.inf, 5.0]))
    dof = max(s.size - 3, 1)
    sigma2 = float(res.fun @ res.fun) / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = sigma2 * np.linalg.pinv(res.jac.T @ res.jac)
    stderr = np.sqrt(np.clip(np.diag(cov), 0, None))
    theta = res.x
    return LearningCurveFit(
        curve=LearningCurve(float(theta[0]), float(theta[1]), float(theta[2])),
        stderr=stderr,
        sizes=x,
        errors=errors,
        converged=bool(res.success),
    )
