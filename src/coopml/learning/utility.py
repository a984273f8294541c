r"""Coalition utility: the value of a coalition of parties is the validation score of a
model trained on their pooled data,

.. math:: v(S) = G\bigl(V;\ \mathcal{A}(\textstyle\bigoplus_{j \in S} X_j)\bigr),

where :math:`\mathcal{A}` is any scikit-learn-compatible learner (cloned before every
fit, never mutated) and :math:`G` a scorer (accuracy by default). This is the utility of
data-valuation work since Ghorbani & Zou (2019) and of the collaborative ML market of
Ohrimenko, Tople & Tschiatschek (2019), with parties as players.

Rules that a settlement depends on are explicit (architecture rule 7):

* **empty coalition** -- ``empty_value="dummy"`` scores a constant predictor (the most
  frequent class, or the mean target, of the grand coalition's training labels); a
  float sets :math:`v(\emptyset)` directly.
* **single-class coalitions** (classification) -- ``single_class="constant"`` predicts
  that class everywhere (what any consistent learner would do; many, like
  ``LogisticRegression``, refuse to fit); ``"fit"`` calls the learner anyway; ``"raise"``
  raises.
* **failed fits** raise by default; ``on_error=<float>`` substitutes that score and
  reports every substitution in ``failures``.

**Fast path.** With ``fast=True`` (the default) and a learner that
:mod:`coopml.learning.fast` reproduces (``LinearRegression``, ``Ridge``,
``LinearDiscriminantAnalysis``, ``GaussianNB``, L2 ``LogisticRegression``, matched by
exact class and supported parameters), :meth:`CoalitionUtility.evaluate_masks` fits
whole blocks of coalitions at once from per-party sufficient statistics, to the
tolerance each fast learner documents. The empty coalition, single-class coalitions and
every coalition the fast learner flags (ill conditioned, a validation point on a
decision boundary) take the generic path: a fresh clone of the learner fit on the
pooled rows, which stays the reference (``fast=False`` forces it everywhere).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import clone, is_classifier
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import check_scoring

from coopml._bitmask import mask_of
from coopml._validation import RandomState, check_2d_features, check_choice, check_seed
from coopml.data import Party, check_parties
from coopml.data.columns import select_features
from coopml.data.party import feature_names
from coopml.data.preprocessing import accepts_missing
from coopml.learning.fast import FastBlock, FastLearner, fast_learner_for, membership
from coopml.learning.fast._base import blas_threads

__all__ = ["CoalitionUtility", "Estimator", "FitFailure"]

Scorer = Callable[[Any, NDArray[np.float64], NDArray[Any]], float]


@runtime_checkable
class Estimator(Protocol):
    """Anything with scikit-learn's ``fit``/``predict`` (and ``get_params`` for ``clone``)."""

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict(self, X: Any) -> Any: ...


@dataclass(frozen=True)
class FitFailure:
    """A coalition whose fit or scoring failed and received the substitute score."""

    mask: int
    error: str
    substituted: float


def clipped_r2(estimator: Any, X: Any, y: Any) -> float:
    """:math:`\\max(0, R^2)`: a regression gain in [0, 1], as the market requires (the
    scorer named ``"clipped_r2"`` wherever coopml takes a scorer name).

    Examples
    --------
    >>> from sklearn.linear_model import LinearRegression
    >>> X, y = [[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0]
    >>> model = LinearRegression().fit(X, y)
    >>> clipped_r2(model, X, y), clipped_r2(model, X, [2.0, 1.0, 0.0])
    (1.0, 0.0)
    """
    from sklearn.metrics import r2_score

    return max(0.0, float(r2_score(y, estimator.predict(X))))


def scores_classes(scorer: str) -> bool:
    """Whether scikit-learn's scorer named ``scorer`` scores class predictions (accuracy,
    F1, ROC AUC, ...), which a regressor's continuous predictions cannot be scored with.

    Examples
    --------
    >>> scores_classes("accuracy"), scores_classes("r2"), scores_classes("no such scorer")
    (True, False, False)
    """
    from sklearn.metrics import get_scorer

    try:
        func = getattr(get_scorer(scorer), "_score_func", None)
    except ValueError:
        return False  # an unknown name: check_scoring names it
    module = getattr(func, "__module__", "") or ""
    return module.endswith(("metrics._classification", "metrics._ranking"))


class CoalitionUtility:
    """Score of a learner trained on the pooled data of a coalition of parties.

    Parameters
    ----------
    learner : estimator
        Any scikit-learn-compatible estimator; cloned before every fit.
    parties : list of Party
        The players, in order (player ``i`` is ``parties[i]``).
    validation : tuple (X_val, y_val)
        The validation task every coalition's model is scored on.
    scorer : str or callable, default "accuracy"
        A scikit-learn scorer name (``"accuracy"``, ``"r2"``, ``"neg_log_loss"`` ...) or a
        callable ``scorer(estimator, X, y) -> float``.
    random_state : int, Generator or None
        Seed for every ``random_state`` parameter of the learner (the same seed for
        every coalition, so coalitions differ only in their data). ``None`` leaves the
        learner's own setting.
    empty_value : "dummy" or float, default "dummy"
        Value of the empty coalition (see module docstring).
    single_class : {"constant", "fit", "raise"}, default "constant"
        Rule for classification coalitions whose labels hold a single class.
    on_error : "raise" or float, default "raise"
        Raise on a failed fit, or substitute this score and report it.
    fast : bool, default True
        Use a batched exact learner from :mod:`coopml.learning.fast` when one reproduces
        ``learner``; ``False`` refits scikit-learn for every coalition.
    device : str, optional
        Where the fast learner computes: ``None`` (the default device, numpy unless
        :func:`coopml.learning.fast.use_device` or ``COOPML_FAST_DEVICE`` says otherwise),
        ``"numpy"``, or a torch device such as ``"cpu"`` or ``"cuda"`` (extra ``torch``).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from coopml.data import load_dataset, make_parties
    >>> ds = load_dataset("iris")
    >>> X, y = ds.X[::2], ds.y[::2]
    >>> parties = make_parties(X[:60], y[:60], 3, random_state=0)
    >>> u = CoalitionUtility(LogisticRegression(max_iter=500), parties, (X[60:], y[60:]))
    >>> u.n_players, u.names
    (3, ('party_0', 'party_1', 'party_2'))
    >>> 0.0 <= u({0, 2}) <= 1.0
    True
    """

    def __init__(
        self,
        learner: Estimator,
        parties: Sequence[Party],
        validation: tuple[ArrayLike, ArrayLike],
        scorer: str | Scorer = "accuracy",
        random_state: RandomState = None,
        *,
        empty_value: Literal["dummy"] | float = "dummy",
        single_class: Literal["constant", "fit", "raise"] = "constant",
        on_error: Literal["raise"] | float = "raise",
        fast: bool = True,
        device: str | None = None,
    ) -> None:
        if not (hasattr(learner, "fit") and hasattr(learner, "predict")):
            raise TypeError(
                "parameter 'learner' must be an estimator with fit() and predict(); "
                f"got {type(learner).__name__}"
            )
        self.learner = learner
        self.is_classifier = bool(is_classifier(learner))
        task = "classification" if self.is_classifier else "regression"
        if not isinstance(validation, tuple | list) or len(validation) != 2:
            raise TypeError(
                "parameter 'validation' must be a pair (X_val, y_val); "
                f"got {type(validation).__name__}"
            )
        # Missing values (NaN) only reach a learner that accepts them (its allow_nan tag).
        missing_ok = accepts_missing(learner)
        parties = list(parties)
        # A DataFrame is matched to named parties by column name, never by position.
        X_val = select_features("parameter 'validation'", validation[0], feature_names(parties))
        self.X_val = check_2d_features("validation[0]", X_val, allow_nan=missing_ok)
        self.y_val = np.asarray(validation[1])
        if self.y_val.ndim != 1 or self.y_val.shape[0] != self.X_val.shape[0]:
            raise ValueError(
                "parameter 'validation' must pair X_val with a 1-D y_val of the same length; "
                f"got X_val {self.X_val.shape} and y_val {self.y_val.shape}"
            )
        self.parties = tuple(
            check_parties(
                list(parties), (self.X_val, self.y_val), task=task, allow_missing=missing_ok
            )
        )
        self.scorer_name = scorer if isinstance(scorer, str) else _qualname(scorer)
        try:
            self._scorer: Scorer = check_scoring(
                learner, scoring=clipped_r2 if scorer == "clipped_r2" else scorer
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"parameter 'scorer' is not a valid scorer: {exc}") from None
        if task == "regression" and isinstance(scorer, str) and scores_classes(scorer):
            raise ValueError(
                f"parameter 'scorer' is {scorer!r}, a score of predicted classes, but the "
                f"learner {type(learner).__name__} is a regressor; use a regression scorer "
                "such as 'clipped_r2' (max(0, R²), a gain in [0, 1] as markets need) or 'r2'"
            )
        self.seed = None if random_state is None else check_seed(random_state)
        if not (empty_value == "dummy" or _is_real(empty_value)):
            raise ValueError(
                f"parameter 'empty_value' must be 'dummy' or a float; got {empty_value!r}"
            )
        if not (on_error == "raise" or _is_real(on_error)):
            raise ValueError(f"parameter 'on_error' must be 'raise' or a float; got {on_error!r}")
        self.empty_value = empty_value
        self.single_class = check_choice("single_class", single_class, {"constant", "fit", "raise"})
        self.on_error = on_error
        # Each party's row range in the pooled data. The pooled copy itself is never
        # kept: a coalition's rows are concatenated from its parties' arrays, so the
        # utility holds (and ships to every executor) the training data once.
        sizes = np.array([p.n_samples for p in self.parties])
        self._bounds = np.concatenate([[0], np.cumsum(sizes)])
        self._empty: float | None = None
        self.failures: list[FitFailure] = []
        if not isinstance(fast, bool | np.bool_):
            raise TypeError(f"parameter 'fast' must be a bool; got {fast!r}")
        self.fast_learner: FastLearner | None = None
        if fast:
            self.fast_learner = fast_learner_for(
                learner,
                [p.X for p in self.parties],
                [p.y for p in self.parties],
                self.X_val,
                device=device,
            )
        self._vector_scorer = _VECTOR_SCORERS.get(scorer) if isinstance(scorer, str) else None
        if scorer == "r2" and np.ptp(self.y_val.astype(float)) == 0:
            self._vector_scorer = None  # sklearn's special case for a constant target

    # ------------------------------------------------------------------ identity
    @property
    def n_players(self) -> int:
        """Number of parties."""
        return len(self.parties)

    @property
    def names(self) -> tuple[str, ...]:
        """Party names, in player order."""
        return tuple(p.name for p in self.parties)

    def fingerprint(self) -> str:
        """SHA-256 over everything the table depends on: learner class and parameters,
        party data, validation data, scorer, rules, seed and the coopml version."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X_val).tobytes())
        h.update(np.ascontiguousarray(self.y_val).tobytes() + str(self.y_val.dtype).encode())
        spec = {
            "learner": _qualname(type(self.learner)),
            "params": repr(sorted(self.learner.get_params(deep=True).items()))
            if hasattr(self.learner, "get_params")
            else repr(self.learner),
            "parties": [(p.name, p.fingerprint()) for p in self.parties],
            "validation": h.hexdigest(),
            "scorer": self.scorer_name,
            "seed": self.seed,
            "empty_value": self.empty_value,
            "single_class": self.single_class,
            "on_error": self.on_error,
            "fast": None if self.fast_learner is None else type(self.fast_learner).__name__,
            "coopml": importlib.metadata.version("coopml"),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    # ------------------------------------------------------------------ evaluation
    def rows(self, players: Iterable[int]) -> NDArray[np.intp]:
        """Row indices of the pooled training data held by ``players``."""
        idx = sorted(set(players))
        if not idx:
            return np.empty(0, dtype=np.intp)
        return np.concatenate([np.arange(self._bounds[i], self._bounds[i + 1]) for i in idx])

    def fit(self, players: Iterable[int]) -> Any:
        """Fit a fresh clone of the learner on the coalition's pooled data and return it.

        The empty coalition and single-class coalitions follow the documented rules.
        """
        players = sorted(set(players))
        if any(not 0 <= i < self.n_players for i in players):
            raise ValueError(
                f"parameter 'players' must hold indices in 0..{self.n_players - 1}; got {players}"
            )
        if not players:
            return self._constant_model(self._labels(range(self.n_players)))
        X = np.concatenate([self.parties[i].X for i in players])
        y = self._labels(players)
        if self.is_classifier and np.unique(y).size < 2 and self.single_class != "fit":
            if self.single_class == "raise":
                raise ValueError(
                    f"coalition {players} holds a single class ({y[0]!r}); set "
                    "single_class='constant' or 'fit' to value it"
                )
            return self._constant_model(y)
        model = clone(self.learner)
        if self.seed is not None:
            seeds = {
                k: self.seed for k in model.get_params(deep=True) if k.endswith("random_state")
            }
            model.set_params(**seeds)
        return model.fit(X, y)

    def score(self, model: Any) -> float:
        """Score a fitted model on the validation data."""
        return float(self._scorer(model, self.X_val, self.y_val))

    def __call__(self, coalition: Iterable[int]) -> float:
        """Value of the coalition given as player indices."""
        return float(self.evaluate_masks(np.array([mask_of(coalition)], dtype=np.int64))[0])

    def evaluate_masks(self, masks: ArrayLike) -> NDArray[np.float64]:
        """Values of the coalitions given as bitmasks (player ``i`` is bit ``i``).

        Substituted failures are appended to ``self.failures``.
        """
        # int64 bitmasks, or Python integers (object array) beyond 62 players
        arr = np.asarray(masks)
        values, failures = self.evaluate_block(arr if arr.dtype == object else arr.astype(np.int64))
        self.failures.extend(failures)
        return values

    @property
    def block_size(self) -> int:
        """Coalitions per work item that suit this utility (large for a fast learner)."""
        return 256 if self.fast_learner is None else 4096

    def evaluate_block(
        self, masks: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], list[FitFailure]]:
        """Values of the coalitions ``masks`` and the fit failures substituted for them.

        The protocol method that executors call in their workers: nothing is recorded
        on ``self`` (a worker's copy would lose it), so the caller collects the
        failures. :meth:`evaluate_masks` is this plus ``self.failures.extend``.
        """
        if self.fast_learner is None or masks.size == 0:
            return self._evaluate_refit(masks)
        values = np.full(masks.shape[0], np.nan)
        A = membership(masks, self.n_players)
        todo = masks != 0
        if self.fast_learner.is_classifier:  # single-class coalitions follow their rule
            todo &= self.fast_learner.present(A).sum(axis=1) >= 2
        idx = np.flatnonzero(todo)
        if idx.size:
            values[idx] = self._fast_scores(A[idx])
        refit = np.flatnonzero(np.isnan(values))
        failures: list[FitFailure] = []
        if refit.size:
            values[refit], failures = self._evaluate_refit(masks[refit])
        return values, failures

    def _fast_scores(self, A: NDArray[np.float64]) -> NDArray[np.float64]:
        """Scores of the coalitions in ``A`` from the fast learner; NaN where it defers."""
        fast = self.fast_learner
        assert fast is not None
        try:
            block: FastBlock = fast.fit_block(A)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            return np.full(A.shape[0], np.nan)
        scores = np.full(A.shape[0], np.nan)
        ok = np.flatnonzero(block.ok)
        if self._vector_scorer is not None:
            predictions = block.predictions[ok]
            if fast.is_classifier:
                predictions = fast.classes[predictions]
            scores[ok] = self._vector_scorer(predictions, self.y_val)
            return scores
        for b in ok.tolist():
            try:
                scores[b] = self.score(fast.estimator(block, b))
            except Exception:  # the refit path scores it, under the on_error rule
                scores[b] = np.nan
        return scores

    def _evaluate_refit(
        self, masks: NDArray[np.int64]
    ) -> tuple[NDArray[np.float64], list[FitFailure]]:
        """The generic path: a fresh clone fit on every coalition's pooled rows."""
        values = np.empty(masks.shape[0], dtype=np.float64)
        failures: list[FitFailure] = []
        # One BLAS thread per fit: the executor parallelises over coalitions, and on a
        # busy machine a second BLAS thread per small fit cost up to 25x the wall time.
        with blas_threads():
            for k, mask in enumerate(masks.tolist()):
                if mask == 0:
                    values[k] = self._empty_coalition_value()
                    continue
                players = [i for i in range(self.n_players) if (mask >> i) & 1]
                try:
                    values[k] = self.score(self.fit(players))
                except Exception as exc:
                    if self.on_error == "raise":
                        raise RuntimeError(
                            f"fitting or scoring coalition {players} "
                            f"({[self.names[i] for i in players]}) failed: {exc!r}. Pass "
                            "on_error=<score> to substitute a score instead."
                        ) from exc
                    values[k] = float(self.on_error)
                    failures.append(FitFailure(mask, repr(exc), float(self.on_error)))
        return values, failures

    def _empty_coalition_value(self) -> float:
        if self._empty is None:
            if self.empty_value == "dummy":
                self._empty = self.score(self._constant_model(self._labels(range(self.n_players))))
            else:
                self._empty = float(self.empty_value)
        return self._empty

    def _labels(self, players: Iterable[int]) -> NDArray[Any]:
        """The pooled training labels of ``players`` (in player order)."""
        return np.concatenate([np.asarray(self.parties[i].y) for i in players])

    def _constant_model(self, y: NDArray[Any]) -> Any:
        dummy = (
            DummyClassifier(strategy="most_frequent") if self.is_classifier else DummyRegressor()
        )
        return dummy.fit(np.zeros((y.shape[0], 1)), y)

    def __repr__(self) -> str:
        return (
            f"CoalitionUtility(learner={self.learner!r}, parties={list(self.names)}, "
            f"scorer={self.scorer_name!r})"
        )


def _accuracy(pred: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
    return np.mean(pred == y, axis=1)


def _r2(pred: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
    y = y.astype(np.float64)
    return 1.0 - ((pred - y) ** 2).sum(axis=1) / ((y - y.mean()) ** 2).sum()


def _neg_mse(pred: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
    return -np.mean((pred - y) ** 2, axis=1)


def _neg_rmse(pred: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
    return -np.sqrt(np.mean((pred - y) ** 2, axis=1))


def _neg_mae(pred: NDArray[Any], y: NDArray[Any]) -> NDArray[np.float64]:
    return -np.mean(np.abs(pred - y), axis=1)


#: Scorers computed from a block's predictions at once (rows: coalitions); any other
#: scorer is called on a fitted scikit-learn estimator per coalition.
_VECTOR_SCORERS: dict[str, Callable[[NDArray[Any], NDArray[Any]], NDArray[np.float64]]] = {
    "accuracy": _accuracy,
    "r2": _r2,
    "neg_mean_squared_error": _neg_mse,
    "neg_root_mean_squared_error": _neg_rmse,
    "neg_mean_absolute_error": _neg_mae,
}


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
