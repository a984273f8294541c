"""Running one round: decrypt the datasets, call :func:`coopml.market.run_market`,
store the customised models and settle exactly once.

The computation happens outside any transaction; the settlement (settlement record and
lines, ledger entries, model references, the round's completion and the job's) is one
transaction that first checks, with a conditional update, that this worker still holds
the job, and is guarded by the unique ``settlements.round_id``: a round can only be
settled once, whatever happens to the workers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from coopml._serialization import to_jsonable
from coopml.market import MarketResult, ReplicationAudit, replication_audit, run_market
from coopml.market.sampled_shares import market_stopping
from coopml.service.artifacts import dump_model
from coopml.service.context import ServiceContext, record_audit
from coopml.service.domain import release
from coopml.service.domain.datasets import RoundInputs, load_round_inputs
from coopml.service.domain.rounds import RoundConfig
from coopml.service.jobs.ledger import write_ledger
from coopml.service.jobs.queue import Claim
from coopml.service.learners import build_learner, scorer_for
from coopml.service.storage.models import (
    Job,
    Market,
    ModelArtifact,
    Round,
    SettlementLineRow,
    SettlementRow,
    utcnow,
)

__all__ = ["BeforeSettle", "LeaseLost", "RoundOutcome", "compute_round", "settle_round"]

log = logging.getLogger("coopml.service.jobs.runner")

#: A hook run after a round is valued and before its models are checked, stored and
#: settled, with the round's ``report(progress, message)`` and ``lost()`` callbacks
#: (raise :class:`LeaseLost` when ``lost()``). Tests inject one to hold a round open
#: while they kill its worker (``tests/service/slow_worker.py``); production runs none.
BeforeSettle = Callable[[Callable[[float, str], None], Callable[[], bool]], None]


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
    #: Per party name: the release check of its model (``releasable``, ``reason``, ...).
    release_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Parties whose exact duplicate training rows were dropped before valuation.
    own_duplicates: list[dict[str, Any]] = field(default_factory=list)
    #: Parties custody: the models' feature columns, in order (stored on the round when
    #: the market declared no schema).
    features: list[str] = field(default_factory=list)


def build_inputs(
    ctx: ServiceContext, config: RoundConfig, task: str, market_id: str
) -> RoundInputs:
    """The round's parties (and shared validation data) from the snapshot in ``config``:
    each dataset checked against the market's schema (a :class:`DatasetFault` names the
    one that cannot be used), each party's training rows made distinct
    (:func:`coopml.service.domain.datasets.load_round_inputs`)."""
    return load_round_inputs(ctx, config, task, market_id)


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
    before_settle: BeforeSettle | None = None,
) -> RoundOutcome:
    """Train, value and customise (no database writes except progress)."""
    with ctx.db.session() as s:
        rnd = s.get(Round, claim.round_id)
        assert rnd is not None
        market = s.get(Market, rnd.market_id)
        assert market is not None
        # rounds opened before an option existed read back with its default
        config, task, market_id = RoundConfig.of(rnd), market.task, market.id
        custody = market.custody
    if custody == "parties":
        return compute_custody_round(ctx, claim, config, task, report)
    report(0.02, "loading datasets")
    inputs = build_inputs(ctx, config, task, market_id)
    parties, validation, party_ids = inputs.parties, inputs.validation, inputs.party_ids
    learner = build_learner(config.learner.model_dump(), task)
    options: dict[str, Any] = {
        "price": config.fee_price,
        "scorer": scorer_for(task),
        "duplicates": config.duplicates,
        "empty_value": config.empty_value,
        "executor": ctx.settings.build_executor(),  # COOPML_EXECUTOR, _RAY_ADDRESS, ...
        "n_jobs": ctx.settings.n_jobs,
    }
    n_tables = len(parties) if config.tasks == "per_party" else 1
    tracker = _Progress(report, n_tables)

    def progress(done: int, total: int) -> None:
        if lost():
            raise LeaseLost("lease lost")
        tracker(done, total)

    options["valuation"] = config.valuation
    if config.valuation != "exact":  # an exact valuation has no budget
        options["stopping"] = market_stopping(config.max_evaluations, config.stderr_target)
    result = run_market(
        parties,
        learner,
        validation,
        rule=config.payment_rule,
        random_state=config.random_state,
        progress=progress,
        **options,
    )
    replication = None
    if config.replication_party:
        report(0.87, "replication audit")
        replication = replication_audit(
            parties,
            learner,
            validation,
            party=config.replication_party,
            replicas=(1, 2),
            random_state=config.random_state,
            **options,
        )
    if before_settle is not None:
        before_settle(report, lost)
    if lost():
        raise LeaseLost("lease lost")
    report(0.93, "checking models for other parties' rows")
    checks = release.check_models(parties, result.models)
    if lost():
        raise LeaseLost("lease lost")
    report(0.95, "storing models")
    blobs = {name: ctx.blobs.put(dump_model(m.estimator)) for name, m in result.models.items()}
    n_features = parties[0].X.shape[1]
    return RoundOutcome(
        result, replication, party_ids, blobs, n_features, checks, inputs.own_duplicates
    )


def compute_custody_round(
    ctx: ServiceContext,
    claim: Claim,
    config: RoundConfig,
    task: str,
    report: Callable[[float, str], None],
) -> RoundOutcome:
    """A parties-custody round over Flower's deployment runtime
    (:func:`coopml.service.custody.run_custody_round`): no row is read here; the
    settlement and each party's customised model (computed by the operator from the
    agents' statistics: coefficients and class moments, no row) come back from
    coopml's ServerApp. The models are stored as in operator custody, so prediction and
    the release policy apply; the release check cannot look for other parties' rows
    (the operator holds none), so no model counts as releasable under
    ``aggregate_only``."""
    from coopml.custody.learners import learner_spec
    from coopml.custody.market import custom_models
    from coopml.market.settlement import Settlement
    from coopml.service.custody import CustodyFault, run_custody_round

    party_ids = {p.name: p.party_id for p in config.inputs.parties}
    job = {
        "names": list(party_ids),
        "learner": learner_spec(build_learner(config.learner.model_dump(), task)),
        "validator": config.validation_party if config.tasks == "single" else None,
        # the agents' scorer of the market's gain: accuracy, or clipped R² (regression)
        "scorer": "accuracy" if task == "classification" else "clipped_r2",
        "rule": config.payment_rule,
        "price": config.fee_price,
        "empty_value": config.empty_value,
        # a large single-task market is valued by sampling, as in operator custody
        "valuation": config.valuation,
        "max_evaluations": config.max_evaluations,
        "stderr_target": config.stderr_target,
        "random_state": config.random_state,
    }
    report(0.05, "waiting for the parties' agents")
    result = run_custody_round(ctx, claim.round_id, job, party_ids)
    settlement = Settlement.from_dict(result["settlement"])
    models = custom_models(result.get("models") or {})
    declared = list(config.inputs.features)
    features = [str(f) for f in result.get("features") or []] or declared
    if declared and features != declared:  # never by position
        raise CustodyFault(
            f"the agents' feature columns {features} differ from the market's schema "
            f"{declared}; their models would read rows in another order"
        )
    missing = sorted(set(party_ids) - set(models))
    if missing:
        raise CustodyFault(f"the ServerApp returned no model for {missing}")
    widths = {
        name: int(m.estimator.n_features_in_)
        for name, m in models.items()
        if not type(m.estimator).__name__.startswith("Dummy")  # constants read no column
    }
    wrong = {name: d for name, d in widths.items() if features and d != len(features)}
    if wrong:
        raise CustodyFault(
            f"models of {sorted(wrong)} read {sorted(set(wrong.values()))} features, not the "
            f"{len(features)} columns {features}"
        )
    if not features:  # the models' input order is unknown: offer no prediction
        log.warning("round %s: the agents named no feature columns; no model kept", claim.round_id)
        models = {}
    report(0.95, "storing models")
    blobs = {name: ctx.blobs.put(dump_model(m.estimator)) for name, m in models.items()}
    why = (
        "parties custody: the operator holds no training row to check the model "
        "against, so it is not released under 'aggregate_only'"
    )
    checks = {name: {"releasable": False, "reason": why} for name in models}
    market_result = MarketResult(settlement=settlement, models=models, games=())
    return RoundOutcome(
        market_result, None, party_ids, blobs, len(features), checks, features=features
    )


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


def _duplicates_audit(report: Any, own: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The duplicate screening's findings: across parties (and exact feature duplicates
    left within a party) from the round's report, plus the exact duplicate training rows
    dropped within each party before valuation (``dropped_within_party``)."""
    audit = None if report is None else json_safe(report.to_dict())
    if own:
        audit = audit or {"flagged": False, "pairs": []}
        audit["dropped_within_party"] = json_safe(own)
        audit["flagged"] = True
    return audit


def settle_round(ctx: ServiceContext, claim: Claim, worker: str, outcome: RoundOutcome) -> bool:
    """Write the settlement in one transaction; False when another worker owns or has
    already settled the round (nothing is written then)."""
    settlement = outcome.result.settlement
    verification = settlement.verify()
    duplicates = outcome.result.duplicates
    audit = {
        "verification": {"ok": verification.ok, "problems": list(verification.problems)},
        "duplicates": _duplicates_audit(duplicates, outcome.own_duplicates),
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
                        net_gain=line.net_gain,
                        payoff=line.payoff,
                        improvement=line.improvement,
                        share=line.share,
                        own_gain=line.own_gain,
                        model_gain=line.model_gain,
                        members=list(line.members),
                    )
                )
                if line.name not in outcome.result.models:  # parties custody: no model
                    continue
                model = outcome.result.models[line.name]
                check = outcome.release_checks.get(line.name, {})
                s.add(
                    ModelArtifact(
                        round_id=rnd.id,
                        party_id=pid,
                        blob=outcome.model_blobs[line.name],
                        n_features=outcome.n_features,
                        members=list(model.members),
                        releasable=check.get("releasable"),
                        release_check=json_safe(check) if check else None,
                    )
                )
            write_ledger(s, rnd.id, settlement, outcome.party_ids)
            inputs = dict(rnd.config).get("_inputs") or {}
            if outcome.features and not inputs.get("features"):
                # parties custody without a declared schema: the agents' column order,
                # which predict rows must follow (shown as the round's features)
                rnd.config = {**rnd.config, "_inputs": {**inputs, "features": outcome.features}}
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
