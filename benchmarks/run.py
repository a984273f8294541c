"""Run every benchmark, print the ratios, save the numbers and the plots.

Each benchmark script runs pyDVL (the peer) and coopml on the same work in one process
and prints its numbers as JSON on its last line; this driver runs them one at a time
(so each reports its own peak memory), prints a summary, writes
``benchmarks/results.json`` and draws ``docs/img/benchmarks_*.png``.

Usage (from the repository root, in an environment with the ``bench`` extra)::

    python benchmarks/run.py            # the full set (about 30 minutes on 2 cores)
    python benchmarks/run.py --quick    # smaller sizes
    python benchmarks/run.py --plot-only  # redraw the plots from results.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IMG = ROOT / "docs" / "img"
RESULTS = HERE / "results.json"

BENCHMARKS = {
    "exact_logistic": ["bench_exact_logistic.py"],
    "knn_shapley": ["bench_knn.py"],
    "large_m": ["bench_large_m.py"],
    "monte_carlo": ["bench_monte_carlo.py"],
    "fast_kernels": ["bench_fast_kernels.py"],
}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    args = [sys.executable, str(HERE / BENCHMARKS[name][0])]
    if quick:
        args += ["--quick"] if name != "exact_logistic" else ["4", "8"]
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", MPLBACKEND="Agg")
    if name == "fast_kernels":  # one core: CPU seconds of one process
        env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(args, cwd=HERE, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary(results: dict[str, Any]) -> str:
    lines = []
    for row in results.get("exact_logistic", {}).get("rows", []):
        lines.append(
            f"exact Shapley, LogisticRegression, breast cancer, M={row['M']:>2}: "
            f"pyDVL {row['seconds_pydvl']:8.2f} s, coopml {row['seconds_coopml']:6.3f} s, "
            f"ratio {row['ratio_pydvl_over_coopml']:8.1f}x; max |coopml - refit| = "
            f"{row['max_abs_diff_coopml_vs_refit']:.1e}, max |pyDVL - refit| = "
            f"{max(row['abs_diff_pydvl_vs_refit']):.1e}"
        )
    for row in results.get("knn_shapley", {}).get("rows", []):
        lines.append(
            f"KNN-Shapley N={row['n_train']:>6}, n_val={row['n_val']:>5}: pyDVL "
            f"{row['seconds_pydvl']:8.2f} s, coopml {row['seconds_coopml']:6.3f} s, ratio "
            f"{row['ratio_pydvl_over_coopml']:7.1f}x; max |diff| = {row['max_abs_diff']:.1e}"
        )
    for row in results.get("large_m", {}).get("rows", []):
        if row["M"] == max(r["M"] for r in results["large_m"]["rows"]):
            lines.append(
                f"exact table + Shapley, M={row['M']} ({row['coalitions']:,} coalitions), "
                f"{row['learner']}: {row['seconds']:.1f} s"
            )
    for row in results.get("monte_carlo", {}).get("rows", []):
        for label, res in row["methods"].items():
            median, fraction = res["median_evaluations_to_1pct"], res["fraction_of_pydvl"]
            reached = f"{median:,.0f}" if median != float("inf") else "more than the budget of"
            versus = f"{fraction:.2f} of pyDVL's" if fraction is not None else "pyDVL: not reached"
            lines.append(
                f"Monte Carlo M={row['M']}, {row['game']}: {label}: median {reached} "
                f"evaluations to 1% of v(N) ({versus})"
            )
    for row in results.get("fast_kernels", {}).get("rows", []):
        lines.append(
            f"fast learner {row['learner']}, M={row['M']}, {row['variant']}: "
            f"{row['cpu_seconds']:.1f} CPU s for {row['coalitions_fitted']:,} coalitions"
        )
    for name, res in results.items():
        lines.append(f"peak memory {name}: {res.get('peak_memory_mib', float('nan')):.0f} MiB")
    return "\n".join(lines)


def plots(results: dict[str, Any]) -> None:
    from matplotlib.figure import Figure

    IMG.mkdir(parents=True, exist_ok=True)

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(IMG / f"benchmarks_{name}.png", dpi=80)

    rows = results.get("exact_logistic", {}).get("rows", [])
    if rows:
        fig = Figure(figsize=(4.8, 3.2))
        ax = fig.subplots()
        ms = [r["M"] for r in rows]
        ax.semilogy(ms, [r["seconds_pydvl"] for r in rows], "o-", label="pyDVL 0.10 (exact)")
        ax.semilogy(ms, [r["seconds_refit_table"] for r in rows], "s--", label="coopml refit table")
        ax.semilogy(ms, [r["seconds_coopml"] for r in rows], "^-", label="coopml fast")
        ax.set(xlabel="parties M", ylabel="seconds", title="Exact Shapley, logistic regression")
        ax.legend(fontsize=8)
        save(fig, "exact_logistic")
    rows = results.get("large_m", {}).get("rows", [])
    if rows:
        for key, xlabel, title, data in [
            ("M", "parties M", "Exact table (2^M coalitions)", rows),
            ("N", "training rows N (M = 12)", "Exact table against N", results["large_m"]["by_n"]),
        ]:
            if not data:
                continue
            fig = Figure(figsize=(4.8, 3.2))
            ax = fig.subplots()
            for learner in dict.fromkeys(r["learner"] for r in data):
                pts = [r for r in data if r["learner"] == learner]
                ax.semilogy([r[key] for r in pts], [r["seconds"] for r in pts], "o-", label=learner)
            ax.set(xlabel=xlabel, ylabel="seconds", title=title)
            ax.legend(fontsize=7)
            save(fig, "large_m" if key == "M" else "by_n")
    rows = results.get("knn_shapley", {}).get("rows", [])
    if rows:
        fig = Figure(figsize=(4.8, 3.2))
        ax = fig.subplots()
        work = [r["n_train"] * r["n_val"] for r in rows]
        ax.loglog(work, [r["seconds_pydvl"] for r in rows], "o-", label="pyDVL 0.10")
        ax.loglog(work, [r["seconds_coopml"] for r in rows], "^-", label="coopml")
        ax.set(xlabel="N x n_val", ylabel="seconds", title="KNN-Shapley, K = 5")
        ax.legend(fontsize=8)
        save(fig, "knn")
    rows = results.get("monte_carlo", {}).get("rows", [])
    if rows:
        fig = Figure(figsize=(4.8 * len(rows), 3.4))
        axes = fig.subplots(1, len(rows), squeeze=False)[0]
        for ax, row in zip(axes, rows, strict=True):
            for label, res in row["methods"].items():
                ax.loglog(row["grid"], [100 * e for e in res["mean_error_curve"]], label=label)
            ax.axhline(100 * 0.01, color="grey", linestyle=":", linewidth=1)
            ax.set(
                xlabel="distinct utility evaluations",
                ylabel="max |error| (% of v(N)), mean of seeds",
                title=f"M = {row['M']}: {row['game'].split(' (')[0]}",
            )
            ax.legend(fontsize=7)
        save(fig, "monte_carlo")


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    if "--plot-only" in argv:
        results = json.loads(RESULTS.read_text())
    else:
        only = [a for a in argv if a in BENCHMARKS] or list(BENCHMARKS)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        for name in only:
            print(f"running {name} ...", flush=True)
            results[name] = run_one(name, quick)
        RESULTS.write_text(json.dumps(results, indent=1))
    print(summary(results))
    plots(results)


if __name__ == "__main__":
    main(sys.argv[1:])
