"""The value job: parties → coalition utility → value table → solution concepts.

This is the library function behind ``coopml value CONFIG.toml``; the CLI only parses
arguments and renders what this returns.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coopml import __version__
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.result import ValuationResult
from coopml.config import Method, ValueConfig, build_learner, build_parties
from coopml.data import party_warnings
from coopml.learning import CoalitionUtility

__all__ = ["ValueReport", "run_value_job", "value_utility"]

EXACT_METHODS = ("shapley", "banzhaf", "loo", "least_core", "nucleolus")
#: The one-row / one-class warnings of :func:`party_warnings` (repeated per file).
SMALL_PARTY = re.compile(r" has a single (training row|class)")


@dataclass(frozen=True)
class ValueReport:
    """Everything a value job produced."""

    names: tuple[str, ...]
    n_samples: tuple[int, ...]
    results: dict[str, ValuationResult]
    game: CoalitionGame | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, max_table_players: int = 16) -> dict[str, Any]:
        """JSON-serialisable report; the value table is included up to
        ``max_table_players`` players (2**16 entries)."""
        out: dict[str, Any] = {
            "coopml_version": __version__,
            "parties": [
                {"name": n, "n_samples": s} for n, s in zip(self.names, self.n_samples, strict=True)
            ],
            "results": {k: r.to_dict() for k, r in self.results.items()},
            "info": self.info,
        }
        if self.game is not None:
            out["game"] = {"info": dict(self.game.info)}
            if self.game.n_players <= max_table_players:
                out["game"]["value_table"] = self.game.table.tolist()
        return out


def value_utility(
    utility: CoalitionUtility,
    methods: Sequence[Method] = ("shapley",),
    *,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    cache_dir: str | Path | None = None,
    max_evaluations: int = 20_000,
    stderr_target: float | None = None,
    random_state: int | None = 0,
    progress: ProgressCallback | None = None,
    data_warnings: Sequence[str] = (),
) -> ValueReport:
    """Run the requested solution concepts on a coalition utility.

    ``info["warnings"]`` holds :func:`party_warnings` and ``data_warnings`` (what
    reading the data warned about, e.g. a validation category no party has).

    Exact methods share one value table; ``"monte_carlo"`` samples permutations with
    the evaluation budget ``max_evaluations`` (stopping early at ``stderr_target``).
    With ``cache_dir`` both are checkpointed there, so an interrupted job resumes where
    it stopped (docs/valuation.md, "Interrupt and resume").
    """
    results: dict[str, ValuationResult] = {}
    game = None
    if any(m in EXACT_METHODS for m in methods):
        game = CoalitionGame.from_utility(
            utility, executor, n_jobs, cache_dir=cache_dir, progress=progress
        )
        for method in methods:
            if method in EXACT_METHODS:
                results[method] = getattr(game, method)()
    if "monte_carlo" in methods:
        from coopml.coalitions.monte_carlo import monte_carlo_shapley
        from coopml.coalitions.stopping import (
            MaxEvaluations,
            StandardErrorBelow,
            StoppingRule,
        )

        # The budget counts fitted models (distinct coalitions), never overrun. A game
        # has only 2**n coalitions: with a larger budget the run stops once every
        # coalition has been evaluated.
        n = utility.n_players
        budget = max_evaluations if n > 62 else min(max_evaluations, 2**n)
        stopping: StoppingRule = MaxEvaluations(budget)
        if stderr_target is not None:
            stopping = stopping | StandardErrorBelow(stderr_target)
        results["monte_carlo"] = monte_carlo_shapley(
            utility,
            stopping=stopping,
            executor=executor,
            n_jobs=n_jobs,
            random_state=random_state,
            cache_dir=cache_dir,
            progress=progress,
        )
    n_samples = tuple(p.n_samples for p in utility.parties)
    info: dict[str, Any] = {"learner": repr(utility.learner), "scorer": utility.scorer_name}
    fast = utility.fast_learner
    info["fast_path"] = None if fast is None else type(fast).__name__
    classification = utility.is_classifier
    info["warnings"] = [
        *party_warnings(utility.parties, classification=classification),
        *data_warnings,
    ]
    return ValueReport(utility.names, n_samples, results, game, info)


def run_value_job(
    cfg: ValueConfig, base_dir: Path = Path(), progress: ProgressCallback | None = None
) -> ValueReport:
    """Build parties, learner and utility from a config and value the parties."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parties, validation = build_parties(cfg, base_dir)
    data_warnings: list[str] = []
    for warning in caught:  # kept in the report, and still warned
        message = str(warning.message)
        if issubclass(warning.category, UserWarning) and not SMALL_PARTY.search(message):
            data_warnings.append(message)
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    v = cfg.valuation
    utility = CoalitionUtility(
        build_learner(cfg.learner, cfg.preprocessing),
        parties,
        validation,
        v.scorer,
        random_state=v.random_state,
    )
    cache = None if v.cache_dir is None else base_dir / v.cache_dir
    where = cfg.executor_settings  # [executor], or [valuation] executor/n_jobs
    return value_utility(
        utility,
        v.methods,
        executor=where.build(),
        n_jobs=where.n_jobs,
        cache_dir=cache,
        max_evaluations=v.max_evaluations,
        stderr_target=v.stderr_target,
        random_state=v.random_state,
        progress=progress,
        data_warnings=list(dict.fromkeys(data_warnings)),
    )
