r"""Every coalition's model from the agents' messages, and its score from the validator.

:func:`coalition_models` fits all :math:`2^M` coalitions of a market (or the ones
asked for) with a fast learner built from the agents' statistics (or the federated
Newton method), under the
same rules as :class:`~coopml.learning.CoalitionUtility` in operator custody: the empty
coalition predicts the most frequent class (or the mean target) of all parties'
training labels, a coalition holding a single class predicts it, every other coalition
is fit. A coalition the exact protocol cannot reproduce (ill conditioned, not
converged: the cases operator custody refits with scikit-learn on the pooled rows) is
an error naming it, never a silent approximation.

:func:`score_coalitions` sends the models to the agent that owns a validation set,
which scores them on its own rows and returns the scores only.

:class:`CoalitionGains` is the two together for the coalitions a sampling estimator
draws (:func:`~coopml.market.sampled_shares.estimate_gains`): the valuation of a large
single-task market, one fit and one score round trip per block of coalitions.

:func:`model_state` writes a fitted coalition model as plain data (its class name,
parameters and fitted attributes, JSON-safe) and :func:`model_from_state` rebuilds the
same scikit-learn estimator from it: how the operator's ``ServerApp`` hands each party's
customised model to the service, which keeps it as in operator custody.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from coopml.custody.checks import entry
from coopml.custody.learners import ESTIMATORS, learner_spec
from coopml.custody.statistics import Moments
from coopml.custody.transport import Transport
from coopml.learning.fast import FastBlock, FastLearner, membership

__all__ = [
    "MODEL_TYPES",
    "CoalitionGains",
    "CoalitionModels",
    "coalition_models",
    "model_from_state",
    "model_state",
    "score_coalitions",
]

#: The estimators a model state may name: the parties-custody learners and the
#: constant predictors of the empty and single-class coalitions (nothing else is built).
MODEL_TYPES: dict[str, type] = {
    **{name: classes[0] for name, classes in ESTIMATORS.items()},
    "DummyClassifier": DummyClassifier,
    "DummyRegressor": DummyRegressor,
    "StandardScaler": StandardScaler,  # in a Pipeline(StandardScaler, estimator)
}


@dataclass(frozen=True, eq=False)
class CoalitionModels:
    """The models of some coalitions (bitmask ``k``: player ``i`` is bit ``i``).

    Attributes
    ----------
    fast : FastLearner
        The learner that fit them (rebuilds scikit-learn estimators).
    block : FastBlock
        Fitted parameters of the coalitions in ``fitted`` (in that order).
    fitted : ndarray of int
        Bitmasks of the coalitions with a fitted model (ascending).
    constant : ndarray of shape (len(masks),)
        The prediction of the others (a class index, or a target value); NaN where fitted.
    masks : ndarray of int
        The coalitions, ascending (all :math:`2^M`: ``masks[k] == k``); ``constant`` and
        the validator's scores follow this order.
    """

    fast: FastLearner
    block: FastBlock
    fitted: NDArray[np.int64]
    constant: NDArray[np.float64]
    masks: NDArray[np.int64]

    def position(self, mask: int) -> int:
        """Where coalition ``mask`` is in :attr:`masks`; a KeyError if it was not fit."""
        at = int(np.searchsorted(self.masks, mask))
        if at == self.masks.size or int(self.masks[at]) != int(mask):
            raise KeyError(f"coalition {int(mask):#x} was not fit")
        return at

    def estimator(self, mask: int) -> Any:
        """The scikit-learn estimator of coalition ``mask`` (a constant predictor for the
        empty and single-class coalitions)."""
        at = self.position(mask)
        if np.isnan(self.constant[at]):
            return self.fast.estimator(self.block, int(np.searchsorted(self.fitted, mask)))
        value = float(self.constant[at])
        if not self.fast.is_classifier:
            return DummyRegressor(strategy="constant", constant=value).fit([[0.0]], [value])
        label = self.fast.classes[int(value)]
        return DummyClassifier(strategy="constant", constant=label).fit([[0.0]], [label])


def coalition_models(
    fast: FastLearner, moments: Moments, masks: NDArray[np.int64] | None = None
) -> CoalitionModels:
    """Fit every coalition of the market's ``M`` players, or the coalitions ``masks``
    (bitmasks; repeats are fit once), as the module docstring says."""
    M = len(moments.names)
    if masks is None:
        masks = np.arange(1 << M, dtype=np.int64)
    else:
        masks = np.unique(np.asarray(masks, dtype=np.int64).reshape(-1))
        if masks.size and (masks[0] < 0 or masks[-1] >= 1 << M):
            raise ValueError(f"coalition bitmasks of {M} players lie in [0, 2^{M}); got {masks}")
    A = membership(masks, M)
    constant = np.full(masks.size, np.nan)
    empty = masks == 0
    todo = ~empty
    if fast.is_classifier:
        assert moments.class_counts is not None
        counts = A @ moments.class_counts
        single = (counts > 0).sum(axis=1) == 1
        constant[single] = np.argmax(counts[single], axis=1)
        constant[empty] = np.argmax(moments.class_counts.sum(axis=0))  # ties: the first class
        todo &= ~single
    else:
        assert moments.sum_y is not None
        constant[empty] = moments.sum_y.sum() / moments.n.sum()
    fitted = masks[todo]
    # a block of constant coalitions only (a sampled block of the empty coalition) fits nothing
    block = (
        fast.fit_block(A[todo]) if fitted.size else FastBlock(np.ones(0, bool), np.zeros((0, 0)))
    )
    bad = fitted[~block.ok]
    if bad.size:
        names = [[moments.names[i] for i in range(M) if (m >> i) & 1] for m in bad[:5].tolist()]
        noisy = [n for n, p in zip(moments.names, moments.privacy, strict=False) if p is not None]
        if noisy:  # the parties keep their rows on purpose: no advice to hand them over
            raise ValueError(
                f"the parties-custody protocol cannot fit {bad.size} coalition(s), e.g. "
                f"{names}, from the agents' noisy statistics (the privacy noise of "
                f"{noisy} leaves them ill conditioned, rank deficient or not converged). "
                "The rows can stay with their owners: the parties can choose a larger "
                "epsilon, the small parties can bring more rows, or the market can use "
                "a learner with fewer noisy statistics (GaussianNB, or fewer features); "
                "see docs/custody.md for the row counts measured."
            )
        raise ValueError(
            f"the exact parties-custody protocol cannot reproduce scikit-learn's fit for "
            f"{bad.size} coalition(s), e.g. {names} (ill conditioned, rank deficient or "
            "not converged; operator custody refits these on the pooled rows). Use "
            "custody='operator', a regularised learner, or fewer features."
        )
    return CoalitionModels(fast, block, fitted, constant, masks)


def score_coalitions(
    transport: Transport, validator: str, models: CoalitionModels, estimator: Any, scorer: str
) -> NDArray[np.float64]:
    """The validator's scores of every coalition's model, shape (2^M,)."""
    fast = models.fast
    is_constant = ~np.isnan(models.constant)
    request = {
        "kind": "score",
        "learner": learner_spec(estimator),
        "classes": fast.classes.tolist() if fast.is_classifier else [],
        "n_features": fast.n_features,
        "scorer": scorer,
        # a standardised model travels in raw features (coopml.custody.standardize)
        "params": (
            {}
            if not models.fitted.size
            else fast.scoring_params(models.block)
            if hasattr(fast, "scoring_params")
            else dict(models.block.params)
        ),
        "constant": np.where(is_constant, models.constant, 0.0),
        "is_constant": is_constant,
    }
    reply = transport.exchange({validator: request})[validator]
    return np.asarray(entry(validator, reply, "scores", (models.constant.size,)))


class CoalitionGains:
    """The validator's gain of any coalition, fit and scored when asked for: the
    utility a sampling estimator draws from in parties custody.

    Each :meth:`evaluate_block` is one :func:`coalition_models` (the operator's
    arithmetic on the summed statistics, or federated Newton round trips for logistic
    regression) and one :func:`score_coalitions` round trip to ``validator``; the gains
    are those an exact table would hold. ``fitted`` and ``blocks`` count the work.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.custody import Agent, LocalTransport
    >>> from coopml.custody.statistics import collect_moments, statistics_learner
    >>> from coopml.data import Party, load_dataset, make_parties, train_validation_split
    >>> from coopml.learning.fast import FastGaussianNB
    >>> ds = load_dataset("breast_cancer")
    >>> X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    >>> parties = make_parties(X, y, 3, random_state=0)
    >>> judge = Agent(Party("judge", X_val[:1], y_val[:1], X_val, y_val))
    >>> t = LocalTransport([Agent(p) for p in parties] + [judge])
    >>> names = [p.name for p in parties]
    >>> moments = collect_moments(t, names, "classification")
    >>> fast = statistics_learner(t, moments, GaussianNB(), FastGaussianNB)
    >>> gains = CoalitionGains(fast, moments, t, "judge", GaussianNB(), "accuracy")
    >>> values, failures = gains.evaluate_block(np.array([7, 1, 7]))
    >>> bool(values[0] == values[2]), failures, gains.blocks
    (True, [], 1)
    """

    def __init__(
        self,
        fast: FastLearner,
        moments: Moments,
        transport: Transport,
        validator: str,
        estimator: Any,
        scorer: str,
    ) -> None:
        self.fast, self.moments, self.transport = fast, moments, transport
        self.validator, self.estimator, self.scorer = validator, estimator, scorer
        self.names = tuple(moments.names)
        self.n_players = len(self.names)
        self.fitted = 0
        self.blocks = 0

    def models(self, masks: NDArray[np.int64]) -> CoalitionModels:
        """The models of ``masks`` (:func:`coalition_models`), counted."""
        models = coalition_models(self.fast, self.moments, masks)
        self.fitted += int(models.fitted.size)
        self.blocks += 1
        return models

    def score(self, models: CoalitionModels) -> NDArray[np.float64]:
        """The validator's scores of ``models``, in the order of ``models.masks``."""
        return score_coalitions(self.transport, self.validator, models, self.estimator, self.scorer)

    def evaluate_block(self, masks: NDArray[np.int64]) -> tuple[NDArray[np.float64], list[Any]]:
        """The gains of ``masks`` (in their order) and no failures: a coalition the
        protocol cannot fit is an error (:func:`coalition_models`)."""
        masks = np.asarray(masks, dtype=np.int64).reshape(-1)
        models = self.models(masks)
        return self.score(models)[np.searchsorted(models.masks, masks)], []

    def evaluate_masks(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        """The gains of ``masks`` (in their order)."""
        return self.evaluate_block(masks)[0]


def model_state(estimator: Any) -> dict[str, Any]:
    """A fitted coalition model as plain JSON-safe data (see :func:`model_from_state`).

    Every fitted attribute travels: arrays with their dtype and shape, scalars as
    themselves; a type outside :data:`MODEL_TYPES` or an attribute of another kind is
    refused.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> state = model_state(Ridge().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.5]))
    >>> state["name"], state["fitted"]["coef_"]["shape"]
    ('Ridge', [1])

    A standardised model (:mod:`coopml.custody.standardize`) is a ``Pipeline`` whose
    steps travel in order, each as above:

    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipe = make_pipeline(StandardScaler(), Ridge()).fit([[0.0], [1.0], [2.0]], [0, 1, 3])
    >>> [(step, state["name"]) for step, state in model_state(pipe)["steps"]]
    [('standardscaler', 'StandardScaler'), ('ridge', 'Ridge')]
    """
    if type(estimator) is Pipeline:
        return {
            "name": "Pipeline",
            "steps": [[str(step), model_state(model)] for step, model in estimator.steps],
        }
    name = type(estimator).__name__
    if MODEL_TYPES.get(name) is not type(estimator):
        raise ValueError(
            f"a parties-custody model must be one of {', '.join(sorted(MODEL_TYPES))}; got {name}"
        )
    params = estimator.get_params(deep=False)
    fitted: dict[str, Any] = {}
    for key, value in vars(estimator).items():
        if key in params:
            continue
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biufUO":
                raise ValueError(f"{name}.{key} has dtype {value.dtype}, which cannot travel")
            kind = "object" if value.dtype.kind == "O" else value.dtype.str
            fitted[key] = {"dtype": kind, "shape": list(value.shape), "values": value.tolist()}
        elif value is None or isinstance(value, bool | int | float | str | np.generic):
            fitted[key] = {"value": value.item() if isinstance(value, np.generic) else value}
        else:
            raise ValueError(f"{name}.{key} is a {type(value).__name__}, which cannot travel")
    plain = {k: v.item() if isinstance(v, np.generic) else v for k, v in params.items()}
    for key, value in plain.items():
        if not (value is None or isinstance(value, bool | int | float | str)):
            raise ValueError(f"{name} parameter {key}={value!r} is not a plain value")
    return {"name": name, "params": plain, "fitted": fitted}


def model_from_state(state: dict[str, Any]) -> Any:
    """The fitted estimator of a :func:`model_state` (only :data:`MODEL_TYPES`).

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> X, y = [[0.0, 1.0], [1.0, 0.5], [3.0, 2.0], [4.0, 2.5]], [0, 0, 1, 1]
    >>> model = GaussianNB().fit(X, y)
    >>> copy = model_from_state(model_state(model))
    >>> bool((copy.predict_proba(X) == model.predict_proba(X)).all())
    True
    """
    name = state.get("name") if isinstance(state, dict) else None
    if name == "Pipeline":
        steps = state.get("steps")
        if (
            not isinstance(steps, list)
            or len(steps) != 2
            or not all(isinstance(s, list) and len(s) == 2 for s in steps)
            or not isinstance(steps[0][1], dict)
            or steps[0][1].get("name") != "StandardScaler"
            or not isinstance(steps[1][1], dict)
            or steps[1][1].get("name") == "Pipeline"
        ):
            raise ValueError(
                "model 'Pipeline' needs 'steps': [[name, StandardScaler state], [name, "
                f"estimator state]]; received {steps!r}"
            )
        return Pipeline([(str(step), model_from_state(sub)) for step, sub in steps])
    if not isinstance(name, str) or name not in MODEL_TYPES:
        raise ValueError(
            f"model name must be one of {', '.join(sorted(MODEL_TYPES))}; received {name!r}"
        )
    params, fitted = state.get("params", {}), state.get("fitted", {})
    if not isinstance(params, dict) or not isinstance(fitted, dict):
        raise ValueError(f"model {name!r} needs 'params' and 'fitted' objects")
    model = MODEL_TYPES[name](**params)
    for key, entry_ in fitted.items():
        if not isinstance(entry_, dict):
            raise ValueError(f"fitted attribute {key!r} of {name} must be an object")
        if "value" in entry_:
            setattr(model, key, entry_["value"])
            continue
        dtype = object if entry_.get("dtype") == "object" else np.dtype(entry_.get("dtype"))
        array = np.array(entry_.get("values"), dtype=dtype)
        shape = tuple(int(n) for n in entry_.get("shape", ()))
        if array.shape != shape:
            raise ValueError(
                f"fitted attribute {key!r} of {name} must have shape {shape}; "
                f"received {array.shape}"
            )
        setattr(model, key, array)
    return model
