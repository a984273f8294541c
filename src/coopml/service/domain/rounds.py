"""Rounds: opening one under the market's eligibility rules, reading rounds, their
settlements, audits and ledgers as the caller may see them, and round liveness.

**Opening a round** (:func:`open_round`, the operator only) checks, in order: the
learner and its parameters against the allow-list (:mod:`coopml.service.learners`),
that the market has training data from at least two parties and the validation data
the round's tasks need, the party cap of the valuation (:data:`MAX_ROUND_PARTIES`
exact, :data:`MAX_ESTIMATED_ROUND_PARTIES` estimated), and that a replication audit
names a party with training data. The request's own rules (payment rule, valuation,
duplicates policy, the empty coalition's value) are checked by :class:`RoundOptions`.
The round's configuration is a :class:`RoundConfig`, stored as the round's JSON with a
snapshot of the datasets it reads (later uploads do not change it) and read back typed
by the runner.

**Visibility**: the operator sees every round, line and audit; a party sees the rounds
of its market, only its own settlement line, the flags' sentences that name no party,
no other party's name in a round's configuration and no other party's failure.

**Liveness**: a worker holding a round's job renews its lease every
``heartbeat_seconds``; each renewal stamps the job's ``updated_at``. When the lease has
expired while the job is still ``running``, the worker has died (or lost the database):
the round is **stalled** until another worker claims the job (a claim takes over an
expired lease, see :mod:`coopml.service.jobs.queue`). The round's stored status stays
``running`` (the job is not finished); what parties see is the derived state
``stalled`` with the time since the last heartbeat.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.market.sampled_shares import (
    DEFAULT_MAX_EVALUATIONS,
    DEFAULT_STDERR_TARGET,
    ESTIMATORS,
)
from coopml.market.settlement import FLAG_SUMMARIES
from coopml.service.context import record_audit
from coopml.service.domain._query import paginate, valid_id
from coopml.service.domain.errors import Conflict, Invalid, not_found
from coopml.service.domain.ledger import ledger_totals
from coopml.service.domain.markets import visible_market
from coopml.service.domain.parties import PARTY_NAME, Principal, require_operator
from coopml.service.learners import LearnerError, check_learner
from coopml.service.storage.models import (
    Dataset,
    Job,
    LedgerEntry,
    Market,
    ModelArtifact,
    Party,
    Round,
    SettlementLineRow,
    SettlementRow,
    utc,
    utcnow,
)

__all__ = [
    "MAX_CUSTODY_ROUND_PARTIES",
    "MAX_ESTIMATED_ROUND_PARTIES",
    "MAX_ROUND_PARTIES",
    "InputsSnapshot",
    "LearnerConfig",
    "Liveness",
    "PartyInputs",
    "PaymentRule",
    "RoundConfig",
    "RoundOptions",
    "audit_view",
    "custody_inputs",
    "list_rounds",
    "liveness",
    "open_round",
    "privacy_view",
    "read_round",
    "round_inputs",
    "round_ledger",
    "round_view",
    "settlement_view",
    "visible_round",
]

#: Largest number of parties in one round with exact gain tables (valuation "exact").
MAX_ROUND_PARTIES = 12

#: Largest number of parties in one round whose shares may be estimated ("auto",
#: "monte_carlo"; docs/market.md, large markets).
MAX_ESTIMATED_ROUND_PARTIES = 1000

#: Largest number of parties in one parties-custody round whose shares are estimated
#: (coalitions travel to the agents as 64-bit bitmasks).
MAX_CUSTODY_ROUND_PARTIES = 62

#: The payment rules of :mod:`coopml.market.payment` (``PAYMENT_RULES``; a test keeps
#: the two equal).
PaymentRule = Literal["ohrimenko", "shapley", "banzhaf", "loo", "similarity_shapley"]


# ----------------------------------------------------------------------- configuration
class RoundOptions(BaseModel):
    """The options a round is opened with, and the rules that tie them together.

    Examples
    --------
    >>> RoundOptions(payment_rule="shapley").valuation
    'auto'
    >>> RoundOptions(payment_rule="loo", valuation="monte_carlo")
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for RoundOptions
    ...
    """

    model_config = ConfigDict(allow_inf_nan=False)

    payment_rule: PaymentRule = Field(
        "ohrimenko", description="How the payment is divided (docs/market.md)."
    )
    fee_price: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    tasks: Literal["per_party", "single"] = "single"
    duplicates: Literal["ignore", "report", "drop", "merge"] = "report"
    random_state: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    replication_party: Annotated[str, Field(pattern=PARTY_NAME)] | None = Field(
        None, description="Also audit what this party would gain by replicating its data."
    )
    empty_value: Literal["majority", "zero"] | float = Field(
        "majority",
        description="Value of the empty coalition in the payment rule: 'majority' (the "
        "score of a constant predictor: the majority class, or the training mean for "
        "regression), 'zero', or a number in [0, 1]. Recorded in the settlement.",
    )
    validation_party: Annotated[str, Field(pattern=PARTY_NAME)] | None = Field(
        None,
        description="Parties custody, tasks 'single': the party whose agent holds the "
        "validation set every coalition is scored on.",
    )
    valuation: Literal["auto", "exact", "monte_carlo"] = Field(
        "auto",
        description="'exact' gain tables; 'monte_carlo' shares estimated from a sample of "
        "coalitions, each payout with its standard error and the sample in the record; "
        "'auto': exact up to 14 parties, estimated above.",
    )
    max_evaluations: Annotated[int, Field(ge=1, le=10_000_000)] = Field(
        DEFAULT_MAX_EVALUATIONS, description="Evaluation budget (model fits) of an estimated share."
    )
    stderr_target: Annotated[float, Field(gt=0, le=1)] | None = Field(
        DEFAULT_STDERR_TARGET,
        description="Stop an estimate early once every payout's standard error is at most "
        "this fraction of the total paid out; null: spend the whole budget.",
    )
    #: an exact valuation with a budget or target is refused when a round is requested
    refuses_unused_budget: ClassVar[bool] = True

    @model_validator(mode="after")
    def _consistent(self) -> RoundOptions:
        if self.valuation == "monte_carlo" and self.payment_rule == "loo":
            raise ValueError(
                "payment_rule 'loo' has no sampling estimator; valuation 'monte_carlo' "
                "settles 'ohrimenko', 'shapley', 'similarity_shapley' or 'banzhaf'"
            )
        if self.payment_rule == "similarity_shapley" and self.duplicates == "ignore":
            raise ValueError(
                "payment_rule 'similarity_shapley' needs duplicates 'report', 'drop' or "
                "'merge'; received duplicates 'ignore'"
            )
        given = sorted({"max_evaluations", "stderr_target"} & self.model_fields_set)
        if self.refuses_unused_budget and self.valuation == "exact" and given:
            raise ValueError(
                f"{' and '.join(given)} bound an estimate, and valuation 'exact' evaluates "
                f"every coalition: leave out {' and '.join(given)} or use valuation 'auto' "
                "or 'monte_carlo'"
            )
        return self

    @field_validator("empty_value", mode="before")
    @classmethod
    def _empty_value(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("majority", "zero"):
            return value
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= 1
        ):
            return float(value)
        raise ValueError("must be 'majority', 'zero' or a number in [0, 1]")


class LearnerConfig(BaseModel):
    """A learner from the allow-list with every parameter filled
    (:func:`coopml.service.learners.check_learner`)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class PartyInputs(BaseModel):
    """One party's datasets in a round's snapshot."""

    party_id: str
    name: str
    train: list[str]
    validation: list[str]


class InputsSnapshot(BaseModel):
    """The datasets a round reads, fixed when it is opened."""

    parties: list[PartyInputs]
    #: The market's feature columns in the order its models expect.
    features: list[str]
    target: str
    shared_validation: list[str]


class RoundConfig(RoundOptions):
    """A round's whole configuration, stored as the round's JSON (``config``) and read
    back by the runner (:meth:`of`). The snapshot is stored under ``_inputs``, which the
    API does not show (it shows the ``features`` order instead).

    Rounds stored before an option existed read back with its default (``empty_value``
    'majority', ``valuation`` 'auto', the estimators' budget and target).

    Examples
    --------
    >>> config = RoundConfig(
    ...     learner={"name": "gaussian_nb", "params": {}},
    ...     payment_rule="shapley",
    ...     n_parties=2,
    ...     inputs={"parties": [], "features": ["x"], "target": "y", "shared_validation": []},
    ... )
    >>> stored = config.stored()
    >>> list(stored)[:2], "_inputs" in stored
    (['learner', 'payment_rule'], True)
    >>> RoundConfig.model_validate(stored) == config
    True
    """

    model_config = ConfigDict(populate_by_name=True)
    #: a stored round is read back as it was opened (every option is then set)
    refuses_unused_budget: ClassVar[bool] = False

    learner: LearnerConfig
    n_parties: int | None = None
    inputs: InputsSnapshot = Field(alias="_inputs")

    @classmethod
    def of(cls, rnd: Round) -> RoundConfig:
        """The typed configuration of a stored round."""
        return cls.model_validate(dict(rnd.config))

    def stored(self) -> dict[str, Any]:
        """The JSON stored as the round's ``config`` (the learner first)."""
        data = self.model_dump(mode="json", by_alias=True)
        return {"learner": data.pop("learner"), **data}


# ----------------------------------------------------------------------- opening a round
def round_inputs(
    s: Session, market_id: str, tasks: str, valuation: str = "exact"
) -> InputsSnapshot:
    """The datasets a new round will use (a snapshot: later uploads do not change it);
    :class:`~coopml.service.domain.errors.Conflict` when the market lacks data the round
    needs (``missing_data``) or has more parties than the valuation takes
    (``too_many_parties``)."""
    parties = list(
        s.scalars(select(Party).where(Party.market_id == market_id).order_by(Party.created_at))
    )
    datasets = list(
        s.scalars(
            select(Dataset).where(Dataset.market_id == market_id).order_by(Dataset.created_at)
        )
    )
    if not datasets:
        raise Conflict("this market has no datasets yet", code="missing_data")
    entries = []
    for p in parties:
        own = [d for d in datasets if d.party_id == p.id]
        train = [d.id for d in own if d.role == "train"]
        validation = [d.id for d in own if d.role == "validation"]
        if train:
            entries.append(
                PartyInputs(party_id=p.id, name=p.name, train=train, validation=validation)
            )
    problems = []
    if len(entries) < 2:
        problems.append(
            "a round needs at least 2 parties with training data; "
            f"{len(entries)} part{'y has' if len(entries) == 1 else 'ies have'} uploaded any"
        )
    if tasks == "per_party":
        missing = [e.name for e in entries if not e.validation]
        if missing:
            problems.append(
                "tasks 'per_party' needs validation data from every party with training "
                f"data; missing for {missing}"
            )
    elif not any(d.role == "validation" for d in datasets):
        problems.append(
            "tasks 'single' needs at least one validation dataset in the market; none uploaded"
        )
    if problems:
        raise Conflict("; ".join(problems), code="missing_data")
    limit = MAX_ROUND_PARTIES if valuation == "exact" else MAX_ESTIMATED_ROUND_PARTIES
    if len(entries) > limit:
        raise Conflict(
            f"a round with valuation {valuation!r} takes at most {limit} parties; "
            f"{len(entries)} have data",
            code="too_many_parties",
        )
    first = datasets[0]
    return InputsSnapshot(
        parties=entries,
        features=[c for c in first.columns if c != first.target],
        target=first.target,
        shared_validation=[d.id for d in datasets if d.role == "validation"],
    )


def custody_inputs(s: Session, market: Market, options: RoundOptions) -> InputsSnapshot:
    """The players of a parties-custody round: every party of the market (their rows
    stay with their agents: the snapshot names no dataset). Tasks 'single' needs
    ``validation_party``; rules that need rows (a replication audit) are refused."""
    parties = list(
        s.scalars(select(Party).where(Party.market_id == market.id).order_by(Party.created_at))
    )
    names = [p.name for p in parties]
    if len(parties) < 2:
        raise Conflict(
            f"a round needs at least 2 parties; market {market.id!r} has {len(parties)}",
            code="missing_data",
        )
    # an estimate needs the rule's estimator; without one a round is valued exactly
    sampled = options.valuation != "exact" and options.payment_rule in ESTIMATORS
    limit = MAX_CUSTODY_ROUND_PARTIES if sampled else MAX_ROUND_PARTIES
    if len(parties) > limit:
        why = (
            "coalitions travel to the agents as 64-bit bitmasks"
            if sampled
            else f"valuation {options.valuation!r} and payment_rule {options.payment_rule!r} "
            "value it exactly"
        )
        raise Conflict(
            f"a parties-custody round takes at most {limit} parties here ({why}); the "
            f"market has {len(parties)}",
            code="too_many_parties",
        )
    if options.replication_party is not None:
        raise Invalid(
            "replication_party needs the parties' rows: parties custody offers no "
            f"replication audit; received {options.replication_party!r}"
        )
    if options.tasks == "single" and options.validation_party not in names:
        raise Invalid(
            "parties custody with tasks 'single' needs validation_party, the party whose "
            f"agent holds the validation set, one of {names}; "
            f"received {options.validation_party!r}"
        )
    schema = market.data_schema or {}
    return InputsSnapshot(
        parties=[PartyInputs(party_id=p.id, name=p.name, train=[], validation=[]) for p in parties],
        features=[str(f["name"]) for f in schema.get("features", [])],
        target=str(schema.get("target", "")),
        shared_validation=[],
    )


def _custody_learner(checked: dict[str, Any], task: str) -> None:
    """Refuse, before anything is queued, a learner parties custody cannot train
    (:func:`coopml.custody.learners.custody_learner` says why)."""
    from coopml.custody.learners import custody_learner
    from coopml.service.learners import build_learner

    try:
        custody_learner(build_learner(checked, task))
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_learner") from None


def open_round(
    s: Session,
    principal: Principal,
    market_id: str,
    learner: str,
    learner_params: dict[str, Any],
    options: RoundOptions,
) -> Round:
    """Open a round (operator): check the eligibility rules, snapshot the data and queue
    its job; committed. Raises ``Forbidden``, ``NotFound``, ``Invalid`` (the learner:
    ``invalid_learner``; the replication party) or ``Conflict`` (the market's data)."""
    require_operator(principal, "open rounds")
    market = visible_market(s, principal, market_id)
    try:
        checked = check_learner(learner, learner_params, market.task)
    except LearnerError as exc:
        raise Invalid(str(exc), code="invalid_learner") from None
    if market.custody == "parties":
        _custody_learner(checked, market.task)
        inputs = custody_inputs(s, market, options)
    else:
        inputs = round_inputs(s, market.id, options.tasks, options.valuation)
    names = [e.name for e in inputs.parties]
    if options.replication_party is not None and options.replication_party not in names:
        raise Invalid(
            f"replication_party must name a party with training data, one of {names}; "
            f"received {options.replication_party!r}"
        )
    config = RoundConfig(
        **options.model_dump(include=set(RoundOptions.model_fields)),
        learner=LearnerConfig(**checked),
        n_parties=len(names),
        inputs=inputs,
    )
    rnd = Round(market_id=market.id, config=config.stored(), message="queued")
    s.add(rnd)
    s.flush()
    s.add(Job(round_id=rnd.id))
    record_audit(s, principal.actor, "round_opened", "round", rnd.id, market_id=market.id)
    s.commit()
    return rnd


# ----------------------------------------------------------------------- reading rounds
def visible_round(s: Session, principal: Principal, round_id: str) -> Round:
    """The round, if the caller may see it (parties: rounds of their market)."""
    rnd = s.get(Round, round_id) if valid_id(round_id) else None
    if rnd is None or (not principal.is_operator and principal.market_id != rnd.market_id):
        raise not_found("round", round_id)
    return rnd


def round_view(
    r: Round, caller: Principal | None = None, live: Liveness | None = None
) -> dict[str, Any]:
    """A round as the API shows it; to a party (``caller``) without other parties' names
    (``replication_party``) or failure details. ``live``: its worker's liveness (from
    :func:`liveness`); a running round whose worker's lease expired shows as
    ``stalled`` with the time since the last heartbeat."""
    config = {k: v for k, v in dict(r.config).items() if not k.startswith("_")}
    # The market's feature columns in the order its models expect (the schema every
    # party uploads; no party's data): predict rows must follow it.
    features = (dict(r.config).get("_inputs") or {}).get("features")
    if features is not None:
        config["features"] = [str(c) for c in features]
    message = r.message
    if caller is not None and not caller.is_operator:
        if config.get("replication_party") not in (None, caller.name):
            config["replication_party"] = "(another party)"
        if r.status == "failed":
            # a party whose own dataset made the round fail is told which and why
            failure = r.failure or {}
            if failure.get("party_id") == caller.party_id and failure.get("message"):
                message = str(failure["message"])
            else:
                message = "failed (the operator sees the details)"
    status = r.status
    if live is not None and live.stalled and status == "running":
        status, message = "stalled", live.describe()
    return {
        "id": r.id,
        "market_id": r.market_id,
        "status": status,
        "progress": float(r.progress),
        "message": message,
        "created_at": utc(r.created_at),
        "started_at": utc(r.started_at),
        "finished_at": utc(r.finished_at),
        "heartbeat_at": None if live is None else live.heartbeat_at,
        "seconds_since_heartbeat": None if live is None else live.seconds_since_heartbeat,
        "config": config,
    }


def read_round(s: Session, principal: Principal, round_id: str) -> dict[str, Any]:
    """A round's view (status, progress, liveness) as the caller may see it."""
    rnd = visible_round(s, principal, round_id)
    return round_view(rnd, principal, liveness(s, [rnd.id]).get(rnd.id))


def list_rounds(
    s: Session,
    principal: Principal,
    market_id: str,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The views of a market's rounds, newest first, and how many there are (parties of
    the market may read them; a party is not shown another's failure details)."""
    market = visible_market(s, principal, market_id)
    query = (
        select(Round)
        .where(Round.market_id == market.id)
        .order_by(Round.created_at.desc(), Round.id)
    )
    rows, total = paginate(s, query, limit, offset)
    live = liveness(s, [r.id for r in rows])
    return [round_view(r, principal, live.get(r.id)) for r in rows], total


# ----------------------------------------------------------------------- settlement, audit
def _settled(s: Session, principal: Principal, round_id: str) -> tuple[Round, SettlementRow]:
    rnd = visible_round(s, principal, round_id)
    row = s.scalar(select(SettlementRow).where(SettlementRow.round_id == rnd.id))
    if row is None:
        raise Conflict(
            f"round {rnd.id} is {rnd.status}; it has no settlement yet", code="round_not_settled"
        )
    return rnd, row


def _line(line: SettlementLineRow, principal: Principal, charge: float) -> dict[str, Any]:
    members = list(line.members)
    return {
        "party_id": line.party_id,
        "name": line.name,
        "fee": line.fee,
        "charge": charge,
        "fee_returned": line.fee - charge,
        "payout": line.payout,
        "net_gain": line.net_gain,
        "payoff": line.payoff,
        "improvement": line.improvement,
        "share": line.share,
        "own_gain": line.own_gain,
        "model_gain": line.model_gain,
        # who trained the model: names for the operator; a party learns only how many
        "members": members if principal.is_operator else [m for m in members if m == line.name],
        "n_members": len(members),
    }


def _flag(flag: dict[str, Any], principal: Principal) -> dict[str, str]:
    """A settlement flag; a party sees the sentence that names no party."""
    code = str(flag.get("code", ""))
    if principal.is_operator:
        return {"code": code, "message": str(flag.get("message", ""))}
    return {"code": code, "message": FLAG_SUMMARIES.get(code, "A settlement rule applied.")}


#: The numbers of a party's privacy record the settlement shows (the provenance keeps all).
_PRIVACY_FIELDS = ("epsilon", "delta", "clip", "target_clip", "mu", "rho_zcdp", "epsilon_zcdp")


def privacy_view(entry: Any) -> dict[str, Any] | None:
    """A party's privacy in a settlement, from its provenance record: None when its
    statistics were exact (no mechanism); ``noise`` false when its rows were only
    clipped (epsilon infinite: stored as null, JSON has no infinity).

    Examples
    --------
    >>> privacy_view(None) is None
    True
    >>> view = privacy_view({"mechanism": "gaussian", "epsilon": 1.0, "delta": 1e-5,
    ...                      "clip": 4.0, "target_clip": None, "releases": 4, "mu": 0.268,
    ...                      "rho_zcdp": 0.0359, "epsilon_zcdp": 1.32})
    >>> view["noise"], view["epsilon"], view["delta"], view["epsilon_zcdp"]
    (True, 1.0, 1e-05, 1.32)
    >>> privacy_view({"mechanism": "gaussian", "epsilon": float("inf"), "delta": 1e-5,
    ...               "clip": 4.0, "mu": None})["noise"]
    False
    """
    if not isinstance(entry, dict):
        return None

    def finite(value: Any) -> float | None:
        number = None if value is None else float(value)
        return number if number is not None and math.isfinite(number) else None

    view: dict[str, Any] = {"mechanism": str(entry.get("mechanism", "gaussian"))}
    for key in _PRIVACY_FIELDS:
        view[key] = finite(entry.get(key))
    releases = entry.get("releases")
    view["releases"] = None if releases is None else int(releases)
    view["noise"] = view["epsilon"] is not None
    return view


def settlement_view(s: Session, principal: Principal, round_id: str) -> dict[str, Any]:
    """The settlement: every line and the totals (operator) or the caller's own line
    (party); ``Conflict`` (``round_not_settled``) before the round is settled."""
    rnd, row = _settled(s, principal, round_id)
    record = row.record
    price = float(record["price"])
    # the charge for improvement lives in the record (format 1: price * improvement)
    charges = {
        str(p["name"]): float(p.get("charge", price * float(p["improvement"])))
        for p in record.get("parties", [])
    }
    query = select(SettlementLineRow).where(SettlementLineRow.round_id == rnd.id)
    if not principal.is_operator:
        query = query.where(SettlementLineRow.party_id == principal.party_id)
    lines = [
        _line(x, principal, charges.get(x.name, price * x.improvement))
        for x in s.scalars(query.order_by(SettlementLineRow.name))
    ]
    stderr = {str(p["name"]): float(p.get("payout_stderr", 0.0)) for p in record["parties"]}
    for line in lines:  # estimated shares (format 3); exact: 0
        line["payout_stderr"] = stderr.get(line["name"], 0.0)
    # parties custody: each party's privacy mechanism, by name (a party sees its own line)
    privacy = (record.get("provenance") or {}).get("privacy") or {}
    for line in lines:
        line["privacy"] = privacy_view(privacy.get(line["name"]))
    totals: dict[str, float] = {}
    if principal.is_operator:
        keys = ("fee", "charge", "fee_returned", "payout", "net_gain", "payoff", "improvement")
        totals = {key: float(sum(line[key] for line in lines)) for key in keys}
    valuation = record.get("valuation") or {}
    if not principal.is_operator:  # a party does not see other requesters' tasks
        valuation = {k: v for k, v in valuation.items() if k != "tasks"}
    return {
        "round_id": rnd.id,
        "rule": record["rule"],
        "mode": record["mode"],
        "price": price,
        # records written before format 2 used the measured empty coalition, no flags
        "empty_value": record.get("empty_value", "majority"),
        "flags": [_flag(f, principal) for f in record.get("flags", [])],
        "lines": lines,
        "valuation": valuation,
        "totals": totals,
        "verified": bool(row.verified),
    }


def audit_view(s: Session, principal: Principal, round_id: str) -> dict[str, Any]:
    """The round's audit (operator): balance (recomputed from the ledger), verification,
    duplicate-data report, the replication audit when requested, and the release check
    of each party's model."""
    require_operator(principal, "read round audits")
    rnd, row = _settled(s, principal, round_id)
    totals = ledger_totals(s, rnd.id)
    audit = dict(row.audit)
    checks = row.record.get("checks", {})
    balance = {
        **totals,
        "settlement_balanced": bool(checks.get("balanced", False)),
        "settlement_balance_error": float(checks.get("balance_error", 0.0)),
    }
    return {
        "round_id": rnd.id,
        "balance": balance,
        "verification": audit.get("verification", {}),
        "duplicates": audit.get("duplicates"),
        "replication": audit.get("replication"),
        "release": _release_checks(s, rnd.id),
    }


def _release_checks(s: Session, round_id: str) -> list[dict[str, Any]]:
    """Per party: whether its model may be released under 'aggregate_only', and why."""
    rows = s.execute(
        select(ModelArtifact, Party.name)
        .join(Party, Party.id == ModelArtifact.party_id)
        .where(ModelArtifact.round_id == round_id)
        .order_by(Party.name)
    ).all()
    return [
        {
            "party_id": m.party_id,
            "name": name,
            "releasable": m.releasable,
            "reason": (m.release_check or {}).get("reason", "not checked"),
            "exposures": (m.release_check or {}).get("summary", []),
        }
        for m, name in rows
    ]


def round_ledger(
    s: Session, principal: Principal, round_id: str, *, limit: int | None, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of the round's append-only ledger (operator), and its length."""
    require_operator(principal, "read ledgers")
    rnd = visible_round(s, principal, round_id)
    query = select(LedgerEntry).where(LedgerEntry.round_id == rnd.id).order_by(LedgerEntry.seq)
    rows, total = paginate(s, query, limit, offset)
    items = [
        {
            "id": e.id,
            "seq": e.seq,
            "round_id": e.round_id,
            "party_id": e.party_id,
            "kind": e.kind,
            "amount": e.amount,
            "created_at": utc(e.created_at),
        }
        for e in rows
    ]
    return items, total


# ----------------------------------------------------------------------- liveness
@dataclass(frozen=True)
class Liveness:
    """What the job queue says of one round's worker."""

    #: The last heartbeat (or claim) of the worker holding the job; None when no
    #: worker has held it yet.
    heartbeat_at: datetime.datetime | None
    #: True when the job is ``running`` but its lease expired (its worker is gone).
    stalled: bool
    #: Seconds from the last heartbeat to ``now`` (None without a heartbeat).
    seconds_since_heartbeat: float | None
    #: Attempts so far (claims of the job).
    attempts: int

    def describe(self) -> str:
        """One line for a party: ``stalled: no heartbeat for 2 min 5 s (attempt 1) ...``."""
        seconds = self.seconds_since_heartbeat or 0.0
        minutes, secs = divmod(round(seconds), 60)
        ago = f"{minutes} min {secs} s" if minutes else f"{secs} s"
        return (
            f"stalled: no heartbeat from its worker for {ago} (attempt {self.attempts}); "
            "it resumes when a worker takes the job over"
        )


def liveness(
    s: Session, round_ids: Iterable[str], now: datetime.datetime | None = None
) -> dict[str, Liveness]:
    """The liveness of each round's job, by round id (rounds without a job are absent)."""
    ids = list(round_ids)
    if not ids:
        return {}
    now = now or utcnow()
    out: dict[str, Liveness] = {}
    for job in s.scalars(select(Job).where(Job.round_id.in_(ids))):
        beat = utc(job.updated_at) if job.attempts else None
        expires = utc(job.lease_expires_at)
        stalled = job.status == "running" and expires is not None and expires < now
        out[job.round_id] = Liveness(
            heartbeat_at=beat,
            stalled=stalled,
            seconds_since_heartbeat=None if beat is None else (now - beat).total_seconds(),
            attempts=int(job.attempts),
        )
    return out
