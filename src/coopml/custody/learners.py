"""Which learners a parties-custody market can train, and how a learner travels.

In parties custody no row leaves its owner, so a coalition's model must be a function
of quantities each party computes from its own rows and the operator adds up:

* **sufficient statistics** -- ``LinearRegression``, ``Ridge``, ``GaussianNB`` and
  ``LinearDiscriminantAnalysis`` (:class:`~coopml.learning.fast.StatisticsLearner`):
  every coalition's model is exact from sums of per-party statistics;
* **gradients and Hessians** -- L2 ``LogisticRegression``: a federated batched Newton
  method (:mod:`coopml.custody.newton`).

Learners whose models depend on the rows themselves (k-nearest neighbours store
them; trees and forests split on them) are refused: see :func:`custody_learner`.

A learner travels to the agents as its class name, one of :data:`ESTIMATORS` (nothing
is imported by name), and its parameters as plain JSON values.
"""

from __future__ import annotations

from typing import Any

from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import check_scoring, r2_score
from sklearn.naive_bayes import GaussianNB

from coopml.learning.fast import (
    FastGaussianNB,
    FastLearner,
    FastLinearDiscriminantAnalysis,
    FastLinearRegression,
    FastLogisticRegression,
)

__all__ = [
    "ESTIMATORS",
    "build_estimator",
    "build_scorer",
    "clipped_r2",
    "custody_learner",
    "learner_spec",
]

#: The estimators a parties-custody market may use, by class name, with their fast
#: learner.
ESTIMATORS: dict[str, tuple[type, type[FastLearner]]] = {
    "LinearRegression": (LinearRegression, FastLinearRegression),
    "Ridge": (Ridge, FastLinearRegression),
    "GaussianNB": (GaussianNB, FastGaussianNB),
    "LinearDiscriminantAnalysis": (LinearDiscriminantAnalysis, FastLinearDiscriminantAnalysis),
    "LogisticRegression": (LogisticRegression, FastLogisticRegression),
}

_NEEDS_ROWS = {
    "KNeighbors": "k-nearest neighbours predict from the training rows themselves",
    "Tree": "a tree's splits are thresholds chosen among the training rows' values",
    "Forest": "a forest's trees split on thresholds chosen among the training rows",
    "Boosting": "boosted trees split on thresholds chosen among the training rows",
}


def custody_learner(estimator: Any) -> type[FastLearner]:
    """The fast learner that trains ``estimator`` in parties custody, or a clear refusal.

    Raises
    ------
    ValueError
        When ``estimator`` needs the parties' rows (k-nearest neighbours, trees,
        forests), is a pipeline or another estimator, or has parameters the exact
        protocol does not reproduce.

    Examples
    --------
    >>> custody_learner(GaussianNB()).__name__
    'FastGaussianNB'
    >>> from sklearn.neighbors import KNeighborsClassifier
    >>> custody_learner(KNeighborsClassifier())
    Traceback (most recent call last):
    ...
    ValueError: parameter 'learner' is KNeighborsClassifier, which custody='parties' cannot train: k-nearest neighbours predict from the training rows themselves, and no row leaves its owner. Use one of GaussianNB, LinearDiscriminantAnalysis, LinearRegression, LogisticRegression, Ridge, or custody='operator'.
    """  # noqa: E501
    name = type(estimator).__name__
    allowed = ", ".join(sorted(ESTIMATORS))
    entry = ESTIMATORS.get(name)
    if entry is None or type(estimator) is not entry[0]:
        why = next((text for key, text in _NEEDS_ROWS.items() if key in name), None)
        reason = (
            f"{why}, and no row leaves its owner"
            if why
            else "its model is not a function of per-party sufficient statistics, "
            "gradients or Hessians"
        )
        raise ValueError(
            f"parameter 'learner' is {name}, which custody='parties' cannot train: "
            f"{reason}. Use one of {allowed}, or custody='operator'."
        )
    fast = entry[1]
    if not fast.supports(estimator):
        supported = " ".join((fast.__doc__ or "").split("\n\n")[0].split()).rstrip(".")
        raise ValueError(
            f"parameter 'learner' is {estimator!r}, whose parameters the exact "
            f"parties-custody protocol does not reproduce (supported: {supported}); use "
            "supported parameters or custody='operator'."
        )
    return fast


def learner_spec(estimator: Any) -> dict[str, Any]:
    """The learner as it travels to the agents: class name and JSON-safe parameters.

    Examples
    --------
    >>> learner_spec(Ridge(alpha=2.0))["params"]["alpha"]
    2.0
    """
    custody_learner(estimator)
    params = estimator.get_params(deep=False)
    return {"name": type(estimator).__name__, "params": {k: _plain(v) for k, v in params.items()}}


def build_estimator(spec: dict[str, Any]) -> Any:
    """The unfitted estimator of a :func:`learner_spec` (only :data:`ESTIMATORS`).

    Examples
    --------
    >>> build_estimator({"name": "Ridge", "params": {"alpha": 2.0}})
    Ridge(alpha=2.0)
    """
    name = spec.get("name") if isinstance(spec, dict) else None
    if name not in ESTIMATORS:
        raise ValueError(
            f"learner name must be one of {', '.join(sorted(ESTIMATORS))}; received {name!r}"
        )
    params = spec.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"learner params must be an object; received {params!r}")
    return ESTIMATORS[name][0](**params)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(
        f"a learner parameter must be a plain value to travel to the agents; got {value!r}"
    )


def clipped_r2(estimator: Any, X: Any, y: Any) -> float:
    """:math:`\\max(0, R^2)`: a regression gain in [0, 1], as the market requires (the
    scorer named ``"clipped_r2"``)."""
    return max(0.0, float(r2_score(y, estimator.predict(X))))


def build_scorer(name: str, estimator: Any) -> Any:
    """The scorer an agent applies: a scikit-learn scorer name, or ``"clipped_r2"``.

    Examples
    --------
    >>> build_scorer("clipped_r2", Ridge()) is clipped_r2
    True
    """
    if name == "clipped_r2":
        return clipped_r2
    if not isinstance(name, str):
        raise ValueError(f"scorer must be a scorer name; received {name!r}")
    return check_scoring(estimator, scoring=name)
