"""Markets of 8 parties over many rows: time per stage and peak memory.

No peer. Synthetic classification data (``make_classification``: 20 features, 10
informative, seed 0) split i.i.d. among 8 parties, plus 2,000 shared validation rows;
``run_market`` with its defaults (``duplicates="report"``, exact valuation of the 256
coalitions) and GaussianNB or logistic regression. Stages are timed by wrapping the
functions ``run_market`` calls: screening (``find_duplicates``), settlement
(``settle``); valuation is the rest (the value table, the released model). Each case
runs in its own process, so its peak resident memory (``ru_maxrss``) is its own; the
data themselves (features, the parties' copies) are part of it and stated separately.

Usage (from the repository root): python benchmarks/bench_large_market.py
[--rows 10000,100000,1000000] [--learners GaussianNB,LogisticRegression] [--replica]
(``--replica``: the last party is a noisy copy, noise 0.01, of the first party, so the
screening has near duplicates to find and LSH's recall can be measured)

Prints one line per case and, last, one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit, load_average, peak_memory_mib  # noqa: E402

N_PARTIES = 8
N_FEATURES = 20
N_VALIDATION = 2_000


def _learner(name: str) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB() if name == "GaussianNB" else LogisticRegression(max_iter=1000)


def run_case(rows: int, learner: str, replica: bool = False) -> dict[str, Any]:
    """One market in this process: stage times, screening summary, peak memory."""
    import numpy as np
    from sklearn.datasets import make_classification

    from coopml.data import make_parties, replicate_party
    from coopml.market import market as market_module

    X, y = make_classification(
        n_samples=rows + N_VALIDATION, n_features=N_FEATURES, n_informative=10, random_state=0
    )
    validation = (X[rows:], y[rows:])
    parties = make_parties(X[:rows], y[:rows], N_PARTIES, random_state=0)
    del X, y
    if replica:  # the last party submits a noisy copy of the first party's rows
        parties[-1] = replicate_party(parties[0], "replica", noise=0.01, random_state=0)
    data_mib = sum(p.X.nbytes + p.y.nbytes for p in parties) / 2**20
    memory_before = peak_memory_mib()
    seconds: dict[str, float] = {"screening": 0.0, "settlement": 0.0}

    def timed_stage(stage: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[stage] += time.perf_counter() - start

        return wrapper

    market_module.find_duplicates = timed_stage("screening", market_module.find_duplicates)
    market_module.settle = timed_stage("settlement", market_module.settle)
    before = load_average()
    start = time.perf_counter()
    result = market_module.run_market(parties, _learner(learner), validation)
    total = time.perf_counter() - start
    s = result.settlement
    assert s.checks["balanced"] and s.verify().ok
    report = result.duplicates
    assert report is not None
    return {
        "rows": rows,
        "learner": learner,
        "parties": N_PARTIES,
        "replica": replica,
        "seconds_total": round(total, 2),
        "seconds_screening": round(seconds["screening"], 2),
        "seconds_valuation": round(total - seconds["screening"] - seconds["settlement"], 2),
        "seconds_settlement": round(seconds["settlement"], 3),
        "screening": report.screening(),
        "near_duplicate_rows": int(report.near.sum()),
        "grand_value": float(result.games[0].grand_value),
        "data_mib": round(data_mib, 1),
        "peak_memory_mib_before_market": round(memory_before, 1),
        "peak_memory_mib": round(peak_memory_mib(), 1),
        "load_average_before": before,
        "load_average_after": load_average(),
        "numpy": np.__version__,
    }


def _option(name: str, argv: list[str], default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def main(argv: list[str]) -> None:
    if "--case" in argv:  # child process: one market
        size, learner = argv[argv.index("--case") + 1 : argv.index("--case") + 3]
        print(json.dumps(run_case(int(size), learner, "--replica" in argv)))
        return
    sizes = [int(r) for r in _option("--rows", argv, "10000,100000,1000000").split(",")]
    learners = _option("--learners", argv, "GaussianNB,LogisticRegression").split(",")
    out = []
    for rows in sizes:
        for learner in learners:
            args = [sys.executable, __file__, "--case", str(rows), learner]
            args += ["--replica"] if "--replica" in argv else []
            done = subprocess.run(args, check=True, capture_output=True, text=True)
            case = json.loads(done.stdout.strip().splitlines()[-1])
            out.append(case)
            print(
                f"{rows:>9,} rows, {learner:<18}: total {case['seconds_total']:7.2f} s "
                f"(screening {case['seconds_screening']:6.2f} s [{case['screening']['method']}], "
                f"valuation {case['seconds_valuation']:6.2f} s, settlement "
                f"{case['seconds_settlement']:.3f} s), peak {case['peak_memory_mib']:,.0f} MiB "
                f"(data {case['data_mib']:,.0f} MiB), load {case['load_average_before']}; "
                f"screening {case['screening']}",
                flush=True,
            )
    emit({"rows": out})


if __name__ == "__main__":
    main(sys.argv[1:])
