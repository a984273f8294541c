"""Batched exact learners: many coalitions' models from per-party sufficient statistics.

:class:`~coopml.learning.CoalitionUtility` picks one automatically (``fast=True``, the
default) when its learner is a supported scikit-learn estimator with supported
parameters, and refits with scikit-learn every coalition a fast learner flags as
outside its tolerance. Supported:

=====================================  ==============================================
estimator                              fast learner
=====================================  ==============================================
``LinearRegression``, ``Ridge``        :class:`FastLinearRegression`
``LinearDiscriminantAnalysis``         :class:`FastLinearDiscriminantAnalysis`
``GaussianNB``                         :class:`FastGaussianNB`
``LogisticRegression`` (L2)            :class:`FastLogisticRegression`
=====================================  ==============================================

Each module states its tolerance against scikit-learn's own ``fit``.

**Backends.** The batched kernels run with numpy by default. With torch installed
(extra ``torch``) they can run as torch tensors on a device instead: pass
``device="cpu"`` or ``device="cuda"`` to a learner or to :func:`fast_learner_for`, or
set the default for learners built without one (the way
:class:`~coopml.learning.CoalitionUtility` builds them) with :func:`use_device`,
:func:`set_default_device` or the environment variable ``COOPML_FAST_DEVICE``. Both
backends compute in float64 and agree to rounding (tested on CPU to ``1e-9``
relative on fitted parameters, identical predictions and refit flags). The CUDA path
uses only device-agnostic torch calls but has not been run on a GPU by the test suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.learning.fast._backend import (
    Backend,
    NumpyBackend,
    TorchBackend,
    get_backend,
    set_default_device,
    use_device,
)
from coopml.learning.fast._base import FastBlock, FastLearner, membership
from coopml.learning.fast.discriminant import FastLinearDiscriminantAnalysis
from coopml.learning.fast.linear import FastLinearRegression
from coopml.learning.fast.logistic import FastLogisticRegression
from coopml.learning.fast.naive_bayes import FastGaussianNB

__all__ = [
    "FAST_LEARNERS",
    "Backend",
    "FastBlock",
    "FastGaussianNB",
    "FastLearner",
    "FastLinearDiscriminantAnalysis",
    "FastLinearRegression",
    "FastLogisticRegression",
    "NumpyBackend",
    "TorchBackend",
    "fast_learner_for",
    "get_backend",
    "membership",
    "set_default_device",
    "use_device",
]

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
