r"""An accuracy curve fitted from real training runs.

The contract program of Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) only needs a
concave, increasing accuracy curve :math:`a(M)`. :func:`measure_learning_curve` measures
points :math:`(M, \text{accuracy})` by really training a scikit-learn learner on ``M``
rows of a bundled dataset (repeated over random subsets) and scoring it on held-out
rows; :func:`fit_learning_curve` fits the saturating power law
:math:`a(M) = a_{\max}(1 - (1 + M/s)^{-\alpha})` to them by weighted least squares
(``scipy.optimize.curve_fit``), which is concave and increasing by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import curve_fit
from sklearn.base import clone

from coopml._validation import RandomState, check_int, check_random_state
from coopml.contracts.accuracy import PowerLawCurve
from coopml.data import load_dataset, train_validation_split

__all__ = ["LearningCurvePoints", "default_learner", "fit_learning_curve", "measure_learning_curve"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class LearningCurvePoints:
    """Measured accuracies: mean and standard error over repeats at each size.

    Attributes
    ----------
    sizes : ndarray of shape (S,)
    scores : ndarray of shape (S,)
    stderr : ndarray of shape (S,)
    """

    sizes: FloatArray
    scores: FloatArray
    stderr: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return {
            "sizes": self.sizes.tolist(),
            "scores": self.scores.tolist(),
            "stderr": self.stderr.tolist(),
        }


def default_learner() -> Any:
    """Standardised multinomial logistic regression (the learner of the examples)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


def measure_learning_curve(
    dataset: str = "digits",
    learner: Any = None,
    sizes: ArrayLike | None = None,
    n_repeats: int = 3,
    random_state: RandomState = None,
) -> LearningCurvePoints:
    """Train ``learner`` on random subsets of ``sizes`` rows and score on held-out rows.

    Parameters
    ----------
    dataset : str, default "digits"
        A bundled classification dataset (see :func:`coopml.data.list_datasets`).
    learner : estimator, optional
        Cloned before every fit (default :func:`default_learner`).
    sizes : array-like of int, optional
        Training-set sizes (default: 8 sizes from 30 to 70% of the dataset).
    n_repeats : int, default 3
    random_state : int, Generator or None

    Examples
    --------
    >>> pts = measure_learning_curve("iris", sizes=[10, 40, 100], random_state=0)
    >>> pts.sizes.tolist(), bool(pts.scores[-1] > 0.8)
    ([10.0, 40.0, 100.0], True)
    """
    data = load_dataset(dataset)
    if data.task != "classification":
        raise ValueError(
            f"parameter 'dataset' must be a classification dataset; {dataset!r} is {data.task}"
        )
    n_repeats = check_int("n_repeats", n_repeats, minimum=1)
    rng = check_random_state(random_state)
    X, X_val, y, y_val = train_validation_split(
        data.X, data.y, validation_fraction=0.3, random_state=int(rng.integers(2**31 - 1))
    )
    if sizes is None:
        sizes = np.unique(np.geomspace(30, X.shape[0], 8).astype(int))
    sz = np.asarray(sizes)
    if sz.ndim != 1 or sz.size < 1 or np.any(sz < 2) or np.any(sz > X.shape[0]):
        raise ValueError(
            f"parameter 'sizes' must be integers in [2, {X.shape[0]}] (training rows of "
            f"{dataset!r}); got {np.asarray(sizes).tolist()}"
        )
    learner = default_learner() if learner is None else learner
    scores = np.zeros((sz.size, n_repeats))
    for a, size in enumerate(sz):
        for r in range(n_repeats):
            for _ in range(100):  # a subset must hold at least two classes
                rows = rng.choice(X.shape[0], size=int(size), replace=False)
                if np.unique(y[rows]).size > 1:
                    break
            model = clone(learner).fit(X[rows], y[rows])
            scores[a, r] = float(np.mean(model.predict(X_val) == y_val))
    se = scores.std(axis=1, ddof=1) / np.sqrt(n_repeats) if n_repeats > 1 else np.zeros(sz.size)
    return LearningCurvePoints(sizes=sz.astype(np.float64), scores=scores.mean(axis=1), stderr=se)


def fit_learning_curve(points: LearningCurvePoints, a_max: float = 1.0) -> PowerLawCurve:
    """Fit :class:`PowerLawCurve` to measured points (weighted least squares).

    Parameters
    ----------
    points : LearningCurvePoints
    a_max : float, default 1
        Upper bound on the fitted supremum (accuracy cannot exceed 1).

    Examples
    --------
    >>> sizes = np.array([10.0, 30, 100, 300, 1000])
    >>> truth = PowerLawCurve(a_max=0.95, scale=20.0, exponent=0.8)
    >>> fit = fit_learning_curve(LearningCurvePoints(sizes, truth(sizes), np.zeros(5)))
    >>> round(fit.a_max, 3), round(fit.scale, 2), round(fit.exponent, 3)
    (0.95, 20.0, 0.8)
    """

    def model(M: FloatArray, amax: float, scale: float, alpha: float) -> FloatArray:
        return amax * (1.0 - (1.0 + M / scale) ** (-alpha))

    sigma = np.maximum(points.stderr, 1e-3)
    p0 = (min(float(points.scores.max()) * 1.02, a_max), float(np.median(points.sizes)) / 5, 0.7)
    (amax, scale, alpha), *_ = curve_fit(
        model,
        points.sizes,
        points.scores,
        p0=p0,
        sigma=sigma,
        bounds=([1e-6, 1e-6, 1e-3], [a_max, 1e9, 10.0]),
        maxfev=20_000,
    )
    return PowerLawCurve(a_max=float(amax), scale=float(scale), exponent=float(alpha))
