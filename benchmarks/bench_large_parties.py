"""Markets of 50, 100 and 300 parties on the bundled digits data (issue 18).

No peer: no other library settles an estimated market. For each size, learner and
executor, one market round with the default valuation (``"auto"``: estimated above 14
parties, stopping at :func:`~coopml.market.sampled_shares.market_stopping`'s default:
every payout's standard error at most 1% of the total paid out, or the evaluation
cap) and the default replication screening (``duplicates="report"``), then the record
is written and verified. Reported per run: wall seconds and CPU seconds of the
driver and its workers (screening and settlement included; on a shared machine the CPU
seconds, divided by the 2 cores, are what an idle machine would take), model fits, the
stopping rule that fired, the largest payout standard error as a percentage of the
total paid out, the record's size (raw JSON and gzip), verification time and peak
memory (the driver's peak RSS; ``tracemalloc``'s peak of its Python allocations).

Each run is a fresh subprocess (so peak memory is its own). Learners: Gaussian naive
Bayes (coopml's exact batched kernel) and logistic regression on standardised features
(``make_pipeline(StandardScaler(), LogisticRegression())``, refit with scikit-learn per
coalition, ``fast=False``: the batched Newton kernel is built for a few classes and
features, and on the 10-class, 64-feature digits data it is slower than a refit).
Ray runs on a local instance with 2 CPUs started by the run.

Usage: python benchmarks/bench_large_parties.py [--quick] [--sizes 50,100,300]
[--learners gnb,logistic] [--executors joblib,ray]
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _common import emit, load_average, peak_memory_mib

HERE = Path(__file__).resolve().parent


def learner(name: str) -> tuple[Any, dict[str, Any]]:
    """The learner and the utility options of a run."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "gnb":
        return GaussianNB(), {}
    return make_pipeline(StandardScaler(), LogisticRegression()), {"fast": False}


def descendants_cpu_seconds() -> float:
    """User and system CPU seconds of this process and every live descendant (Linux
    ``/proc``; loky and Ray workers included while they run)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    family, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        pid = frontier.pop()
        for child, up in parent.items():
            if up == pid and child not in family:
                family.add(child)
                frontier.append(child)
    return sum(cpu.get(pid, 0.0) for pid in family)


def one(n_parties: int, learner_name: str, executor: str) -> dict[str, Any]:
    """One market round, measured (runs in its own process)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from coopml.data import load_dataset, make_parties, train_validation_split
    from coopml.market import Settlement, run_market

    ds = load_dataset("digits")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X, y, n_parties, random_state=0)
    model, options = learner(learner_name)
    if executor == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tracemalloc.start()
    before = load_average()
    start, cpu = time.perf_counter(), descendants_cpu_seconds()
    result = run_market(
        parties, model, (X_val, y_val), executor=executor, n_jobs=2, random_state=0, **options
    )
    seconds = time.perf_counter() - start
    cpu_seconds = descendants_cpu_seconds() - cpu
    traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    s = result.settlement
    raw = json.dumps(s.to_dict()).encode()
    verify_start = time.perf_counter()
    ok = Settlement.from_dict(json.loads(raw)).verify().ok
    verify_seconds = time.perf_counter() - verify_start
    paid = sum(p.payout for p in s.parties)
    if executor == "ray":
        import ray

        ray.shutdown()
    return {
        "parties": n_parties,
        "learner": learner_name,
        "executor": executor,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
        "evaluations": s.valuation["evaluations"],
        "stopped_by": s.valuation["stopped_by"],
        "converged": s.valuation["converged"],
        "max_payout_stderr_pct_of_paid": round(
            100 * max(p.payout_stderr for p in s.parties) / paid, 3
        ),
        "record_kb": round(len(raw) / 1000, 1),
        "record_gzip_kb": round(len(gzip.compress(raw)) / 1000, 1),
        "verify_seconds": round(verify_seconds, 2),
        "verified": ok,
        "peak_rss_mib": round(peak_memory_mib(), 1),
        "tracemalloc_peak_mib": round(traced_peak, 1),
        "load_average_before": before,
        "load_average_after": load_average(),
    }


def _option(name: str, argv: list[str], default: str) -> list[str]:
    return (argv[argv.index(name) + 1] if name in argv else default).split(",")


def main(argv: list[str]) -> None:
    if "--one" in argv:
        n, name, executor = argv[argv.index("--one") + 1 : argv.index("--one") + 4]
        print(json.dumps(one(int(n), name, executor)))
        return
    sizes = _option("--sizes", argv, "50,100" if "--quick" in argv else "50,100,300")
    learners = _option("--learners", argv, "gnb,logistic")
    executors = _option("--executors", argv, "joblib,ray")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    rows = []
    for executor in executors:
        for name in learners:
            for n in sizes:
                args = [sys.executable, __file__, "--one", n, name, executor]
                out = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(rows[-1], file=sys.stderr, flush=True)
    emit({"benchmark": "large_parties", "rows": rows})


if __name__ == "__main__":
    main(sys.argv[1:])
