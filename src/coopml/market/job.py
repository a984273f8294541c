"""The market job: a TOML config → parties → market round (→ replication audit).

The library function behind ``coopml market run``; the CLI only renders its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.base import is_classifier

from coopml.coalitions.executors import ProgressCallback
from coopml.config import MarketConfig, build_job_data, build_learner
from coopml.data import Party, party_warnings
from coopml.data.preprocessing import TabularSchema
from coopml.market.market import MarketResult, run_market
from coopml.market.replication import ReplicationAudit, replication_audit
from coopml.market.sampled_shares import market_stopping

__all__ = ["MarketJob", "run_market_job"]


@dataclass(frozen=True, eq=False)
class MarketJob:
    """A settled round and, when configured, its replication audit.

    ``parties`` are the parties as the round saw them (for exporting their models);
    ``warnings`` name parties too small to value meaningfully (one row, one class),
    shown in the terminal output and the report. ``schema`` (feature columns by name
    and their fixed encoding) and ``targets`` (each party's target column) say how a
    party's raw rows become model inputs; both are None for bundled example data.
    """

    result: MarketResult
    audit: ReplicationAudit | None = None
    parties: tuple[Party, ...] = ()
    warnings: tuple[str, ...] = ()
    schema: TabularSchema | None = None
    targets: dict[str, str] | None = None


def run_market_job(
    cfg: MarketConfig,
    base_dir: Path = Path(),
    progress: ProgressCallback | None = None,
    *,
    audit: bool = True,
    cache_dir: Path | None = None,
) -> MarketJob:
    """Run the market described by ``cfg`` (and its ``[audit]`` when ``audit``);
    ``cache_dir`` keeps the market's gains for a rerun (:func:`run_market`)."""
    m = cfg.market
    # an exact valuation has no budget (the job file refuses one with it)
    stopping = (
        None if m.valuation == "exact" else market_stopping(m.max_evaluations, m.stderr_target)
    )
    multi = m.mode == "multi"
    parties, validation, schema, targets = build_job_data(cfg, base_dir, own_validation=multi)
    options: dict[str, Any] = {
        "price": m.price,
        "scorer": m.scorer,
        "duplicates": m.duplicates,
        "tolerance": m.tolerance,
        "discount": m.discount,
        "empty_value": m.empty_value,
        "executor": cfg.executor_settings.build(),  # [executor], or [market] executor/n_jobs
        "n_jobs": cfg.executor_settings.n_jobs,
    }
    shared = None if multi else validation
    learner = build_learner(cfg.learner, cfg.preprocessing)
    result = run_market(
        parties,
        learner,
        shared,
        rule=m.rule,
        random_state=m.random_state,
        progress=progress,
        valuation=m.valuation,
        stopping=stopping,
        cache_dir=cache_dir,
        **options,
    )
    report = None
    if audit and cfg.audit is not None:
        a = cfg.audit
        report = replication_audit(
            parties,
            learner,
            shared,
            party=a.party,
            replicas=a.replicas,
            kinds=a.kinds,
            noise=a.noise,
            random_state=m.random_state or 0,
            valuation=m.valuation,
            stopping=stopping,
            **options,
        )
    found = party_warnings(parties, classification=is_classifier(learner))
    return MarketJob(
        result,
        report,
        parties=tuple(parties),
        warnings=tuple(found),
        schema=schema,
        targets=targets,
    )
