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

from typing import TYPE_CHECKING

from coopml._lazy import exports

if TYPE_CHECKING:
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
    from coopml.learning.fast.select import FAST_LEARNERS, fast_learner_for

# Imported on first use (PEP 562): a parties-custody agent, a fresh process for every
# Flower message, needs the logistic rows' kernels, not scikit-learn's estimators
_LAZY = {
    **dict.fromkeys(
        ["Backend", "NumpyBackend", "TorchBackend", "get_backend", "set_default_device"],
        "_backend",
    ),
    "use_device": "_backend",
    **dict.fromkeys(["FastBlock", "FastLearner", "membership"], "_base"),
    "FastLinearDiscriminantAnalysis": "discriminant",
    "FastLinearRegression": "linear",
    "FastLogisticRegression": "logistic",
    "FastGaussianNB": "naive_bayes",
    **dict.fromkeys(["FAST_LEARNERS", "fast_learner_for"], "select"),
}


__getattr__ = exports(__name__, _LAZY)


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
