"""A learner wrapper that ignores duplicated training rows.

The collaborative-ML-market paper (Ohrimenko, Tople & Tschiatschek 2019, §2) assumes an
idealised learner for which "replicated data does not change performance":
:math:`M(X) = M(X \\oplus X)`. Real learners violate this (duplicates re-weight logistic
regression; k-NN votes change). :class:`DeduplicatingLearner` realises the assumption
for any estimator by fitting on the distinct rows only, so the paper's robustness claim
can be tested under its own hypothesis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier

__all__ = ["DeduplicatingLearner"]


class DeduplicatingLearner(MetaEstimatorMixin, BaseEstimator):
    """Fit ``estimator`` on the distinct (features, label) rows of the training data.

    Parameters
    ----------
    estimator : estimator
        Any scikit-learn-compatible estimator (cloned at fit).

    Examples
    --------
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> X = np.array([[0.0], [0.0], [0.0], [1.0], [2.0]]); y = np.array([0, 0, 0, 1, 1])
    >>> DeduplicatingLearner(KNeighborsClassifier(3)).fit(X, y).predict([[0.9]]).tolist()
    [1]
    >>> KNeighborsClassifier(3).fit(X, y).predict([[0.9]]).tolist()
    [0]
    """

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Any) -> DeduplicatingLearner:
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        keys = np.column_stack([X, np.unique(y, return_inverse=True)[1]])
        _, first = np.unique(keys, axis=0, return_index=True)
        rows = np.sort(first)
        self.estimator_ = clone(self.estimator).fit(X[rows], y[rows])
        self.n_duplicates_ = int(X.shape[0] - rows.size)
        if is_classifier(self.estimator_):
            self.classes_ = self.estimator_.classes_
        return self

    def predict(self, X: Any) -> Any:
        return self.estimator_.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.estimator_.predict_proba(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = clone(self.estimator).__sklearn_tags__()
        tags.estimator_type = inner.estimator_type
        return tags
