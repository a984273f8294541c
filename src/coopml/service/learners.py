"""The learners a round may use, and the parameters each accepts (allow-lists).

A round names a learner and its parameters as JSON; nothing is imported by name and no
parameter outside the allow-list reaches scikit-learn. :func:`check_learner` validates
and fills defaults (the API calls it, so a bad request is a 422 before anything is
queued); :func:`build_learner` instantiates the validated spec in the worker.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator

__all__ = ["LEARNERS", "LearnerError", "build_learner", "check_learner", "scorer_for"]


class LearnerError(ValueError):
    """A learner name or parameter outside the allow-list."""


@dataclass(frozen=True)
class Param:
    """One allowed parameter: its kind, range or choices, and default."""

    kind: str  # "int", "float", "bool", "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    nullable: bool = False

    def describe(self) -> str:
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        else:
            text = f"{self.kind} in [{self.low:g}, {self.high:g}]"
        return text + (" or null" if self.nullable else "")

    def check(self, learner: str, name: str, value: Any) -> Any:
        if value is None and self.nullable:
            return None
        ok = False
        if self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "choice":
            ok = isinstance(value, str) and value in self.choices
        elif self.kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif self.kind == "float":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(value)
        if ok and self.kind in ("int", "float"):
            assert self.low is not None and self.high is not None
            ok = self.low <= value <= self.high
        if not ok:
            raise LearnerError(
                f"learner.params.{name} of {learner!r} must be {self.describe()}; "
                f"received {value!r}"
            )
        return float(value) if self.kind == "float" else value


@dataclass(frozen=True)
class LearnerSpec:
    """An allowed learner: the tasks it serves, its parameters and its constructor."""

    tasks: tuple[str, ...]
    params: dict[str, Param]
    build: Callable[[str, dict[str, Any]], BaseEstimator]


def _logistic(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**p)


def _ridge(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.linear_model import Ridge, RidgeClassifier

    return RidgeClassifier(**p) if task == "classification" else Ridge(**p)


def _linear(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.linear_model import LinearRegression

    return LinearRegression(**p)


def _nb(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB(**p)


def _knn(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
    return cls(**p)


def _forest(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    cls = RandomForestClassifier if task == "classification" else RandomForestRegressor
    return cls(**p, random_state=0)


def _tree(task: str, p: dict[str, Any]) -> BaseEstimator:
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    cls = DecisionTreeClassifier if task == "classification" else DecisionTreeRegressor
    return cls(**p, random_state=0)


BOTH = ("classification", "regression")
_DEPTH = Param("int", None, 1, 50, nullable=True)
_LEAF = Param("int", 1, 1, 1000)

#: The allow-list: learner name -> tasks, parameters, constructor.
LEARNERS: dict[str, LearnerSpec] = {
    "logistic_regression": LearnerSpec(
        ("classification",),
        {
            "C": Param("float", 1.0, 1e-6, 1e6),
            "max_iter": Param("int", 1000, 1, 10_000),
            "fit_intercept": Param("bool", True),
        },
        _logistic,
    ),
    "ridge": LearnerSpec(
        BOTH, {"alpha": Param("float", 1.0, 0.0, 1e6), "fit_intercept": Param("bool", True)}, _ridge
    ),
    "linear_regression": LearnerSpec(
        ("regression",), {"fit_intercept": Param("bool", True)}, _linear
    ),
    "gaussian_nb": LearnerSpec(
        ("classification",), {"var_smoothing": Param("float", 1e-9, 1e-15, 1.0)}, _nb
    ),
    "knn": LearnerSpec(
        BOTH,
        {
            "n_neighbors": Param("int", 5, 1, 100),
            "weights": Param("choice", "uniform", choices=("uniform", "distance")),
        },
        _knn,
    ),
    "random_forest": LearnerSpec(
        BOTH,
        {"n_estimators": Param("int", 50, 1, 300), "max_depth": _DEPTH, "min_samples_leaf": _LEAF},
        _forest,
    ),
    "decision_tree": LearnerSpec(BOTH, {"max_depth": _DEPTH, "min_samples_leaf": _LEAF}, _tree),
}

#: Accepted by every learner: standardise features before the estimator.
STANDARDIZE = Param("bool", False)


def check_learner(name: Any, params: Any, task: str) -> dict[str, Any]:
    """Validate a learner request; returns ``{"name", "params"}`` with defaults filled.

    Examples
    --------
    >>> check_learner("knn", {"n_neighbors": 3}, "classification")
    {'name': 'knn', 'params': {'n_neighbors': 3, 'weights': 'uniform', 'standardize': False}}
    """
    if not isinstance(name, str) or name not in LEARNERS:
        raise LearnerError(
            f"learner.name must be one of {', '.join(sorted(LEARNERS))}; received {name!r}"
        )
    spec = LEARNERS[name]
    if task not in spec.tasks:
        raise LearnerError(
            f"learner {name!r} serves {' and '.join(spec.tasks)} markets; this market's task "
            f"is {task!r}"
        )
    if not isinstance(params, dict):
        raise LearnerError(f"learner.params must be an object; received {params!r}")
    allowed = {**spec.params, "standardize": STANDARDIZE}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise LearnerError(
            f"learner.params of {name!r} may only contain {', '.join(allowed)}; "
            f"received unknown {', '.join(repr(u) for u in unknown)}"
        )
    checked = {
        key: (param.check(name, key, params[key]) if key in params else param.default)
        for key, param in allowed.items()
    }
    return {"name": name, "params": checked}


def build_learner(spec: dict[str, Any], task: str) -> BaseEstimator:
    """The estimator of a validated learner spec (see :func:`check_learner`)."""
    checked = check_learner(spec["name"], spec.get("params", {}), task)
    params = dict(checked["params"])
    standardize = params.pop("standardize")
    estimator = LEARNERS[checked["name"]].build(task, params)
    if standardize:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), estimator)
    return estimator


def clipped_r2(estimator: Any, X: Any, y: Any) -> float:
    """:math:`\\max(0, R^2)`: the regression gain, in [0, 1] as the market requires."""
    from sklearn.metrics import r2_score

    return max(0.0, float(r2_score(y, estimator.predict(X))))


def scorer_for(task: str) -> Any:
    """The gain G of a market: accuracy (classification) or clipped R² (regression)."""
    return "accuracy" if task == "classification" else clipped_r2
