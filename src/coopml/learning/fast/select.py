"""The fast learner for an estimator: matched by exact class and parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.learning.fast._base import FastLearner
from coopml.learning.fast.discriminant import FastLinearDiscriminantAnalysis
from coopml.learning.fast.linear import FastLinearRegression
from coopml.learning.fast.logistic import FastLogisticRegression
from coopml.learning.fast.naive_bayes import FastGaussianNB

__all__ = ["FAST_LEARNERS", "fast_learner_for"]

#: The fast learners, tried in order.
FAST_LEARNERS: tuple[type[FastLearner], ...] = (
    FastLinearRegression,
    FastLinearDiscriminantAnalysis,
    FastGaussianNB,
    FastLogisticRegression,
)


def fast_learner_for(
    estimator: Any,
    X_parts: Sequence[NDArray[np.float64]],
    y_parts: Sequence[NDArray[Any]],
    X_val: NDArray[np.float64],
    device: str | None = None,
) -> FastLearner | None:
    """The fast learner reproducing ``estimator``, built on the parties' rows, or ``None``.

    Parameters
    ----------
    estimator : scikit-learn estimator
        Matched by exact class and parameters (a subclass or a pipeline is not matched).
    X_parts, y_parts : sequences of arrays
        Each party's training rows, in player order.
    X_val : ndarray of shape (n_val, n_features)
    device : str, optional
        ``None`` (the default device, numpy unless set), ``"numpy"``, or a torch device
        such as ``"cpu"`` or ``"cuda"`` (needs torch).

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.tree import DecisionTreeRegressor
    >>> X, y = np.eye(3), np.arange(3.0)
    >>> type(fast_learner_for(Ridge(), [X], [y], X)).__name__
    'FastLinearRegression'
    >>> fast_learner_for(DecisionTreeRegressor(), [X], [y], X) is None
    True
    """
    for cls in FAST_LEARNERS:
        if cls.supports(estimator) and cls.suits(X_parts, y_parts):
            return cls(estimator, X_parts, y_parts, X_val, device=device)
    return None
