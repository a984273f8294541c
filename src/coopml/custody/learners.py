"""Which learners a parties-custody market can train, and how a learner travels.

In parties custody no row leaves its owner, so a coalition's model must be a function
of quantities each party computes from its own rows and the operator adds up:

* **sufficient statistics** -- ``LinearRegression``, ``Ridge``, ``GaussianNB`` and
  ``LinearDiscriminantAnalysis`` (:class:`~coopml.learning.fast.StatisticsLearner`):
  every coalition's model is exact from sums of per-party statistics;
* **gradients and Hessians** -- L2 ``LogisticRegression``: a federated batched Newton
  method (:mod:`coopml.custody.newton`);
* either behind a ``StandardScaler`` (:func:`standardized`): every coalition's scaler
  and standardised model from the same messages (:mod:`coopml.custody.standardize`).

Learners whose models depend on the rows themselves (k-nearest neighbours store
them; trees and forests split on them) are refused: see :func:`custody_learner`.

A learner travels to the agents as its class name, one of :data:`ESTIMATORS` (nothing
is imported by name), and its parameters as plain JSON values.
"""

from __future__ import annotations

from typing import Any

from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import check_scoring
from sklearn.naive_bayes import GaussianNB

from coopml.learning.fast import (
    FastGaussianNB,
    FastLearner,
    FastLinearDiscriminantAnalysis,
    FastLinearRegression,
    FastLogisticRegression,
)
from coopml.learning.utility import clipped_r2

__all__ = [
    "ESTIMATORS",
    "build_estimator",
    "build_scorer",
    "clipped_r2",
    "custody_learner",
    "learner_spec",
    "standardized",
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
        forests), is another estimator or a pipeline other than :func:`standardized`'s,
        or has parameters the exact protocol does not reproduce.

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
    if type(estimator).__name__ == "Pipeline":
        estimator = standardized(estimator)[0]
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


def standardized(learner: Any) -> tuple[Any, bool]:
    """The estimator of ``learner`` and whether a ``StandardScaler`` stands in front of
    it: ``make_pipeline(StandardScaler(), estimator)`` (``learner.params.standardize``)
    is the one pipeline parties custody trains (the operator builds every coalition's
    scaler from the summed moments: :mod:`coopml.custody.standardize`).

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> standardized(make_pipeline(StandardScaler(), Ridge()))
    (Ridge(), True)
    >>> standardized(make_pipeline(StandardScaler(with_mean=False), Ridge()))
    Traceback (most recent call last):
    ...
    ValueError: parameter 'learner' is a Pipeline of [StandardScaler(with_mean=False), Ridge()], which custody='parties' does not train: only StandardScaler() (default parameters) followed by one learner; use custody='operator'.
    """  # noqa: E501
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if type(learner) is not Pipeline:
        return learner, False
    steps = [step for _, step in learner.steps]
    scaler = steps[0] if steps else None
    if (
        len(steps) != 2
        or type(scaler) is not StandardScaler
        or not (scaler.with_mean and scaler.with_std)
        or type(steps[1]).__name__ == "Pipeline"
    ):
        raise ValueError(
            f"parameter 'learner' is a Pipeline of [{', '.join(map(repr, steps))}], which "
            "custody='parties' does not train: only StandardScaler() (default parameters) "
            "followed by one learner; use custody='operator'."
        )
    return steps[1], True


def learner_spec(estimator: Any) -> dict[str, Any]:
    """The learner as it travels: class name and JSON-safe parameters, and
    ``"standardize": true`` for a :func:`standardized` pipeline (the operator's own
    step: requests to the agents carry the estimator alone).

    Examples
    --------
    >>> learner_spec(Ridge(alpha=2.0))["params"]["alpha"]
    2.0
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> learner_spec(make_pipeline(StandardScaler(), Ridge()))["standardize"]
    True
    """
    custody_learner(estimator)
    inner, scaled = standardized(estimator)
    params = inner.get_params(deep=False)
    spec = {"name": type(inner).__name__, "params": {k: _plain(v) for k, v in params.items()}}
    return {**spec, "standardize": True} if scaled else spec


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
    estimator = ESTIMATORS[name][0](**params)
    if spec.get("standardize", False) is not False:
        if spec["standardize"] is not True:
            raise ValueError(
                f"learner standardize must be true or false; received {spec['standardize']!r}"
            )
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), estimator)
    return estimator


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ValueError(
        f"a learner parameter must be a plain value to travel to the agents; got {value!r}"
    )


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
