"""Solve-time benchmark of coopml.contracts (optimal contracts paid with models).

Run from the repository root:

    .venv/bin/python benchmarks/bench_contracts.py [--skip-large]

Prints one table: the paper's three multi-type scenarios (N = 10, I = 5; the authors'
scipy trust-constr reference takes about 1.7 s, 1.1 s and 34.8 s on a 2-core machine),
growth with N (I = 5) and with I (N = 10), and I = 10 types at N = 20 (10,015,005
outcomes). Times are wall-clock and process CPU seconds for one verified solve, outcome
enumeration included (CPU time is the fairer measure on a shared machine); each menu
is checked (IR, IC, BC, realised rewards to 1e-6) and certified
optimal by the KKT residual.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from coopml.contracts import ContractProblem, solve_contract

SCENARIOS = {
    "scenario 1": ([0.20, 0.16, 0.12, 0.08, 0.04], 1.7),
    "scenario 2": ([1.0, 0.85, 0.70, 0.55, 0.40], 1.1),
    "scenario 3 (badly scaled)": ([0.5, 0.4, 0.03, 0.02, 0.001], 34.8),
}


def timed(n: int, costs: list[float]) -> tuple[float, float, object]:
    start, cpu = time.perf_counter(), time.process_time()
    problem = ContractProblem(n, costs, [1.0] * len(costs))
    result = solve_contract(problem)
    return time.perf_counter() - start, time.process_time() - cpu, result


def row(label: str, n: int, costs: list[float], reference: str = "") -> str:
    seconds, cpu, res = timed(n, costs)
    info = res.info  # type: ignore[attr-defined]
    return (
        f"| {label:<28} | {n:>3} | {len(costs):>2} | {info['n_outcomes']:>10,} | "
        f"{seconds:>8.2f} | {cpu:>7.2f} | {res.verified!s:>8} | {info['optimal']!s:>7} | "  # type: ignore[attr-defined]
        f"{reference:>9} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-large", action="store_true", help="skip I = 10, N = 20")
    args = parser.parse_args()
    print(
        f"coopml.contracts solve times ({platform.processor() or platform.machine()}, "
        f"numpy {np.__version__})\n"
    )
    print(
        "| case                         |   N |  I |   outcomes | wall (s) | cpu (s) | verified "
        "| optimal | paper (s) |"
    )
    print(
        "|------------------------------|-----|----|------------|----------|---------|----------"
        "|---------|-----------|"
    )
    timed(10, SCENARIOS["scenario 1"][0])  # warm-up (imports, first BLAS calls)
    for label, (costs, ref) in SCENARIOS.items():
        print(row(label, 10, costs, f"{ref:.1f}"))
    for n in (8, 16, 32, 64):
        print(row("growth in N, c = 1..0.4", n, list(np.linspace(1.0, 0.4, 5))))
    for i in (2, 4, 6, 8, 10):
        print(row("growth in I, c = 1..0.4", 10, list(np.linspace(1.0, 0.4, i))))
    if not args.skip_large:
        print(row("I = 10 types at N = 20", 20, list(np.linspace(1.0, 0.4, 10))))


if __name__ == "__main__":
    main()
