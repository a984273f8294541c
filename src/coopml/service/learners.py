"""The learners a round may use, and the parameters each accepts (allow-lists).

A round names a learner and its parameters as JSON; nothing is imported by name and no
parameter outside the allow-list reaches scikit-learn. Each learner's parameters are a
strict pydantic model (:class:`LearnerParams`: types, ranges as ``Field(ge=..., le=...)``,
choices as ``Literal``, no extra keys), and :data:`Learner` is the union of
``{"name", "params"}`` models discriminated on the name. :func:`check_learner` validates
and fills defaults (the round's opening calls it, so a bad request is a 422 before
anything is queued), turning pydantic's errors into messages that name the parameter,
what it allows (read from the model's constraints) and what it received;
:func:`build_learner` instantiates the validated spec in the worker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic.fields import FieldInfo
from sklearn.base import BaseEstimator

__all__ = [
    "LEARNERS",
    "Learner",
    "LearnerError",
    "LearnerParams",
    "build_learner",
    "check_learner",
    "scorer_for",
]


class LearnerError(ValueError):
    """A learner name or parameter outside the allow-list."""


class LearnerParams(BaseModel):
    """Parameters every learner accepts; each learner's model adds its own."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    #: Standardise the features before the estimator.
    standardize: bool = False


_Depth = Annotated[int | None, Field(ge=1, le=50)]
_Leaf = Annotated[int, Field(ge=1, le=1000)]


class LogisticRegressionParams(LearnerParams):
    C: float = Field(1.0, ge=1e-6, le=1e6, allow_inf_nan=False)
    max_iter: int = Field(1000, ge=1, le=10_000)
    fit_intercept: bool = True


class RidgeParams(LearnerParams):
    alpha: float = Field(1.0, ge=0.0, le=1e6, allow_inf_nan=False)
    fit_intercept: bool = True


class LinearRegressionParams(LearnerParams):
    fit_intercept: bool = True


class GaussianNBParams(LearnerParams):
    var_smoothing: float = Field(1e-9, ge=1e-15, le=1.0, allow_inf_nan=False)


class KnnParams(LearnerParams):
    n_neighbors: int = Field(5, ge=1, le=100)
    weights: Literal["uniform", "distance"] = "uniform"


class RandomForestParams(LearnerParams):
    n_estimators: int = Field(50, ge=1, le=300)
    max_depth: _Depth = None
    min_samples_leaf: _Leaf = 1


class DecisionTreeParams(LearnerParams):
    max_depth: _Depth = None
    min_samples_leaf: _Leaf = 1


@dataclass(frozen=True)
class LearnerSpec:
    """An allowed learner: the tasks it serves, its parameters and its constructor."""

    tasks: tuple[str, ...]
    params: type[LearnerParams]
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

#: The allow-list: learner name -> tasks, parameters, constructor.
LEARNERS: dict[str, LearnerSpec] = {
    "logistic_regression": LearnerSpec(("classification",), LogisticRegressionParams, _logistic),
    "ridge": LearnerSpec(BOTH, RidgeParams, _ridge),
    "linear_regression": LearnerSpec(("regression",), LinearRegressionParams, _linear),
    "gaussian_nb": LearnerSpec(("classification",), GaussianNBParams, _nb),
    "knn": LearnerSpec(BOTH, KnnParams, _knn),
    "random_forest": LearnerSpec(BOTH, RandomForestParams, _forest),
    "decision_tree": LearnerSpec(BOTH, DecisionTreeParams, _tree),
}


class _Named(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _request(name: str, params: type[LearnerParams]) -> type[_Named]:
    """The ``{"name": name, "params": {...}}`` model of one allowed learner, named as
    its parameters' model without ``Params`` (``RidgeParams`` -> ``Ridge``)."""
    tag: Any = Literal[name]
    return create_model(
        params.__name__.removesuffix("Params"),
        __base__=_Named,
        name=(tag, ...),
        params=(params, params()),
    )


#: A learner request: ``{"name": ..., "params": {...}}``, discriminated on the name;
#: one model per entry of :data:`LEARNERS`.
Learner: Any = Annotated[
    Union[tuple(_request(name, spec.params) for name, spec in LEARNERS.items())],  # noqa: UP007
    Field(discriminator="name"),
]
_LEARNER: TypeAdapter[Any] = TypeAdapter(Learner)


def _allowed(info: FieldInfo) -> str:
    """What a parameter allows, read from its model field (type, bounds, choices)."""
    union = get_origin(info.annotation) in (Union, UnionType)
    kinds = [k for k in get_args(info.annotation) if k is not type(None)] if union else []
    kind: Any = kinds[0] if union else info.annotation
    if kind is bool:
        text = "true or false"
    elif get_origin(kind) is Literal:
        text = "one of " + ", ".join(repr(c) for c in get_args(kind))
    else:
        low = next(m.ge for m in info.metadata if isinstance(m, annotated_types.Ge))
        high = next(m.le for m in info.metadata if isinstance(m, annotated_types.Le))
        text = f"{kind.__name__} in [{low:g}, {high:g}]"
    return text + (" or null" if union and len(kinds) < len(get_args(info.annotation)) else "")


def _last(key: str) -> bool:
    """Sort key listing ``standardize`` (every learner's) after the learner's own."""
    return key == "standardize"


def _refusal(exc: ValidationError, name: str, params: Any) -> LearnerError:
    """The first problem of a learner request, naming the parameter, what it allows and
    what it received (every unknown parameter at once)."""
    fields = LEARNERS[name].params.model_fields
    errors = [e for e in exc.errors() if len(e["loc"]) >= 2 and e["loc"][1] == "params"]
    unknown = [str(e["loc"][2]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return LearnerError(
            f"learner.params of {name!r} may only contain {', '.join(sorted(fields, key=_last))}; "
            f"received unknown {', '.join(repr(u) for u in unknown)}"
        )
    for err in errors:
        if len(err["loc"]) == 2:
            return LearnerError(f"learner.params must be an object; received {params!r}")
        key = str(err["loc"][2])
        return LearnerError(
            f"learner.params.{key} of {name!r} must be {_allowed(fields[key])}; "
            f"received {err['input']!r}"
        )
    return LearnerError(f"learner {name!r}: {exc}")  # not reached: only params can fail


def check_learner(name: Any, params: Any, task: str) -> dict[str, Any]:
    """Validate a learner request; returns ``{"name", "params"}`` with defaults filled.

    Examples
    --------
    >>> check_learner("knn", {"n_neighbors": 3}, "classification")
    {'name': 'knn', 'params': {'n_neighbors': 3, 'weights': 'uniform', 'standardize': False}}
    >>> check_learner("knn", {"n_neighbors": 0}, "classification")
    Traceback (most recent call last):
    ...
    coopml.service.learners.LearnerError: learner.params.n_neighbors of 'knn' must be int in [1, 100]; received 0
    """  # noqa: E501
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
    try:
        learner = _LEARNER.validate_python({"name": name, "params": params})
    except ValidationError as exc:
        raise _refusal(exc, name, params) from None
    checked = learner.params.model_dump()
    standardize = checked.pop("standardize")  # last, as the requests list it
    return {"name": name, "params": {**checked, "standardize": standardize}}


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


def scorer_for(task: str) -> Any:
    """The gain G of a market: accuracy (classification) or clipped R² (regression,
    :func:`coopml.learning.utility.clipped_r2`)."""
    if task == "classification":
        return "accuracy"
    from coopml.learning.utility import clipped_r2

    return clipped_r2
