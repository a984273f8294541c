"""Rounds: open, list and read them; settlements, audits, ledgers, models, predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml._serialization import to_jsonable
from coopml.market.payment import PAYMENT_RULES
from coopml.market.settlement import FLAG_SUMMARIES
from coopml.service.api.deps import Caller, Ctx, Db, Principal, require_operator, require_party
from coopml.service.api.errors import ApiError
from coopml.service.api.routes._common import (
    Limit,
    Offset,
    get_market,
    get_round,
    page,
    paginate,
    round_out,
)
from coopml.service.api.schemas import (
    AuditOut,
    LedgerEntryOut,
    Page,
    PredictIn,
    PredictOut,
    RoundIn,
    RoundOut,
    SettlementOut,
)
from coopml.service.artifacts import cached_model, load_model
from coopml.service.context import record_audit
from coopml.service.domain import release
from coopml.service.domain.rounds import liveness
from coopml.service.jobs.ledger import ledger_totals
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
)

router = APIRouter(tags=["rounds"])

#: Largest number of parties in one round with exact gain tables (valuation "exact").
MAX_ROUND_PARTIES = 12

#: Largest number of parties in one round whose shares may be estimated ("auto",
#: "monte_carlo"; docs/market.md, large markets).
MAX_ESTIMATED_ROUND_PARTIES = 1000


def _round_inputs(
    s: Session, market_id: str, tasks: str, valuation: str = "exact"
) -> dict[str, Any]:
    """The datasets a new round will use (a snapshot: later uploads do not change it)."""
    parties = list(
        s.scalars(select(Party).where(Party.market_id == market_id).order_by(Party.created_at))
    )
    datasets = list(
        s.scalars(
            select(Dataset).where(Dataset.market_id == market_id).order_by(Dataset.created_at)
        )
    )
    if not datasets:
        raise ApiError(409, "missing_data", "this market has no datasets yet")
    entries = []
    for p in parties:
        own = [d for d in datasets if d.party_id == p.id]
        train = [d.id for d in own if d.role == "train"]
        validation = [d.id for d in own if d.role == "validation"]
        if train:
            entries.append(
                {"party_id": p.id, "name": p.name, "train": train, "validation": validation}
            )
    problems = []
    if len(entries) < 2:
        problems.append(
            "a round needs at least 2 parties with training data; "
            f"{len(entries)} part{'y has' if len(entries) == 1 else 'ies have'} uploaded any"
        )
    if tasks == "per_party":
        missing = [e["name"] for e in entries if not e["validation"]]
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
        raise ApiError(409, "missing_data", "; ".join(problems))
    limit = MAX_ROUND_PARTIES if valuation == "exact" else MAX_ESTIMATED_ROUND_PARTIES
    if len(entries) > limit:
        raise ApiError(
            409,
            "too_many_parties",
            f"a round with valuation {valuation!r} takes at most {limit} parties; "
            f"{len(entries)} have data",
        )
    first = datasets[0]
    return {
        "parties": entries,
        "features": [c for c in first.columns if c != first.target],
        "target": first.target,
        "shared_validation": [d.id for d in datasets if d.role == "validation"],
    }


@router.post("/markets/{market_id}/rounds", status_code=202, response_model=RoundOut)
def open_round(market_id: str, body: RoundIn, caller: Caller, s: Db) -> dict[str, Any]:
    """Open a round (operator): validate, snapshot the data and queue the job."""
    require_operator(caller, "open rounds")
    market = get_market(s, caller, market_id)
    try:
        learner = check_learner(body.learner.name, body.learner.params, market.task)
    except LearnerError as exc:
        raise ApiError(422, "invalid_learner", str(exc)) from None
    if body.payment_rule not in PAYMENT_RULES:
        raise ApiError(
            422,
            "validation_error",
            f"payment_rule must be one of {', '.join(PAYMENT_RULES)}; received "
            f"{body.payment_rule!r}",
        )
    if body.payment_rule == "similarity_shapley" and body.duplicates == "ignore":
        raise ApiError(
            422,
            "validation_error",
            "payment_rule 'similarity_shapley' needs duplicates 'report', 'drop' or 'merge'; "
            "received duplicates 'ignore'",
        )
    inputs = _round_inputs(s, market.id, body.tasks, body.valuation)
    names = [e["name"] for e in inputs["parties"]]
    if body.replication_party is not None and body.replication_party not in names:
        raise ApiError(
            422,
            "validation_error",
            f"replication_party must name a party with training data, one of {names}; "
            f"received {body.replication_party!r}",
        )
    config = {
        "learner": learner,
        "payment_rule": body.payment_rule,
        "fee_price": body.fee_price,
        "tasks": body.tasks,
        "duplicates": body.duplicates,
        "random_state": body.random_state,
        "replication_party": body.replication_party,
        "empty_value": body.empty_value,
        "valuation": body.valuation,
        "max_evaluations": body.max_evaluations,
        "stderr_target": body.stderr_target,
        "n_parties": len(names),
        "_inputs": inputs,
    }
    rnd = Round(market_id=market.id, config=config, message="queued")
    s.add(rnd)
    s.flush()
    s.add(Job(round_id=rnd.id))
    record_audit(s, caller.actor, "round_opened", "round", rnd.id, market_id=market.id)
    s.commit()
    return round_out(rnd, caller)


@router.get("/markets/{market_id}/rounds", response_model=Page[RoundOut])
def list_rounds(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Rounds of a market, newest first."""
    market = get_market(s, caller, market_id)
    query = (
        select(Round)
        .where(Round.market_id == market.id)
        .order_by(Round.created_at.desc(), Round.id)
    )
    rows, total = paginate(s, query, limit, offset)
    live = liveness(s, [r.id for r in rows])
    return page([round_out(r, caller, live.get(r.id)) for r in rows], total, limit, offset)


@router.get("/rounds/{round_id}", response_model=RoundOut)
def read_round(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """A round's status and progress (operator; parties of its market)."""
    rnd = get_round(s, caller, round_id)
    return round_out(rnd, caller, liveness(s, [rnd.id]).get(rnd.id))


def _settled(s: Session, caller: Principal, round_id: str) -> tuple[Round, SettlementRow]:
    rnd = get_round(s, caller, round_id)
    row = s.scalar(select(SettlementRow).where(SettlementRow.round_id == rnd.id))
    if row is None:
        raise ApiError(
            409, "round_not_settled", f"round {rnd.id} is {rnd.status}; it has no settlement yet"
        )
    return rnd, row


def _line(line: SettlementLineRow, caller: Principal, charge: float) -> dict[str, Any]:
    members = list(line.members)
    return {
        "party_id": line.party_id,
        "name": line.name,
        "fee": line.fee,
        "charge": charge,
        "fee_returned": line.fee - charge,
        "payout": line.payout,
        "net": line.net,
        "payoff": line.payoff,
        "improvement": line.improvement,
        "share": line.share,
        "value_before": line.value_before,
        "value_after": line.value_after,
        # who trained the model: names for the operator; a party learns only how many
        "members": members if caller.is_operator else [m for m in members if m == line.name],
        "n_members": len(members),
    }


def _valuation_view(valuation: dict[str, Any], caller: Principal) -> dict[str, Any]:
    """The record's valuation block; a party does not see other requesters' tasks."""
    return valuation if caller.is_operator else {k: v for k, v in valuation.items() if k != "tasks"}


def _flag(flag: dict[str, Any], caller: Principal) -> dict[str, str]:
    """A settlement flag; a party sees the sentence that names no party."""
    code = str(flag.get("code", ""))
    if caller.is_operator:
        return {"code": code, "message": str(flag.get("message", ""))}
    return {"code": code, "message": FLAG_SUMMARIES.get(code, "A settlement rule applied.")}


@router.get("/rounds/{round_id}/settlement", response_model=SettlementOut)
def read_settlement(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """The settlement: every line (operator) or the caller's own line (party)."""
    rnd, row = _settled(s, caller, round_id)
    record = row.record
    price = float(record["price"])
    # the charge for improvement lives in the record (format 1: price * improvement)
    charges = {
        str(p["name"]): float(p.get("charge", price * float(p["improvement"])))
        for p in record.get("parties", [])
    }
    query = select(SettlementLineRow).where(SettlementLineRow.round_id == rnd.id)
    if not caller.is_operator:
        query = query.where(SettlementLineRow.party_id == caller.party_id)
    lines = [
        _line(x, caller, charges.get(x.name, price * x.improvement))
        for x in s.scalars(query.order_by(SettlementLineRow.name))
    ]
    stderr = {str(p["name"]): float(p.get("payout_stderr", 0.0)) for p in record["parties"]}
    for line in lines:  # estimated shares (format 3); exact: 0
        line["payout_stderr"] = stderr.get(line["name"], 0.0)
    totals: dict[str, float] = {}
    if caller.is_operator:
        totals = {
            key: float(sum(line[key] for line in lines))
            for key in ("fee", "charge", "fee_returned", "payout", "net", "payoff", "improvement")
        }
    return {
        "round_id": rnd.id,
        "rule": record["rule"],
        "mode": record["mode"],
        "price": price,
        # records written before format 2 used the measured empty coalition, no flags
        "empty_value": record.get("empty_value", "majority"),
        "flags": [_flag(f, caller) for f in record.get("flags", [])],
        "lines": lines,
        "valuation": _valuation_view(record.get("valuation") or {}, caller),
        "totals": totals,
        "verified": bool(row.verified),
    }


@router.get("/rounds/{round_id}/audit", response_model=AuditOut)
def read_audit(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """The round's audit (operator): balance (recomputed from the ledger), verification,
    duplicate-data report and, when requested, the replication audit."""
    require_operator(caller, "read round audits")
    rnd, row = _settled(s, caller, round_id)
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


@router.get("/rounds/{round_id}/ledger", response_model=Page[LedgerEntryOut])
def read_ledger(
    round_id: str, caller: Caller, s: Db, limit: Limit = 500, offset: Offset = 0
) -> dict[str, Any]:
    """The round's append-only ledger (operator)."""
    require_operator(caller, "read ledgers")
    rnd = get_round(s, caller, round_id)
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
    return page(items, total, limit, offset)


def _own_model(s: Session, caller: Principal, round_id: str, action: str) -> ModelArtifact:
    rnd = get_round(s, caller, round_id)
    require_party(caller, f"{action} (models belong to the party they were trained for)")
    if rnd.status != "completed":
        raise ApiError(409, "round_not_settled", f"round {rnd.id} is {rnd.status}; no models yet")
    artifact = s.scalar(
        select(ModelArtifact).where(
            ModelArtifact.round_id == rnd.id, ModelArtifact.party_id == caller.party_id
        )
    )
    if artifact is None:
        raise ApiError(404, "not_found", f"round {rnd.id} trained no model for this party")
    return artifact


@router.get(
    "/rounds/{round_id}/model",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_model(round_id: str, caller: Caller, s: Db, ctx: Ctx) -> Response:
    """The caller's customised model as a skops file (party; audited), when the market's
    release policy releases it (403 naming the policy and the reason otherwise). Load it
    with ``skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))`` after
    reviewing the listed types."""
    artifact = _own_model(s, caller, round_id, "download models")
    market = s.get(Market, caller.market_id)
    assert market is not None
    try:
        release.require_release(market, artifact)
    except release.ReleaseRefused as exc:
        record_audit(
            s,
            caller.actor,
            "model_download_refused",
            "model",
            artifact.id,
            market_id=caller.market_id,
            party_id=caller.party_id,
        )
        s.commit()
        raise ApiError(403, "model_not_released", str(exc)) from None
    record_audit(
        s,
        caller.actor,
        "model_downloaded",
        "model",
        artifact.id,
        market_id=caller.market_id,
        party_id=caller.party_id,
    )
    s.commit()
    return Response(
        ctx.blobs.get(artifact.blob),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="model-{round_id}.skops"'},
    )


def _quota_error(exc: release.QuotaExceeded) -> ApiError:
    headers = {"Retry-After": str(exc.retry_after)}
    return ApiError(429, "quota_exceeded", str(exc), headers=headers)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


@router.post("/rounds/{round_id}/predict", response_model=PredictOut)
def predict(round_id: str, body: PredictIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Predictions of the caller's customised model (party; audited, with the number of
    rows); each row lists the features in the order of the round's ``config.features``.
    At most the market's ``predict_quota`` rows per party and round within
    ``predict_window_seconds``: beyond, 429 with ``Retry-After``."""
    artifact = _own_model(s, caller, round_id, "query models")
    widths = {len(r) for r in body.rows}
    if widths != {artifact.n_features}:
        bad = next(i for i, r in enumerate(body.rows) if len(r) != artifact.n_features)
        raise ApiError(
            422,
            "validation_error",
            f"rows: every row must have {artifact.n_features} features; row {bad} has "
            f"{len(body.rows[bad])}",
        )
    market = s.get(Market, caller.market_id)
    assert market is not None
    n_rows = len(body.rows)
    try:  # refuse early, before predicting; enforced again below, under a lock
        release.check_predict_quota(s, market, artifact, n_rows)
    except release.RequestOverQuota as exc:
        raise ApiError(422, "validation_error", str(exc)) from None
    except release.QuotaExceeded as exc:
        raise _quota_error(exc) from None
    model = cached_model(artifact.blob, lambda: load_model(ctx.blobs.get(artifact.blob)))
    X = np.asarray(body.rows, dtype=np.float64)
    try:
        with np.errstate(all="ignore"):
            raw = np.asarray(model.predict(X))
    except (ValueError, FloatingPointError, OverflowError) as exc:
        raise ApiError(422, "validation_error", f"rows: the model cannot use them: {exc}") from None
    predictions = [_finite_or_none(v) for v in to_jsonable(raw)]
    entry = record_audit(
        s,
        caller.actor,
        "model_queried",
        "model",
        artifact.id,
        market_id=caller.market_id,
        party_id=caller.party_id,
    )
    assert caller.party_id is not None
    try:
        release.record_prediction(
            s, market, artifact, caller.party_id, n_rows, getattr(entry, "id", None)
        )
    except release.QuotaExceeded as exc:
        s.rollback()
        raise _quota_error(exc) from None
    s.commit()
    return {"predictions": predictions}
