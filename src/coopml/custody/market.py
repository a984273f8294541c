r"""A market round in parties custody: the same settlement, no row leaves its owner.

:func:`run_custody_market` is :func:`~coopml.market.run_market` for parties whose
rows stay with their agents. The operator

1. asks every party's agent for its moments (:mod:`coopml.custody.statistics`);
2. builds every coalition's model from the agents' sufficient statistics, or by the
   federated Newton method for logistic regression (:mod:`coopml.custody.newton`);
3. sends the models to the owner of each validation set, which returns their scores
   (:mod:`coopml.custody.valuation`): one table for a shared task (single-task
   market), one per party for the parties' own tasks (multi-task market);
4. chooses each requester's training set and settles with
   :func:`~coopml.market.settle`, exactly as :func:`~coopml.market.run_market` does.

A market of more than :data:`~coopml.market.sampled_shares.EXACT_LIMIT` parties (or
any with ``valuation="monte_carlo"``) is valued as operator custody values it: the
rule's estimator draws coalitions, and each block it draws is fit from the statistics
and scored by the validator (:class:`~coopml.custody.valuation.CoalitionGains`); a
multi-task market of more than :data:`~coopml.market.market.EXHAUSTIVE_LIMIT` parties
chooses each party's training set by greedy forward selection, the parties' steps in
lockstep (a block and a round trip per step for all of them). The same seed gives the
same members, sample, shares and standard errors.

Settlements, value tables and :meth:`~coopml.market.Settlement.verify` are the same
records as in operator custody; the provenance adds ``"custody": "parties"``. Without
the rows the operator cannot screen for replicated data (``duplicates`` is
``"ignore"``); identical parties are still recognised from the fingerprints of their
files. An agent may add Gaussian-mechanism noise to its statistics
(:mod:`coopml.custody.privacy`); the provenance's ``"privacy"`` then records, per party,
its (epsilon, delta), clipping bound and mechanism, and the settlement is no longer
exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.base import is_classifier

from coopml._bitmask import MAX_MASK_PLAYERS
from coopml._validation import RandomState, check_choice, check_positive, check_seed
from coopml.coalitions._sampling import resolve_executor
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.stopping import StoppingRule
from coopml.custody.learners import custody_learner, standardized
from coopml.custody.newton import FederatedLogisticRegression
from coopml.custody.standardize import StandardizedLogisticRegression, StandardizedStatistics
from coopml.custody.statistics import collect_moments, statistics_learner
from coopml.custody.transport import Transport
from coopml.custody.valuation import (
    CoalitionGains,
    CoalitionModels,
    coalition_models,
    model_from_state,
    model_state,
    score_coalitions,
)
from coopml.learning.fast import FastLogisticRegression
from coopml.learning.utility import scores_classes
from coopml.market import CustomModel, MarketResult, Task, select_training_set, settle
from coopml.market.market import (
    EXHAUSTIVE_LIMIT,
    _budget_of,
    _expand,
    greedy_selections,
    provenance_header,
    valuation_plan,
)
from coopml.market.payment import (
    PAYMENT_RULES,
    EmptyValue,
    check_empty_value,
    empty_coalition_gain,
)
from coopml.market.sampled_shares import ESTIMATORS, EXACT_LIMIT, GainSample, estimate_gains

__all__ = ["custom_models", "released_models", "run_custody_market"]


def run_custody_market(
    transport: Transport,
    names: Sequence[str],
    learner: Any,
    validator: str | None = None,
    *,
    rule: str = "ohrimenko",
    price: float = 1.0,
    scorer: str = "accuracy",
    discount: float = 1.0,
    empty_value: EmptyValue = "majority",
    random_state: RandomState = 0,
    valuation: Literal["auto", "exact", "monte_carlo"] = "auto",
    stopping: StoppingRule | None = None,
) -> MarketResult:
    """Run one market round whose parties keep their rows, and settle it.

    Parameters
    ----------
    transport : Transport
        Reaches the agents (:class:`~coopml.custody.transport.LocalTransport`, or
        Flower's deployment runtime through :mod:`coopml.custody.flower`).
    names : sequence of str
        The players' agents, in player order.
    learner : estimator
        One of :data:`~coopml.custody.learners.ESTIMATORS` with supported parameters,
        alone or behind a ``StandardScaler`` (``make_pipeline(StandardScaler(), ...)``:
        every coalition's scaler from the summed moments,
        :mod:`coopml.custody.standardize`); learners that need rows are refused
        (:func:`~coopml.custody.custody_learner`).
    validator : str, optional
        The agent owning the shared validation set (single-task market; it may be a
        player or not). Omitted: every player scores on its own validation set
        (multi-task market).
    rule, price, scorer, discount, empty_value, random_state
        As in :func:`~coopml.market.run_market` (``scorer``: a scikit-learn scorer
        name; the exact learners draw nothing, ``random_state`` seeds the estimator's
        samples and is recorded).
    valuation, stopping
        As in :func:`~coopml.market.run_market`: ``"auto"`` estimates the shares of a
        market of more than ``EXACT_LIMIT`` (14) parties, ``"monte_carlo"`` always,
        ``"exact"`` never (at most 14 parties). With privacy noise a logistic
        regression is fit in one block: exact shares, training sets chosen from every
        coalition.

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.custody import Agent, LocalTransport
    >>> from coopml.data import Party, load_dataset, make_parties, train_validation_split
    >>> ds = load_dataset("breast_cancer")
    >>> X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    >>> parties = make_parties(X, y, 3, random_state=0)
    >>> buyer = Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val))
    >>> t = LocalTransport([Agent(p) for p in parties] + [buyer])
    >>> r = run_custody_market(t, [p.name for p in parties], GaussianNB(), "buyer")
    >>> r.settlement.verify().ok, r.settlement.provenance["custody"]
    (True, 'parties')

    A larger single-task market samples its coalitions as operator custody does:

    >>> from coopml.coalitions.stopping import MaxEvaluations
    >>> parties = make_parties(X, y, 16, random_state=0)
    >>> t = LocalTransport([Agent(p) for p in parties] + [buyer])
    >>> names = [p.name for p in parties]
    >>> big = run_custody_market(t, names, GaussianNB(), "buyer", stopping=MaxEvaluations(300))
    >>> big.settlement.valuation["estimator"], big.settlement.verify().ok
    ('svarm_shapley', True)
    """
    rule = check_choice("rule", rule, PAYMENT_RULES)
    if rule == "similarity_shapley":
        raise ValueError(
            "rule 'similarity_shapley' needs the parties' rows to measure their similarity; "
            "use another rule with custody='parties'"
        )
    empty_value = check_empty_value(empty_value)
    price = check_positive("price", price)
    if not isinstance(scorer, str):
        raise TypeError(f"parameter 'scorer' must be a scikit-learn scorer name; got {scorer!r}")
    names = tuple(names)
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"parameter 'names' must be distinct agent names; got {list(names)}")
    n = len(names)
    if n > MAX_MASK_PLAYERS:
        raise ValueError(
            f"parties custody takes at most {MAX_MASK_PLAYERS} parties (its coalitions "
            f"travel as 64-bit bitmasks); got {n}"
        )
    valuation, estimate, rule_stop = valuation_plan(n, valuation, rule, stopping)
    if not estimate and n > EXACT_LIMIT:
        hint = (
            "use valuation='auto' or 'monte_carlo'"
            if rule in ESTIMATORS
            else f"rule {rule!r} has no sampling estimator: use one of {sorted(ESTIMATORS)}"
        )
        raise ValueError(
            f"an exact valuation in parties custody takes at most {EXACT_LIMIT} parties (every "
            f"coalition's model travels to the validator); got {n}: {hint}"
        )
    fast_cls = custody_learner(learner)
    seed = None if random_state is None else check_seed(random_state)
    task = "classification" if is_classifier(learner) else "regression"
    if task == "regression" and scores_classes(scorer):
        raise ValueError(
            f"parameter 'scorer' is {scorer!r}, a score of predicted classes, but the "
            f"learner {type(learner).__name__} is a regressor; use a regression scorer "
            "such as 'clipped_r2' (max(0, R²), a gain in [0, 1] as markets need) or 'r2'"
        )
    moments = collect_moments(transport, names, task)
    # a StandardScaler in front: the operator's step; the agents see the estimator alone
    estimator, scaled = standardized(learner)
    steps: tuple[str, str] = (learner.steps[0][0], learner.steps[1][0]) if scaled else ("", "")
    if fast_cls is FastLogisticRegression and scaled:
        fast: Any = StandardizedLogisticRegression.from_agents(estimator, transport, moments, steps)
    elif fast_cls is FastLogisticRegression:
        fast = FederatedLogisticRegression.from_agents(estimator, transport, moments)
    else:
        fast = statistics_learner(transport, moments, estimator, fast_cls)  # type: ignore[arg-type]
        if scaled:
            fast = StandardizedStatistics(fast, steps)
    mode = "single" if validator is not None else "multi"
    # more than one block of coalitions: sampled shares, or training sets chosen greedily
    blocks = estimate or (validator is None and n > EXHAUSTIVE_LIMIT)
    if blocks and fast_cls is FastLogisticRegression and any(moments.privacy or ()):
        raise ValueError(
            "with privacy noise a logistic regression fits every coalition in one block "
            "(the agents' noise is calibrated to one plan of requests), so its shares cannot "
            "be sampled nor its training sets chosen greedily: a single-task market of at "
            f"most {EXACT_LIMIT} parties, or a multi-task market of at most "
            f"{EXHAUSTIVE_LIMIT}, valued exactly"
        )
    valuing = _Valuing(
        transport,
        names,
        fast,
        moments,
        estimator,
        scorer,
        rule,
        rule_stop,
        empty_value,
        seed if seed is not None else check_seed(None),
    )
    if validator is not None:
        tasks, games, released = valuing.single(validator, estimate)
    else:
        tasks, games, released = valuing.multi(estimate, valuation == "monte_carlo")
    provenance = _provenance(
        moments, learner, scorer, seed, mode, valuing.fitted_total, fast, transport
    )
    settlement = settle(
        list(names),
        tasks,
        rule,
        price,
        mode=mode,  # type: ignore[arg-type]
        discount=discount,
        empty_value=empty_value,
        identical=_identical(moments, mode),
        provenance=provenance,
    )
    return MarketResult(settlement, released, tuple(games), None, [])


def released_models(result: MarketResult) -> dict[str, dict[str, Any]]:
    """Each party's customised model as plain JSON-safe data: ``members`` (the
    coalition it was fit on), ``validation_gain`` and ``model``
    (:func:`~coopml.custody.valuation.model_state`). The operator computed every
    coalition model from the statistics, so it holds each party's model exactly as in
    operator custody; :func:`custom_models` rebuilds them.

    Examples
    --------
    >>> from sklearn.linear_model import Ridge
    >>> from coopml.custody import Agent, LocalTransport
    >>> from coopml.data import Party, load_dataset, make_parties
    >>> ds = load_dataset("diabetes")
    >>> parties = make_parties(ds.X[:60], ds.y[:60], 2, random_state=0)
    >>> buyer = Agent(Party("buyer", ds.X[60:61], ds.y[60:61], ds.X[60:], ds.y[60:]))
    >>> t = LocalTransport([Agent(p) for p in parties] + [buyer])
    >>> r = run_custody_market(t, ["party_0", "party_1"], Ridge(), "buyer", scorer="clipped_r2")
    >>> plain = released_models(r)
    >>> plain["party_0"]["members"], plain["party_0"]["model"]["name"]
    (['party_0', 'party_1'], 'Ridge')
    >>> import numpy as np
    >>> again = custom_models(plain)["party_0"]
    >>> bool(np.array_equal(again.predict(ds.X[60:]), r.models["party_0"].predict(ds.X[60:])))
    True
    """
    return {
        name: {
            "members": list(model.members),
            "validation_gain": float(model.validation_gain),
            "model": model_state(model.estimator),
        }
        for name, model in result.models.items()
    }


def custom_models(plain: dict[str, Any]) -> dict[str, CustomModel]:
    """The :class:`~coopml.market.CustomModel` of each party from
    :func:`released_models`' plain data."""
    if not isinstance(plain, dict):
        raise ValueError(f"models must be an object of party names; received {plain!r}")
    out = {}
    for name, entry in plain.items():
        if not isinstance(entry, dict) or not {"members", "model"} <= set(entry):
            raise ValueError(f"the model of party {name!r} needs 'members' and 'model'")
        out[str(name)] = CustomModel(
            str(name),
            tuple(str(m) for m in entry["members"]),
            model_from_state(entry["model"]),
            float(entry.get("validation_gain", float("nan"))),
        )
    return out


class _ScoreTogether:
    """A transport that sends the first ``score`` request to every validator in one
    exchange and answers each validator's identical request from those replies.

    In a multi-task market every party scores the same coalition models
    (:func:`~coopml.custody.valuation.score_coalitions` sends each the same request),
    so the parties' scores need one round trip, not one per party. A request that is
    not the first one's (compared value by value) is sent on its own.
    """

    def __init__(self, transport: Transport, validators: Sequence[str]) -> None:
        self.transport, self.validators = transport, tuple(validators)
        self._first: Mapping[str, Any] | None = None
        self._replies: dict[str, dict[str, Any]] = {}

    def exchange(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        if len(requests) == 1:
            ((name, request),) = requests.items()
            if self._first is None and request.get("kind") == "score":
                self._first = request
                self._replies = self.transport.exchange(dict.fromkeys(self.validators, request))
            if name in self._replies and _same(request, self._first):
                return {name: self._replies.pop(name)}
        return self.transport.exchange(requests)


def _same(a: Any, b: Any) -> bool:
    """Whether two messages are equal value by value (arrays by shape, dtype and
    elements, NaN equal to NaN).

    Examples
    --------
    >>> m = {"a": np.array([1.0, np.nan]), "b": [1, "x"]}
    >>> _same(m, {"a": np.array([1.0, np.nan]), "b": [1, "x"]})
    True
    >>> _same({"a": np.array([1.0, 2.0])}, {"a": np.array([1.0, 2.5])})
    False
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (
            isinstance(a, Mapping)
            and isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(_same(a[k], b[k]) for k in a)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind in "fc":
            return bool(np.array_equal(x, y, equal_nan=True))
        return bool(np.array_equal(x, y))
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return (
            isinstance(a, list | tuple)
            and isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_same(u, v) for u, v in zip(a, b, strict=True))
        )
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and bool(a == b)


class _Valuing:
    """The valuation of a parties-custody round, as :func:`~coopml.market.run_market`
    values an operator-custody one: exact tables, or the rule's estimator over blocks of
    coalitions (:class:`~coopml.custody.valuation.CoalitionGains`); each requester's
    training set chosen from every coalition (up to ``EXHAUSTIVE_LIMIT`` parties) or by
    greedy forward selection above. ``fitted`` counts the coalition models fit."""

    def __init__(
        self,
        transport: Transport,
        names: tuple[str, ...],
        fast: Any,
        moments: Any,
        estimator: Any,
        scorer: str,
        rule: str,
        stopping: StoppingRule,
        empty_value: EmptyValue,
        seed: int,
    ) -> None:
        self.transport, self.names, self.fast, self.moments = transport, names, fast, moments
        self.estimator, self.scorer, self.rule, self.stopping = estimator, scorer, rule, stopping
        self.empty_value, self.seed = empty_value, seed
        self.n = len(names)
        self.fitted = 0
        self._gains: list[CoalitionGains] = []

    def gains(self, validator: str) -> CoalitionGains:
        """Gains on ``validator``'s own validation set, fit and scored when asked for."""
        gains = CoalitionGains(
            self.fast, self.moments, self.transport, validator, self.estimator, self.scorer
        )
        self._gains.append(gains)
        return gains

    @property
    def fitted_total(self) -> int:
        return self.fitted + sum(g.fitted for g in self._gains)

    def sample(
        self, gains: CoalitionGains, members: tuple[int, ...], value: float, spent: int = 0
    ) -> GainSample:
        """The requester's task over ``members``, its shares estimated (the released
        model's gain ``value`` for the whole set, as operator custody records it)."""
        empty_value = self.empty_value
        return estimate_gains(
            gains,
            members,
            self.rule,
            stopping=self.stopping,
            seed=self.seed,
            empty_gain=lambda measured: empty_coalition_gain([measured], empty_value),
            overrides={(1 << len(members)) - 1: value},
            executor=resolve_executor("serial", None),
            selection_evaluations=spent,
        )

    def single(
        self, validator: str, estimate: bool
    ) -> tuple[list[Task], list[CoalitionGame], dict[str, CustomModel]]:
        """One shared task, every party's model the grand coalition's."""
        n, names, full = self.n, self.names, (1 << self.n) - 1
        everyone = tuple(range(n))
        if estimate:
            gains = self.gains(validator)
            models = gains.models(np.array([full]))
            value = float(gains.score(models)[0])
            sample = self.sample(gains, everyone, value)
            tasks = [Task(i, everyone, sample=sample) for i in range(n)]
            games: list[CoalitionGame] = []
        else:
            models = coalition_models(self.fast, self.moments)
            self.fitted += int(models.fitted.size)
            table = score_coalitions(self.transport, validator, models, self.estimator, self.scorer)
            value = float(table[full])
            games = [CoalitionGame(table, names)]
            tasks = [Task(i, everyone, games[0].table) for i in range(n)]
        model = models.estimator(full)
        return tasks, games, {name: CustomModel(name, names, model, value) for name in names}

    def multi(
        self, estimate: bool, forced: bool
    ) -> tuple[list[Task], list[CoalitionGame], dict[str, CustomModel]]:
        """Every party's own task on its own validation set: its training set chosen, its
        shares over that set exact or estimated (``forced``: valuation 'monte_carlo').

        The parties' work travels together where it can: every coalition's model scored
        by every party in one round trip (up to ``EXHAUSTIVE_LIMIT`` parties), or the
        parties' greedy steps in lockstep, each step's models fit in one block and
        scored by every party still choosing in one round trip; then the released
        models and the exact tables over the chosen members, one block and one round
        trip for all parties. Only sampled shares go party by party."""
        n, names = self.n, self.names
        members: dict[int, tuple[int, ...]] = {}
        spent: dict[int, int] = {}  # fits that chose the members, beyond the task's table
        tables: dict[int, NDArray[np.float64]] = {}  # over the members (sub-bitmasks)
        source: dict[int, CoalitionModels] = {}  # the models holding each party's released one
        values: dict[int, float] = {}  # its released model's gain
        masks: dict[int, int] = {}
        if n <= EXHAUSTIVE_LIMIT:
            everything = list(range(1 << n))
            models, scores = self._together(dict.fromkeys(range(n), everything))
            for i in range(n):
                whole = CoalitionGame(scores[i], names)
                members[i], game = select_training_set(
                    _Players(n, names),  # type: ignore[arg-type]
                    i,
                    lambda _, whole=whole: whole,
                )
                tables[i] = game.table
                spent[i] = 0 if estimate else (1 << n) - (1 << len(members[i]))
                masks[i] = sum(1 << j for j in members[i])
                source[i], values[i] = models, float(scores[i][masks[i]])
        else:
            half = _budget_of(self.stopping) // 2 if estimate else 0
            for i, (picked, fits) in self._greedy(half or None).items():
                members[i], spent[i] = picked, fits
                masks[i] = sum(1 << j for j in picked)
        sampled = {i for i in range(n) if estimate and (forced or len(members[i]) > EXACT_LIMIT)}
        exact = [i for i in range(n) if i not in sampled and i not in tables]
        if exact:  # the tables over the greedily chosen members, together (whole set last)
            models, scores = self._together({i: _expand(members[i], n).tolist() for i in exact})
            for i in exact:
                tables[i], source[i], values[i] = scores[i], models, float(scores[i][-1])
        rest = [i for i in range(n) if i not in source]
        if rest:  # the released models of the parties whose shares are sampled
            models, scores = self._together({i: [masks[i]] for i in rest})
            for i in rest:
                source[i], values[i] = models, float(scores[i][0])
        tasks: list[Task] = []
        games: list[CoalitionGame] = []
        released: dict[str, CustomModel] = {}
        for i, name in enumerate(names):
            if i in sampled:
                sample = self.sample(self.gains(name), members[i], values[i], spent[i])
                tasks.append(Task(i, members[i], sample=sample))
            else:
                games.append(CoalitionGame(tables[i], tuple(names[j] for j in members[i])))
                tasks.append(Task(i, members[i], games[-1].table, selection_evaluations=spent[i]))
            chosen = tuple(names[j] for j in members[i])
            model = source[i].estimator(masks[i])
            released[name] = CustomModel(name, chosen, model, values[i])
        return tasks, games, released

    def _together(
        self, wanted: Mapping[int, Sequence[int]]
    ) -> tuple[CoalitionModels, dict[int, NDArray[np.float64]]]:
        """The models of every coalition some party wants, fit in one block, and each
        party's scores of the coalitions it wants (in its order), in one round trip:
        every party scores the same models (the union), as in the exhaustive case."""
        union = np.unique(np.concatenate([np.asarray(m, dtype=np.int64) for m in wanted.values()]))
        models = coalition_models(self.fast, self.moments, union)
        self.fitted += int(models.fitted.size)
        together = _ScoreTogether(self.transport, [self.names[i] for i in wanted])
        scores = {}
        for i, masks in wanted.items():
            table = score_coalitions(together, self.names[i], models, self.estimator, self.scorer)
            scores[i] = table[np.searchsorted(models.masks, np.asarray(masks, dtype=np.int64))]
        return models, scores

    def _greedy(self, budget: int | None) -> dict[int, tuple[tuple[int, ...], int]]:
        """Every party's greedy forward selection, the parties' steps in lockstep
        (:func:`~coopml.market.market.greedy_selections`): a block and a round trip per
        step for all parties still choosing."""

        def evaluate(wanted: dict[int, list[list[int]]]) -> dict[int, NDArray[np.float64]]:
            masks = {i: [sum(1 << j for j in c) for c in cs] for i, cs in wanted.items()}
            return self._together(masks)[1]

        return greedy_selections(evaluate, self.n, range(self.n), budget=budget)


class _Players:
    """What :func:`~coopml.market.select_training_set` reads of a utility."""

    def __init__(self, n: int, names: tuple[str, ...]) -> None:
        self.n_players, self.names = n, names


def _identical(moments: Any, mode: str) -> list[list[int]]:
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, (train, val) in enumerate(
        zip(moments.fingerprints, moments.validation_fingerprints, strict=True)
    ):
        if not train:  # an agent adding privacy noise sends no fingerprint
            continue
        key = (train,) if mode == "single" else (train, val)
        groups.setdefault(key, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _provenance(
    moments: Any,
    learner: Any,
    scorer: str,
    seed: int | None,
    mode: str,
    fitted: int,
    fast: Any,
    transport: Transport,
) -> dict[str, Any]:
    return {
        **provenance_header(learner, scorer, seed, mode),
        "custody": "parties",
        "data": {
            name: {
                "n_samples": int(moments.n[j]),
                "fingerprint": moments.fingerprints[j],
                "validation_fingerprint": moments.validation_fingerprints[j] or None,
            }
            for j, name in enumerate(moments.names)
        },
        # each party's Gaussian mechanism, or None: its statistics are exact
        "privacy": {
            name: moments.privacy[j] if moments.privacy else None
            for j, name in enumerate(moments.names)
        },
        "duplicates": {"action": "ignore", "log": [], "why": "rows stay with their owners"},
        "protocol": {
            "fitted_coalitions": int(fitted),
            "newton_requests": int(getattr(fast, "n_requests", 0)),
            "transport": type(transport).__name__,
        },
    }
