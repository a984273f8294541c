"""Coverage of the Monte Carlo estimators' confidence intervals on exactly solved games.

For every game of :func:`coopml.coalitions.reference_games.reference_suite` (weighted
and symmetric voting, glove with equal and unequal sides, airport, miner, additive, a
random non-monotone Harsanyi game with v(empty) = 1) at 20, 50 and 100 players, plus the
51-player electoral-college game of Castro, Gómez & Tejada (2009), every sampling
estimator of ``coopml.coalitions`` is run with its defaults except
``stopping=MaxEvaluations(B)``, for each budget B and R seeds
(:func:`coopml.coalitions.reference_games.coverage`). Reported per cell:

- coverage: fraction of (player, seed) pairs with |estimate - truth| <= 1.96 stderr
  (Shapley estimators against the exact Shapley value, ``msr_banzhaf`` against the
  exact Banzhaf value); about 0.95 when the standard errors are right;
- min player: the worst player's coverage over the seeds;
- mean z^2: mean of ((estimate - truth) / stderr)^2, about 1 when the standard errors
  are right (above: too small, below: too large);
- efficiency: fraction of runs whose efficiency gap sum(estimate) - (v(N) - v(empty))
  lies within 1.96 of its standard error (``info["efficiency_gap_stderr"]``, else the
  root sum of squared standard errors), and the largest |gap| / stderr;
- evals/B: the largest ``n_evaluations / B`` over the seeds (and the coalition values
  the estimator actually requested from the game, when different);
- s/run: mean wall time of one run.

An estimator that refuses a game or budget (e.g. more than 62 players, or a budget
below its pilot) is listed as "refused" with its message.

Usage (from the repository root)::

    python benchmarks/bench_coverage.py                      # 20, 50, 100 players; R = 20
    python benchmarks/bench_coverage.py --quick              # 20 players, 2,000 and 10,000; R = 5
    python benchmarks/bench_coverage.py --sizes 20 --budgets 2000 --repetitions 10 \\
        --estimators msr_banzhaf --games miner airport --out /tmp/coverage.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coopml.coalitions import monte_carlo_shapley, msr_banzhaf, stratified_shapley, svarm_shapley
from coopml.coalitions.reference_games import (
    CoverageResult,
    ReferenceGame,
    castro_voting_reference,
    coverage,
    reference_suite,
)
from coopml.coalitions.result import ValuationResult

ESTIMATORS: dict[str, Callable[..., ValuationResult]] = {
    "monte_carlo_shapley": monte_carlo_shapley,
    "stratified_shapley": stratified_shapley,
    "svarm_shapley": svarm_shapley,
    "msr_banzhaf": msr_banzhaf,
}
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50, 100])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2_000, 10_000, 100_000])
    parser.add_argument("--repetitions", "-R", type=int, default=20)
    parser.add_argument("--estimators", nargs="+", choices=sorted(ESTIMATORS), default=None)
    parser.add_argument("--games", nargs="+", default=None, help="game names to keep")
    parser.add_argument("--no-castro", action="store_true", help="skip the 51-player game")
    parser.add_argument("--seed", type=int, default=0, help="first random_state")
    parser.add_argument("--z", type=float, default=1.96)
    parser.add_argument("--out", type=Path, default=HERE / "coverage_results.json")
    parser.add_argument("--quick", action="store_true", help="20 players, B <= 10,000, R = 5")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.budgets, args.repetitions = [20], [2_000, 10_000], 5
        args.no_castro = True
    return args


def games_for(args: argparse.Namespace) -> list[ReferenceGame]:
    games = reference_suite(args.sizes)
    if not args.no_castro:
        games.append(castro_voting_reference())
    games.sort(key=lambda g: g.n_players)
    if args.games:
        games = [g for g in games if g.name in args.games]
    return games


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "–" if value is None or value != value else format(value, spec)


def markdown(results: list[CoverageResult]) -> str:
    head = (
        "| game | n | estimator | B | coverage | min player | mean z² | efficiency "
        "| max \\|gap\\|/se | evals/B | s/run |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    rows = [head]
    for r in results:
        if r.refused is not None:
            message = r.refused.replace("|", "/")
            message = message if len(message) <= 90 else message[:87] + "..."
            rows.append(
                f"| {r.game} | {r.n_players} | {r.estimator} | {r.budget:,} "
                f"| refused | | | | | | {message} |"
            )
            continue
        evals = fmt(r.max_evaluation_ratio, ".2f")
        if abs(r.max_call_ratio - r.max_evaluation_ratio) > 1e-9:
            evals += f" ({fmt(r.max_call_ratio, '.2f')} requested)"
        rows.append(
            f"| {r.game} | {r.n_players} | {r.estimator} | {r.budget:,} "
            f"| {fmt(r.coverage)} | {fmt(r.min_player_coverage, '.2f')} | {fmt(r.mean_z2, '.2f')} "
            f"| {fmt(r.efficiency_coverage, '.2f')} | {fmt(r.max_efficiency_z, '.2f')} "
            f"| {evals} | {fmt(r.seconds, '.3f')} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    estimators = {k: ESTIMATORS[k] for k in (args.estimators or ESTIMATORS)}
    start = time.perf_counter()
    games = games_for(args)
    print(f"{len(games)} games built in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    results: list[CoverageResult] = []
    for game in games:
        for label, estimator in estimators.items():
            for budget in args.budgets:
                t0 = time.perf_counter()
                result = coverage(
                    estimator,
                    game,
                    budget,
                    repetitions=args.repetitions,
                    z=args.z,
                    seed=args.seed,
                    name=label,
                )
                results.append(result)
                status = "refused" if result.refused else f"coverage {fmt(result.coverage)}"
                print(
                    f"{game.name:>16} n={game.n_players:<4} {label:<20} B={budget:<7} "
                    f"{status} ({time.perf_counter() - t0:.1f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    table = markdown(results)
    print(table)
    out = {
        "benchmark": "coverage",
        "sizes": args.sizes,
        "budgets": args.budgets,
        "repetitions": args.repetitions,
        "z": args.z,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "results": [r.to_dict() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
