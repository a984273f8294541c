"""Coverage of the sampling estimators' confidence intervals on exactly solved games.

Each estimator runs with its defaults and ``stopping=MaxEvaluations(budget)`` on every
20-player reference game for ten seeds (:func:`coopml.coalitions.reference_games.coverage`,
the harness of ``benchmarks/bench_coverage.py``). With correct standard errors about
95% of the intervals ``estimate ± 1.96 stderr`` hold the exact value; at least 90% must,
and every Shapley estimate's efficiency gap ``sum(estimate) - (v(N) - v(empty))`` must
lie within three of its standard errors.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from coopml.coalitions import monte_carlo_shapley, msr_banzhaf, stratified_shapley, svarm_shapley
from coopml.coalitions.reference_games import (
    CoverageResult,
    ReferenceGame,
    castro_voting_reference,
    coverage,
    reference_suite,
)
from coopml.coalitions.result import ValuationResult

ESTIMATORS: list[Callable[..., ValuationResult]] = [
    monte_carlo_shapley,
    stratified_shapley,
    svarm_shapley,
    msr_banzhaf,
]
GAMES = reference_suite([20])
SEEDS = 10
MIN_COVERAGE = 0.90
MAX_EFFICIENCY_Z = 3.0


def _check(result: CoverageResult) -> None:
    where = f"{result.estimator} on {result.game} ({result.n_players} players, B={result.budget})"
    assert result.refused is None, f"{where} refused: {result.refused}"
    assert result.coverage >= MIN_COVERAGE, (
        f"{where}: coverage {result.coverage:.3f} < {MIN_COVERAGE} (worst player "
        f"{result.min_player_coverage:.2f}, mean z^2 {result.mean_z2:.2f})"
    )
    if result.target == "shapley":
        assert result.max_efficiency_z is not None
        assert result.max_efficiency_z <= MAX_EFFICIENCY_Z, (
            f"{where}: efficiency gap {result.max_efficiency_z:.2f} standard errors "
            f"(> {MAX_EFFICIENCY_Z})"
        )


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("game", GAMES, ids=lambda g: g.name)
def test_coverage_at_2000_evaluations(
    game: ReferenceGame, estimator: Callable[..., ValuationResult]
) -> None:
    _check(coverage(estimator, game, 2_000, repetitions=SEEDS))


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: e.__name__)
@pytest.mark.parametrize("game", [*GAMES, castro_voting_reference()], ids=lambda g: g.name)
def test_coverage_at_10000_evaluations(
    game: ReferenceGame, estimator: Callable[..., ValuationResult]
) -> None:
    _check(coverage(estimator, game, 10_000, repetitions=SEEDS))
