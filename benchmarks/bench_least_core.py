"""Least core and nucleolus: constraint generation against the full LP formulation.

Run from the repository root:

    .venv/bin/python benchmarks/bench_least_core.py                 # n = 16, 18, 20, 22, 25
    .venv/bin/python benchmarks/bench_least_core.py --ns 16 18 --full-up-to 18

For every number of players ``n`` and game family it times ``least_core`` and
``nucleolus`` (constraint generation, the default) and, up to ``--full-up-to`` players
(``--full-nucleolus-up-to`` for the nucleolus), the same functions with every coalition
in every LP from the start (``full=True``: the formulation before constraint generation,
one HiGHS LP with 2^n - 2 rows per stage), and prints the largest difference between
the two. The least-core time includes the exact Shapley value (the tie-break projects it
onto the least core), which is reported on its own as well. Game construction is not
timed. Wall-clock and process CPU seconds (CPU is the fairer measure on a shared
machine) and the load average are printed; the last line is the JSON of all rows.

Game families (seeded):

* ``learning``: a learning curve of the pooled data size plus noise,
  ``0.5 + 0.4 (1 - exp(-m(S) / 300)) + N(0, 0.005^2)``, party sizes 20-200 (empty core);
* ``convex``: ``w(S)^1.5`` with weights in [0.5, 2] (superadditive, large core, many
  nucleolus stages);
* ``random``: uniform values in [0, 1) (non-monotone, empty core).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import emit, load_average

from coopml._bitmask import coalition_sums
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.shapley import shapley_from_table

least_core_module = importlib.import_module("coopml.coalitions.least_core")
nucleolus_module = importlib.import_module("coopml.coalitions.nucleolus")


def make_game(kind: str, n: int, seed: int = 0) -> CoalitionGame:
    rng = np.random.default_rng(seed)
    if kind == "learning":
        size = coalition_sums(rng.integers(20, 200, n).astype(float))
        table = 0.5 + 0.4 * (1 - np.exp(-size / 300)) + rng.normal(0, 0.005, size.size)
        table[0] = 0.5
    elif kind == "convex":
        table = coalition_sums(rng.uniform(0.5, 2.0, n)) ** 1.5
    elif kind == "random":
        table = rng.uniform(0.0, 1.0, 1 << n)
    else:
        raise ValueError(f"unknown game family {kind!r}")
    return CoalitionGame(table)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ns", type=int, nargs="+", default=[16, 18, 20, 22, 25])
    parser.add_argument("--games", nargs="+", default=["learning", "convex", "random"])
    parser.add_argument("--full-up-to", type=int, default=18, help="full-LP least core")
    parser.add_argument("--full-nucleolus-up-to", type=int, default=16)
    args = parser.parse_args()

    rows = []
    header = (
        "| n | game | least core (s, CPU s) | Shapley alone (s) | LC rounds / rows | "
        "full LP least core (s) | LC max diff | nucleolus (s, CPU s) | stages / rounds | "
        "full LP nucleolus (s) | nucleolus max diff | load |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for n in args.ns:
        for kind in args.games:
            game = make_game(kind, n)
            scale = max(1.0, float(np.abs(game.zero_normalized()).max()))
            _, t_phi, _ = timed(shapley_from_table, game.table)
            lc, t_lc, c_lc = timed(least_core_module.least_core, game)
            nu, t_nu, c_nu = timed(nucleolus_module.nucleolus, game)
            row: dict[str, Any] = {
                "n": n,
                "game": kind,
                "least_core_s": t_lc,
                "least_core_cpu_s": c_lc,
                "shapley_s": t_phi,
                "least_core_rounds": lc.info["generation_rounds"],
                "least_core_working_set": lc.info["working_set"],
                "epsilon": lc.epsilon,
                "nucleolus_s": t_nu,
                "nucleolus_cpu_s": c_nu,
                "nucleolus_stages": nu.info["n_stages"],
                "nucleolus_rounds": nu.info["generation_rounds"],
                "converged": bool(lc.converged and nu.converged),
            }
            if n <= args.full_up_to:
                full, row["full_least_core_s"], _ = timed(
                    least_core_module._least_core, game, full=True
                )
                diff = np.abs(full.values - lc.values).max()
                row["least_core_max_diff"] = max(diff, abs(full.epsilon - lc.epsilon)) / scale
            if n <= args.full_nucleolus_up_to:
                full, row["full_nucleolus_s"], _ = timed(
                    nucleolus_module._nucleolus, game, full=True
                )
                row["nucleolus_max_diff"] = float(np.abs(full.values - nu.values).max()) / scale
            row["load_average"] = load_average()
            rows.append(row)
            print(
                f"| {n} | {kind} | {t_lc:.2f} ({c_lc:.2f}) | {t_phi:.2f} | "
                f"{row['least_core_rounds']} / {row['least_core_working_set']} | "
                f"{_fmt(row, 'full_least_core_s', '.2f')} | "
                f"{_fmt(row, 'least_core_max_diff', '.1e')} | {t_nu:.2f} ({c_nu:.2f}) | "
                f"{row['nucleolus_stages']} / {row['nucleolus_rounds']} | "
                f"{_fmt(row, 'full_nucleolus_s', '.2f')} | "
                f"{_fmt(row, 'nucleolus_max_diff', '.1e')} | "
                f"{' / '.join(str(x) for x in row['load_average'])} |",
                flush=True,
            )
            del game
    emit({"benchmark": "least_core", "rows": rows})
    sys.stdout.flush()


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return format(row[key], spec) if key in row else "-"


if __name__ == "__main__":
    main()
