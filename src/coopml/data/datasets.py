"""Small example datasets bundled with scikit-learn, and a train/validation split.

Only datasets that ship inside scikit-learn are offered, so examples, docs and tests run
offline: Wisconsin breast cancer (Street, Wolberg, Mangasarian 1993), optical digits
(Alpaydin, Kaynak 1998), wine (Forina et al. 1988), iris (Fisher 1936) and diabetes
(Efron, Hastie, Johnstone, Tibshirani 2004).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from coopml._validation import (
    RandomState,
    check_2d_features,
    check_choice,
    check_fraction,
    check_seed,
)
from coopml.data.party import _check_labels

__all__ = ["Dataset", "list_datasets", "load_dataset", "train_validation_split"]

# name -> (scikit-learn loader, task, one-line description)
_DATASETS: dict[str, tuple[Callable[[], Any], str, str]] = {
    "breast_cancer": (
        sk_datasets.load_breast_cancer,
        "classification",
        "Wisconsin diagnostic breast cancer: 569 tumours, 30 features, malignant vs benign.",
    ),
    "diabetes": (
        sk_datasets.load_diabetes,
        "regression",
        "Diabetes progression after one year: 442 patients, 10 standardised features.",
    ),
    "digits": (
        sk_datasets.load_digits,
        "classification",
        "Handwritten digits: 1,797 8x8 images, 64 pixel features, 10 classes.",
    ),
    "iris": (
        sk_datasets.load_iris,
        "classification",
        "Fisher's iris flowers: 150 samples, 4 measurements, 3 species.",
    ),
    "wine": (
        sk_datasets.load_wine,
        "classification",
        "Italian wines: 178 samples, 13 chemical measurements, 3 cultivars.",
    ),
}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A bundled dataset (arrays read-only).

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features)
        Features, float64.
    y : ndarray of shape (n_samples,)
        Integer class labels (classification) or float targets (regression).
    feature_names : tuple of str, length n_features
    target_names : tuple of str or None
        Class names indexed by label; None for regression.
    task : {"classification", "regression"}
    name : str
    description : str
        One line.
    """

    X: NDArray[np.float64]
    y: NDArray[Any]
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...] | None
    task: str
    name: str
    description: str

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_samples={self.X.shape[0]}, "
            f"n_features={self.X.shape[1]})"
        )


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted.

    Examples
    --------
    >>> list_datasets()
    ['breast_cancer', 'diabetes', 'digits', 'iris', 'wine']
    """
    return sorted(_DATASETS)


def load_dataset(name: str) -> Dataset:
    """Load a scikit-learn bundled dataset (no download).

    Parameters
    ----------
    name : {"breast_cancer", "diabetes", "digits", "iris", "wine"}

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = load_dataset("iris")
    >>> data
    Dataset(name='iris', task='classification', n_samples=150, n_features=4)
    >>> data.target_names
    ('setosa', 'versicolor', 'virginica')
    """
    name = check_choice("name", name, _DATASETS)
    loader, task, description = _DATASETS[name]
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64 if task == "classification" else np.float64)
    X.setflags(write=False)
    y.setflags(write=False)
    target_names = bunch.get("target_names")
    return Dataset(
        X=X,
        y=y,
        feature_names=tuple(str(f) for f in bunch.feature_names),
        target_names=None if target_names is None else tuple(str(t) for t in target_names),
        task=task,
        name=name,
        description=description,
    )


def train_validation_split(
    X: ArrayLike,
    y: ArrayLike,
    validation_fraction: float = 0.3,
    random_state: RandomState = None,
    stratify: bool = True,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[Any], NDArray[Any]]:
    """Split ``(X, y)`` into training and validation parts.

    A thin wrapper of :func:`sklearn.model_selection.train_test_split`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    validation_fraction : float in (0, 1)
        Share of rows held out for validation.
    random_state : int, numpy.random.Generator or None
    stratify : bool
        Keep class proportions in both parts. Applied only to class labels (bool, integer
        or string ``y``); float ``y`` is taken as a regression target and never stratified.

    Returns
    -------
    X_train : ndarray of shape (n_train, n_features)
    X_val : ndarray of shape (n_val, n_features)
    y_train : ndarray of shape (n_train,)
    y_val : ndarray of shape (n_val,)

    Examples
    --------
    >>> data = load_dataset("iris")
    >>> X_tr, X_val, y_tr, y_val = train_validation_split(data.X, data.y, 0.2, random_state=0)
    >>> X_tr.shape, X_val.shape, np.bincount(y_val).tolist()
    ((120, 4), (30, 4), [10, 10, 10])
    """
    features = check_2d_features("X", X)
    labels = _check_labels("y", y, features.shape[0], "X")
    fraction = check_fraction(
        "validation_fraction", validation_fraction, open_low=True, open_high=True
    )
    by_class = stratify and labels.dtype.kind != "f"
    X_train, X_val, y_train, y_val = train_test_split(
        features,
        labels,
        test_size=fraction,
        random_state=check_seed(random_state),
        stratify=labels if by_class else None,
    )
    return X_train, X_val, y_train, y_val
