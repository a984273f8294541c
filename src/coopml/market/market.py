r"""Running a market round: train, value, customise, settle.

:func:`run_market` is the marketplace of Ohrimenko, Tople & Tschiatschek (2019) end to
end. Parties submit training data and a validation task; the market

1. optionally screens for replicated data (:mod:`coopml.market.duplicates`);
2. computes, for every requester :math:`i`, the gain table
   :math:`G(V_i; M_S)` over coalitions of parties (one table shared by all in the
   single-task market);
3. chooses the training set :math:`S_i \ni i` that maximises :math:`G(V_i; M_S)`
   (exhaustively for up to 12 parties, by greedy forward selection above) — the
   customised model :math:`M^i` is trained on it and released to party :math:`i` only
   [multi-task: **reconstructed** from the full version, arXiv 1911.09052];
4. settles fees and payouts with a payment rule (:mod:`coopml.market.settlement`).

**Large markets.** A gain table has :math:`2^n` entries; above
:data:`~coopml.market.sampled_shares.EXACT_LIMIT` parties (``valuation="auto"``), or
always with ``valuation="monte_carlo"``, the shares are estimated from a sample of
coalitions within an evaluation budget, and the settlement records the sample so that
anyone can recompute them (:mod:`coopml.market.sampled_shares`). Greedy forward
selection costs at most :math:`1 + n(n-1)/2` fits per requester (each step fits every
candidate once); with estimated shares it may spend at most half of the evaluation
budget, and what it spends is taken off the estimate's budget.

Customisation makes the honest validation task a party's best report: a model tuned to
a false task scores worse on its true one.
"""

from __future__ import annotations

import datetime
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml._bitmask import MAX_MASK_PLAYERS, encode_members
from coopml._validation import RandomState, check_choice, check_positive, check_seed
from coopml.coalitions._sampling import budgets, resolve_executor
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.stopping import StoppingRule
from coopml.data import Party, check_parties
from coopml.learning import CoalitionUtility
from coopml.market.duplicates import DuplicateReport, find_duplicates, resolve_duplicates
from coopml.market.payment import (
    PAYMENT_RULES,
    EmptyValue,
    check_empty_value,
    empty_coalition_gain,
)
from coopml.market.sampled_shares import (
    ESTIMATORS,
    EXACT_LIMIT,
    VALUATIONS,
    check_estimable,
    estimate_gains,
    market_stopping,
    stopping_to_json,
)
from coopml.market.settlement import Settlement, Task, settle

__all__ = [
    "CustomModel",
    "MarketResult",
    "estimates_shares",
    "greedy_selections",
    "run_market",
    "select_training_set",
    "valuation_plan",
]

#: Largest market for which training sets are chosen exhaustively.
EXHAUSTIVE_LIMIT = 12


@dataclass(frozen=True, eq=False)
class CustomModel:
    """The model the market trained for one requester, with its provenance."""

    requester: str
    members: tuple[str, ...]
    estimator: Any
    validation_gain: float

    def predict(self, X: ArrayLike) -> Any:
        """Predictions of the customised model."""
        return self.estimator.predict(np.asarray(X, dtype=np.float64))

    @property
    def provenance(self) -> dict[str, Any]:
        """Who trained it on what, and how well it scored on the requester's task."""
        return {
            "requester": self.requester,
            "trained_on": list(self.members),
            "learner": repr(self.estimator),
            "validation_gain": self.validation_gain,
        }


@dataclass(frozen=True, eq=False)
class MarketResult:
    """A settled market round: the settlement, each party's model and the games."""

    settlement: Settlement
    models: dict[str, CustomModel]
    games: tuple[CoalitionGame, ...]
    duplicates: DuplicateReport | None = None
    duplicate_actions: list[dict[str, Any]] = field(default_factory=list)

    def compare_rules(self, rules: Sequence[str] = PAYMENT_RULES) -> pd.DataFrame:
        """Net gain of every party under each payment rule, on the same value tables.

        ``similarity_shapley`` is included only when the market measured similarity;
        estimated shares only under the rule they were sampled for.
        """
        columns = {}
        for rule in rules:
            if rule == "similarity_shapley" and self.duplicates is None:
                continue
            if self.settlement.estimated and rule != self.settlement.rule:
                continue
            settled = self._resettle(rule)
            columns[rule] = [p.net_gain for p in settled.parties]
        return pd.DataFrame(columns, index=list(self.settlement.names))

    def _resettle(self, rule: str) -> Settlement:
        s = self.settlement
        similarity = None if self.duplicates is None else self.duplicates.similarity
        discount = s.rule_params.get("discount", 1.0)
        return settle(
            s.names,
            s.tasks,
            rule,
            s.price,
            mode=s.mode,
            similarity=similarity,
            discount=discount,
            empty_value=s.empty_value,
            identical=s.identical,
            provenance=s.provenance,
        )


def run_market(
    parties: Sequence[Party],
    learner: Any,
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    *,
    rule: str = "ohrimenko",
    price: float = 1.0,
    scorer: str = "accuracy",
    duplicates: Literal["ignore", "report", "drop", "merge"] = "report",
    tolerance: float = 0.05,
    discount: float = 1.0,
    empty_value: EmptyValue = "majority",
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = 0,
    progress: ProgressCallback | None = None,
    valuation: Literal["auto", "exact", "monte_carlo"] = "auto",
    stopping: StoppingRule | None = None,
    cache_dir: str | Path | None = None,
    **utility_options: Any,
) -> MarketResult:
    """Run one market round and settle it.

    Parameters
    ----------
    parties : list of Party
        Each party's training data; in the multi-task market also its validation data
        (``Party.X_val``, ``Party.y_val``).
    learner : estimator
        The market's learner (scikit-learn compatible), cloned for every model.
    validation : (X_val, y_val), optional
        The shared validation task. Given: single-task market; omitted: every party
        brings its own task (multi-task market).
    rule : str, default "ohrimenko"
        Payment rule (:data:`coopml.market.payment.PAYMENT_RULES`).
    price : float, default 1.0
        Price ``c`` of one unit of performance.
    scorer : str, default "accuracy"
        Gain ``G``; must take values in [0, 1].
    duplicates : {"ignore", "report", "drop", "merge"}, default "report"
        Screen for replicated rows across parties before settling; ``"drop"`` and
        ``"merge"`` also act on them (:func:`~coopml.market.duplicates.resolve_duplicates`).
    tolerance, discount : float
        Near-duplicate radius, and :math:`\\lambda` of ``similarity_shapley``.
    empty_value : "majority", "zero" or float in [0, 1], default "majority"
        Value of the empty coalition in the payment rule. ``"majority"``: the score of
        a constant predictor fitted on all parties' training labels (the majority
        class for classification, the training mean for regression), as measured in
        the gain table; ``"zero"``: 0; a number: that number. It shifts every Shapley
        value by the same amount and so changes the normalised shares
        (:mod:`coopml.market.payment`); the settlement records it and
        :meth:`~coopml.market.Settlement.verify` uses it. The gain tables always hold
        the measured value, so a settlement can be re-settled under another convention
        (:meth:`~coopml.market.Settlement.with_empty_value`).
    executor, n_jobs, progress : see :meth:`CoalitionGame.from_utility`.
    random_state : int, Generator or None, default 0
        Seed of the learner's randomness (the same for every coalition) and of the
        estimator's samples.
    valuation : {"auto", "exact", "monte_carlo"}, default "auto"
        ``"exact"``: full gain tables (at most 25 parties). ``"monte_carlo"``: shares
        estimated from a sample of coalitions by the rule's estimator
        (:data:`~coopml.market.sampled_shares.ESTIMATORS`; ``"loo"`` has none), with
        standard errors (``PartyLine.payout_stderr``) and the sample recorded for
        :meth:`~coopml.market.Settlement.verify`. ``"auto"``: exact up to
        :data:`~coopml.market.sampled_shares.EXACT_LIMIT` parties, estimated above.
    stopping : StoppingRule, optional
        When an estimate stops; default
        :func:`~coopml.market.sampled_shares.market_stopping` (every payout's standard
        error at most 1% of the total paid out, or 25,000 fits, whichever comes first).
        Rules with ``MaxTime`` are refused (a record must be replayable), and so is a
        rule with ``valuation="exact"``, which evaluates every coalition.
    cache_dir : path, optional
        Keep the gain tables (:meth:`CoalitionGame.from_utility`) and the gains an
        estimate measures there, so that a rerun of an interrupted market measures only
        what it lacks and settles exactly as an uninterrupted run.
    **utility_options
        Passed to :class:`~coopml.learning.CoalitionUtility` (``single_class``,
        ``on_error``).

    Examples
    --------
    >>> from sklearn.naive_bayes import GaussianNB
    >>> from coopml.data import load_dataset, make_parties, train_validation_split
    >>> ds = load_dataset("breast_cancer")
    >>> X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    >>> parties = make_parties(X, y, 3, random_state=0)
    >>> result = run_market(parties, GaussianNB(), (X_val, y_val))
    >>> result.settlement.checks["balanced"], result.settlement.verify().ok
    (True, True)
    >>> result.settlement.empty_value
    'majority'

    A large market estimates its shares; the record carries their standard errors and
    the sample they came from:

    >>> from coopml.coalitions.stopping import MaxEvaluations
    >>> parties = make_parties(X, y, 30, random_state=0)
    >>> big = run_market(parties, GaussianNB(), (X_val, y_val), stopping=MaxEvaluations(600))
    >>> s = big.settlement
    >>> s.valuation["method"], s.valuation["estimator"], s.valuation["evaluations"]
    ('monte_carlo', 'svarm_shapley', 600)
    >>> s.checks["balanced"], s.verify().ok, max(p.payout_stderr for p in s.parties) > 0
    (True, True, True)
    """
    rule = check_choice("rule", rule, PAYMENT_RULES)
    empty_value = check_empty_value(empty_value)
    price = check_positive("price", price)
    check_choice("duplicates", duplicates, {"ignore", "report", "drop", "merge"})
    parties = check_parties(list(parties), task="regression")
    mode: Literal["single", "multi"] = "single" if validation is not None else "multi"
    if mode == "multi":
        missing = [p.name for p in parties if p.X_val is None]
        if missing:
            raise ValueError(
                "a multi-task market needs every party's own validation data (Party.X_val, "
                f"Party.y_val), or pass a shared 'validation'; missing for {missing}"
            )
    seed = None if random_state is None else check_seed(random_state)
    n = len(parties)
    valuation, estimate, rule_stop = valuation_plan(n, valuation, rule, stopping)
    sample_seed = seed if seed is not None else check_seed(None)
    pool = resolve_executor(executor, n_jobs)

    def empty_gain(measured: float) -> float:
        return empty_coalition_gain([measured], empty_value)

    def sampled(
        u: CoalitionUtility, members: tuple[int, ...], released: float, spent: int = 0
    ) -> Task:
        sample = estimate_gains(
            u,
            members,
            rule,
            stopping=rule_stop,
            seed=sample_seed,
            empty_gain=empty_gain,
            overrides={(1 << len(members)) - 1: released},
            executor=pool,
            progress=progress,
            selection_evaluations=spent,
            cache_dir=cache_dir,
        )
        return Task(members[0], members, sample=sample)

    actions: list[dict[str, Any]] = []
    if duplicates == "drop" or duplicates == "merge":
        parties, actions = resolve_duplicates(parties, duplicates, tolerance=tolerance)
    report = None if duplicates == "ignore" else find_duplicates(parties, tolerance=tolerance)
    if rule == "similarity_shapley" and report is None:
        raise ValueError("rule 'similarity_shapley' needs duplicates='report', 'drop' or 'merge'")

    def utility(members: Sequence[Party], task: tuple[Any, Any]) -> CoalitionUtility:
        # The table holds the measured empty coalition (the utility's "dummy" rule: the
        # majority class or the training mean); the settlement applies empty_value.
        return CoalitionUtility(
            learner, list(members), task, scorer, random_state=seed, **utility_options
        )

    def table(u: CoalitionUtility) -> CoalitionGame:
        return CoalitionGame.from_utility(
            u, executor, n_jobs, progress=progress, cache_dir=cache_dir
        )

    tasks: list[Task] = []
    games: list[CoalitionGame] = []
    models: dict[str, CustomModel] = {}
    if validation is not None:
        shared = utility(parties, (validation[0], validation[1]))
        everyone = tuple(range(len(parties)))
        estimator = shared.fit(everyone)
        released = shared.score(estimator)
        names = tuple(p.name for p in parties)
        if estimate:
            one = sampled(shared, everyone, released)
            for i, party in enumerate(parties):
                tasks.append(Task(i, everyone, sample=one.sample))
                models[party.name] = CustomModel(party.name, names, estimator, released)
        else:
            game = _priced_as_released(table(shared), released)
            games.append(game)
            for i, party in enumerate(parties):
                tasks.append(Task(i, everyone, game.table))
                models[party.name] = CustomModel(party.name, names, estimator, released)
    else:
        for i, party in enumerate(parties):
            u = utility(parties, (party.X_val, party.y_val))
            chosen_ix: tuple[int, ...]
            spent = 0  # fits that chose the members, beyond the task's table or sample
            if n > EXHAUSTIVE_LIMIT:
                half = _budget_of(rule_stop) // 2 if estimate else 0
                chosen_ix, spent = greedy_selection(u, i, budget=half or None)
            else:
                chosen_ix, game = select_training_set(u, i, table)
                if not estimate:  # the whole table, of which the task keeps its members'
                    spent = (1 << n) - (1 << len(chosen_ix))
            estimator = u.fit(chosen_ix)
            released = u.score(estimator)
            if estimate and (valuation == "monte_carlo" or len(chosen_ix) > EXACT_LIMIT):
                task = sampled(u, chosen_ix, released, spent)
                tasks.append(Task(i, chosen_ix, sample=task.sample))
            else:
                if n > EXHAUSTIVE_LIMIT:
                    names_ix = tuple(u.names[j] for j in chosen_ix)
                    game = CoalitionGame(u.evaluate_masks(_expand(chosen_ix, n)), names_ix)
                game = _priced_as_released(game, released)
                games.append(game)
                tasks.append(Task(i, chosen_ix, game.table, selection_evaluations=spent))
            chosen = tuple(parties[j].name for j in chosen_ix)
            models[party.name] = CustomModel(party.name, chosen, estimator, released)
    provenance = _provenance(parties, learner, scorer, seed, mode, duplicates, actions)
    settlement = settle(
        [p.name for p in parties],
        tasks,
        rule,
        price,
        mode=mode,
        similarity=None if report is None else report.similarity,
        discount=discount,
        empty_value=empty_value,
        identical=_identical_groups(parties, mode),
        provenance=provenance,
    )
    return MarketResult(settlement, models, tuple(games), report, actions)


def valuation_plan(
    n_parties: int, valuation: str, rule: str, stopping: StoppingRule | None
) -> tuple[Literal["auto", "exact", "monte_carlo"], bool, StoppingRule]:
    """A market's valuation options, checked: the valuation, whether the shares are
    estimated (:func:`estimates_shares`) and the estimate's stopping rule (default
    :func:`~coopml.market.sampled_shares.market_stopping`; one a record cannot replay
    is refused, and so is a rule given with ``valuation="exact"``).

    Examples
    --------
    >>> valuation_plan(20, "auto", "shapley", None)[:2]
    ('auto', True)
    """
    valuation = check_choice("valuation", valuation, VALUATIONS)
    if valuation == "exact" and stopping is not None:
        raise ValueError(
            "parameter 'stopping' bounds an estimate, and valuation='exact' evaluates every "
            f"coalition: give one or the other; got stopping={stopping} with valuation='exact'"
        )
    estimate = estimates_shares(n_parties, valuation, rule)
    if estimate:
        check_estimable(rule)
    rule_stop = market_stopping() if stopping is None else stopping
    stopping_to_json(rule_stop)  # refuses rules a record cannot replay
    return valuation, estimate, rule_stop  # type: ignore[return-value]


def estimates_shares(n_parties: int, valuation: str, rule: str) -> bool:
    """Whether :func:`run_market` estimates the shares of ``n_parties`` under ``rule``.

    Examples
    --------
    >>> estimates_shares(14, "auto", "ohrimenko"), estimates_shares(15, "auto", "ohrimenko")
    (False, True)
    """
    return valuation == "monte_carlo" or (
        valuation == "auto" and n_parties > EXACT_LIMIT and (rule in ESTIMATORS or n_parties > 25)
    )


def select_training_set(
    utility: CoalitionUtility,
    requester: int,
    table: Any = None,
) -> tuple[tuple[int, ...], CoalitionGame]:
    """Choose the parties whose pooled data maximise the requester's validation gain.

    Exhaustive search over coalitions containing ``requester`` for up to
    :data:`EXHAUSTIVE_LIMIT` parties (ties go to the smaller coalition, then the lower
    bitmask); greedy forward selection above. Returns the chosen members (sorted) and
    the game on them (gain table over coalitions of the members).
    """
    compute = table or (lambda u: CoalitionGame.from_utility(u))
    n = utility.n_players
    if n <= EXHAUSTIVE_LIMIT:
        full = compute(utility)
        masks = np.arange(1 << n)
        candidates = masks[(masks >> requester) & 1 == 1]
        sizes = np.array([bin(m).count("1") for m in candidates])
        best = candidates[np.lexsort((candidates, sizes, -full.table[candidates]))[0]]
        members = tuple(j for j in range(n) if (best >> j) & 1)
        names = tuple(full.names[j] for j in members)
        return members, CoalitionGame(full.table[_expand(members, n)], names)
    members, _ = greedy_selection(utility, requester)
    table = utility.evaluate_masks(_expand(members, n))
    return members, CoalitionGame(table, tuple(utility.names[j] for j in members))


def greedy_selection(
    utility: CoalitionUtility, requester: int, *, budget: int | None = None
) -> tuple[tuple[int, ...], int]:
    """Greedy forward selection of a requester's training set, within a budget of fits.

    Starting from the requester alone, each step fits every remaining candidate added
    to the current set (one batch) and keeps the best one while it raises the gain:
    at most :math:`1 + n(n-1)/2` fits. A step that would exceed ``budget`` fits is not
    taken (the set chosen so far is kept). Returns the members (sorted) and the fits
    made (:func:`greedy_selections` for one requester).
    """
    n = utility.n_players

    def evaluate(wanted: dict[int, list[list[int]]]) -> dict[int, NDArray[np.float64]]:
        return {i: utility.evaluate_masks(_masks(c, n)) for i, c in wanted.items()}

    return greedy_selections(evaluate, n, [requester], budget=budget)[requester]


def greedy_selections(
    evaluate: Callable[[dict[int, list[list[int]]]], dict[int, NDArray[np.float64]]],
    n: int,
    requesters: Sequence[int],
    *,
    budget: int | None = None,
) -> dict[int, tuple[tuple[int, ...], int]]:
    """:func:`greedy_selection` of several requesters, their steps in lockstep.

    ``evaluate({requester: coalitions})`` (each coalition a list of players) returns
    each requester's gains of its coalitions, in order; it is called once per step for
    every requester still choosing, so a caller can fit and score a step's coalitions
    together (parties custody: one block and one round trip per step). Each requester's
    members and fits are those :func:`greedy_selection` gives it alone.
    """
    chosen = {i: [i] for i in requesters}
    first = evaluate({i: [[i]] for i in requesters})
    current = {i: float(first[i][0]) for i in requesters}
    spent = dict.fromkeys(requesters, 1)
    choosing = list(requesters)
    while choosing:
        steps = {}
        for i in choosing:
            others = [j for j in range(n) if j not in chosen[i]]
            if others and (budget is None or spent[i] + len(others) <= budget):
                steps[i] = others
        if not steps:
            break
        scores = evaluate({i: [[*chosen[i], j] for j in others] for i, others in steps.items()})
        choosing = []
        for i, others in steps.items():
            spent[i] += len(others)
            k = int(np.argmax(scores[i]))
            if scores[i][k] > current[i]:
                chosen[i].append(others[k])
                current[i] = float(scores[i][k])
                choosing.append(i)
    return {i: (tuple(sorted(chosen[i])), spent[i]) for i in requesters}


def _masks(coalitions: Sequence[Sequence[int]], n: int) -> NDArray[Any]:
    member = np.zeros((len(coalitions), n), dtype=bool)
    for row, c in enumerate(coalitions):
        member[row, list(c)] = True
    return encode_members(member)


def _expand(members: Sequence[int], n: int = 0) -> NDArray[Any]:
    """Full-game bitmask of every coalition of ``members`` (sub-bitmask ``k`` over
    ``members`` in order); Python integers when a member's bit is beyond int64."""
    k = np.arange(1 << len(members), dtype=np.int64)
    if max(members, default=0) < MAX_MASK_PLAYERS:
        full = np.zeros_like(k)
        for bit, player in enumerate(members):
            full |= ((k >> bit) & 1) << player
        return full
    member = np.zeros((k.size, max(n, max(members) + 1)), dtype=bool)
    for bit, player in enumerate(members):
        member[:, player] = ((k >> bit) & 1).astype(bool)
    return encode_members(member)


def _budget_of(rule: StoppingRule) -> int:
    limit = budgets(rule).evaluations
    return 0 if limit is None else int(limit.limit)


def _priced_as_released(game: CoalitionGame, released_gain: float) -> CoalitionGame:
    """The game whose top entry is the validation gain of the model actually released.

    A fast exact learner may score a coalition's model marginally differently from the
    scikit-learn fit that is released (e.g. lbfgs stopping short of the optimum); a party
    must be charged for the model it receives, so that entry is the released model's.
    """
    if game.table[-1] == released_gain:
        return game
    table = game.table.copy()
    table[-1] = released_gain
    info = {**game.info, "released_model_gain_adjusted_from": float(game.table[-1])}
    return CoalitionGame(table, game.names, info)


def _identical_groups(parties: Sequence[Party], mode: str) -> list[list[int]]:
    """Groups of parties whose training (and, multi-task, validation) data are identical."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, p in enumerate(parties):
        key = (p.fingerprint(),) if mode == "single" else (p.fingerprint(), _val_print(p))
        groups.setdefault(key, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def _val_print(p: Party) -> str:
    if p.X_val is None or p.y_val is None:
        return ""
    return Party("v", p.X_val, p.y_val, allow_missing=True).fingerprint()


def provenance_header(learner: Any, scorer: str, seed: int | None, mode: str) -> dict[str, Any]:
    """What every settlement's provenance opens with (either custody): coopml's version,
    the time, the learner and its parameters, the scorer, the seed and the mode."""
    params = learner.get_params(deep=False) if hasattr(learner, "get_params") else {}
    return {
        "coopml_version": importlib.metadata.version("coopml"),
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "learner": f"{type(learner).__module__}.{type(learner).__qualname__}",
        "learner_params": {k: repr(v) for k, v in params.items()},
        "scorer": scorer,
        "seed": seed,
        "mode": mode,
    }


def _provenance(
    parties: Sequence[Party],
    learner: Any,
    scorer: str,
    seed: int | None,
    mode: str,
    action: str,
    actions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        **provenance_header(learner, scorer, seed, mode),
        "data": {
            p.name: {
                "n_samples": p.n_samples,
                "fingerprint": p.fingerprint(),
                "validation_fingerprint": _val_print(p) or None,
            }
            for p in parties
        },
        "duplicates": {"action": action, "log": actions},
    }
