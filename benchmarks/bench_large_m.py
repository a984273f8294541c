"""Exact value tables for many parties (up to M = 20, 1,048,576 coalitions).

No peer: pyDVL evaluates a coalition once per marginal (M 2**(M-1) fits for exact
Shapley), which at M = 20 would take days. Times are for the whole table and the exact
Shapley values, with the joblib executor on all cores (``n_jobs=2`` on the reference
machine). Also times the table against M and against the training-set size N, for the
plots in docs/benchmarks.md.

Usage: python benchmarks/bench_large_m.py [--quick] [--ms 16,20] [--learners Ridge,LDA]
[--no-by-n]   (``--learners`` matches the start of a learner's name)
"""

from __future__ import annotations

import sys

import numpy as np
from _common import breast_cancer, diabetes, emit, load_average, timed
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB

from coopml.coalitions import CoalitionGame
from coopml.data import Party
from coopml.learning import CoalitionUtility

LEARNERS = {
    "Ridge (diabetes)": (Ridge, diabetes, "r2"),
    "LDA (breast cancer)": (LinearDiscriminantAnalysis, breast_cancer, "accuracy"),
    "GaussianNB (breast cancer)": (GaussianNB, breast_cancer, "accuracy"),
    "LogisticRegression (breast cancer)": (
        lambda: LogisticRegression(max_iter=1000),
        breast_cancer,
        "accuracy",
    ),
}


def table_seconds(name: str, m: int, n_rows: int | None = None) -> tuple[float, float]:
    make, data, scorer = LEARNERS[name]
    X, y, X_val, y_val = data()
    if n_rows is not None:  # resample rows (with small noise) to reach n_rows
        rng = np.random.default_rng(0)
        idx = rng.integers(0, len(y), n_rows)
        X, y = X[idx] + rng.normal(0, 0.05, (n_rows, X.shape[1])), y[idx]
    parties = [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]
    utility = CoalitionUtility(make(), parties, (X_val, y_val), scorer=scorer)
    game, seconds = timed(CoalitionGame.from_utility, utility, "joblib", 2)
    phi = game.shapley().values
    assert abs(phi.sum() - (game.grand_value - game.table[0])) < 1e-9
    refits = len(game.info["failures"])
    return seconds, refits


def _option(name: str, argv: list[str]) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def main(argv: list[str]) -> None:
    top = 16 if "--quick" in argv else 20
    ms = [int(m) for m in (_option("--ms", argv) or "10,12,14,16,18,20").split(",")]
    wanted = (_option("--learners", argv) or "").split(",")
    names = [n for n in LEARNERS if any(n.startswith(w) for w in wanted)]
    rows = []
    for name in names:
        for m in ms:
            if m > top:
                continue
            before = load_average()
            seconds, refits = table_seconds(name, m)
            rows.append(
                {
                    "learner": name,
                    "M": m,
                    "seconds": seconds,
                    "coalitions": 2**m,
                    "refits": refits,
                    "load_average_before": before,
                    "load_average_after": load_average(),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    by_n = []
    for name in names if "--no-by-n" not in argv else []:
        for n in (500, 2000, 8000):
            seconds, _ = table_seconds(name, 12, n)
            by_n.append(
                {
                    "learner": name,
                    "M": 12,
                    "N": n,
                    "seconds": seconds,
                    "load_average": load_average(),
                }
            )
            print(by_n[-1], file=sys.stderr, flush=True)
    emit({"benchmark": "large_m", "rows": rows, "by_n": by_n})


if __name__ == "__main__":
    main(sys.argv[1:])
