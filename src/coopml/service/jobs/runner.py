"""Running one round: decrypt the datasets, call :func:`coopml.market.run_market`,
store the customised models and settle exactly once.

The computation happens outside any transaction; the settlement (settlement record and
lines, ledger entries, model references, the round's completion and the job's) is one
transaction that first checks, with a conditional update, that this worker still holds
the job, and is guarded by the unique ``settlements.round_id``: a round can only be
settled once, whatever happens to the workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from coopml._serialization import to_jsonable
from coopml.data import Party
from coopml.market import MarketResult, ReplicationAudit, replication_audit, run_market
from coopml.service.artifacts import dump_model
from coopml.service.context import ServiceContext, record_audit
from coopml.service.jobs.ledger import ledger_rows
from coopml.service.jobs.queue import Claim
from coopml.service.learners import build_learner, scorer_for
from coopml.service.storage.models import (
    Dataset,
    Job,
    LedgerEntry,
    Market,
    ModelArtifact,
    Round,
    SettlementLineRow,
    SettlementRow,
    utcnow,
)
from coopml.service.tables import parse_table, to_arrays

__all__ = ["LeaseLost", "RoundOutcome", "compute_round", "settle_round"]


class LeaseLost(RuntimeError):
    """This worker no longer owns the job; its work must be abandoned."""


@dataclass(frozen=True)
class RoundOutcome:
    """What a computed round produced, ready to be settled."""

    result: MarketResult
    replication: ReplicationAudit | None
    party_ids: dict[str, str]
    model_blobs: dict[str, str]
    n_features: int


def _load(ctx: ServiceContext, ds: Dataset, features: list[str], task: str) -> tuple[Any, Any]:
    data = ctx.blobs.get(ds.blob)
    table = parse_table(data, f"x.{ds.format}", ds.target, task)
    return to_arrays(table, features)


def _stack(parts: list[tuple[NDArray[Any], NDArray[Any]]]) -> tuple[NDArray[Any], NDArray[Any]]:
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def build_inputs(
    ctx: ServiceContext, config: dict[str, Any], task: str
) -> tuple[list[Party], tuple[Any, Any] | None, dict[str, str]]:
    """The round's parties (and shared validation data) from the snapshot in ``config``."""
    inputs = config["_inputs"]
    features = list(inputs["features"])
    with ctx.db.session() as s:
        ids = [i for e in inputs["parties"] for i in e["train"] + e["validation"]]
        ids += inputs["shared_validation"]
        rows = {d.id: d for d in s.scalars(select(Dataset).where(Dataset.id.in_(set(ids))))}
    cache: dict[str, tuple[Any, Any]] = {}

    def arrays(dataset_id: str) -> tuple[Any, Any]:
        if dataset_id not in cache:
            cache[dataset_id] = _load(ctx, rows[dataset_id], features, task)
        return cache[dataset_id]

    per_party = config["tasks"] == "per_party"
    parties = []
    for entry in inputs["parties"]:
        X, y = _stack([arrays(i) for i in entry["train"]])
        if per_party:
            X_val, y_val = _stack([arrays(i) for i in entry["validation"]])
            parties.append(Party(entry["name"], X, y, X_val, y_val))
        else:
            parties.append(Party(entry["name"], X, y))
    validation = None if per_party else _stack([arrays(i) for i in inputs["shared_validation"]])
    party_ids = {e["name"]: e["party_id"] for e in inputs["parties"]}
    return parties, validation, party_ids


class _Progress:
    """Turns coalition-table progress into the round's progress (throttled writes)."""

    def __init__(self, report: Callable[[float, str], None], n_tables: int) -> None:
        self.report, self.n_tables = report, max(1, n_tables)
        self.table, self.last_done, self.last_write = 0, -1, 0.0

    def __call__(self, done: int, total: int) -> None:
        if done < self.last_done:
            self.table = min(self.table + 1, self.n_tables - 1)
        self.last_done = done
        now = time.monotonic()
        if now - self.last_write < 0.5 and done < total:
            return
        self.last_write = now
        fraction = (self.table + (done / total if total else 1.0)) / self.n_tables
        self.report(0.05 + 0.8 * fraction, f"valuing coalitions ({done}/{total})")


def compute_round(
    ctx: ServiceContext,
    claim: Claim,
    report: Callable[[float, str], None],
    lost: Callable[[], bool],
) -> RoundOutcome:
    """Train, value and customise (no database writes except progress)."""
    with ctx.db.session() as s:
        rnd = s.get(Round, claim.round_id)
        assert rnd is not None
        market = s.get(Market, rnd.market_id)
        assert market is not None
        config, task = dict(rnd.config), market.task
    report(0.02, "loading datasets")
    parties, validation, party_ids = build_inputs(ctx, config, task)
    learner = build_learner(config["learner"], task)
    options: dict[str, Any] = {
        "price": float(config["fee_price"]),
        "scorer": scorer_for(task),
        "duplicates": config["duplicates"],
        # rounds opened before the option existed used the measured value ("majority")
        "empty_value": config.get("empty_value", "majority"),
        "executor": ctx.settings.executor,
        "n_jobs": ctx.settings.n_jobs,
    }
    n_tables = len(parties) if config["tasks"] == "per_party" else 1
    tracker = _Progress(report, n_tables)

    def progress(done: int, total: int) -> None:
        if lost():
            raise LeaseLost("lease lost")
        tracker(done, total)

    result = run_market(
        parties,
        learner,
        validation,
        rule=config["payment_rule"],
        random_state=int(config["random_state"]),
        progress=progress,
        **options,
    )
    replication = None
    if config.get("replication_party"):
        report(0.87, "replication audit")
        replication = replication_audit(
            parties,
            learner,
            validation,
            party=config["replication_party"],
            replicas=(1, 2),
            random_state=int(config["random_state"]),
            **options,
        )
    delay = ctx.settings.round_delay_seconds
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline:  # test-only: a window in which to kill the worker
        if lost():
            raise LeaseLost("lease lost")
        report(0.9, "settling (delayed)")
        time.sleep(min(0.05, delay))
    if lost():
        raise LeaseLost("lease lost")
    report(0.95, "storing models")
    blobs = {name: ctx.blobs.put(dump_model(m.estimator)) for name, m in result.models.items()}
    n_features = parties[0].X.shape[1]
    return RoundOutcome(result, replication, party_ids, blobs, n_features)


def json_safe(obj: Any) -> Any:
    """``to_jsonable`` plus: callables and other objects become their names/reprs, and
    non-finite floats become None (JSON has no NaN)."""
    obj = to_jsonable(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    if callable(obj):
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"
    return repr(obj)


def settle_round(ctx: ServiceContext, claim: Claim, worker: str, outcome: RoundOutcome) -> bool:
    """Write the settlement in one transaction; False when another worker owns or has
    already settled the round (nothing is written then)."""
    settlement = outcome.result.settlement
    verification = settlement.verify()
    duplicates = outcome.result.duplicates
    audit = {
        "verification": {"ok": verification.ok, "problems": list(verification.problems)},
        "duplicates": None if duplicates is None else json_safe(duplicates.to_dict()),
        "duplicate_actions": json_safe(outcome.result.duplicate_actions),
        "replication": None
        if outcome.replication is None
        else json_safe(outcome.replication.to_dict()),
    }
    try:
        with ctx.db.session() as s:
            now = utcnow()
            owned = s.execute(
                update(Job)
                .where(Job.id == claim.job_id, Job.lease_owner == worker, Job.status == "running")
                .values(status="done", lease_expires_at=None, updated_at=now)
            )
            if owned.rowcount != 1:  # type: ignore[attr-defined]
                raise LeaseLost("lease lost before settling")
            rnd = s.get(Round, claim.round_id)
            assert rnd is not None
            s.add(
                SettlementRow(
                    round_id=rnd.id,
                    record=json_safe(settlement.to_dict()),
                    audit=audit,
                    verified=verification.ok,
                    worker=worker,
                )
            )
            s.flush()  # the unique round_id rejects a second settlement here
            for line in settlement.parties:
                pid = outcome.party_ids[line.name]
                s.add(
                    SettlementLineRow(
                        round_id=rnd.id,
                        party_id=pid,
                        name=line.name,
                        fee=line.fee,
                        payout=line.payout,
                        net=line.net_gain,
                        payoff=line.payoff,
                        improvement=line.improvement,
                        share=line.share,
                        value_before=line.own_gain,
                        value_after=line.model_gain,
                        members=list(line.members),
                    )
                )
                model = outcome.result.models[line.name]
                s.add(
                    ModelArtifact(
                        round_id=rnd.id,
                        party_id=pid,
                        blob=outcome.model_blobs[line.name],
                        n_features=outcome.n_features,
                        members=list(model.members),
                    )
                )
            for seq, (pid, kind, amount) in enumerate(ledger_rows(settlement, outcome.party_ids)):
                s.add(LedgerEntry(seq=seq, round_id=rnd.id, party_id=pid, kind=kind, amount=amount))
            rnd.status = "completed"
            rnd.progress = 1.0
            rnd.finished_at = now
            rnd.message = "settled" + ("" if verification.ok else " (verification FAILED)")
            record_audit(
                s, f"worker:{worker}", "round_settled", "round", rnd.id, market_id=rnd.market_id
            )
    except (LeaseLost, IntegrityError):
        return False
    return True
