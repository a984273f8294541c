"""CPU time of the batched fast learners on every coalition of M parties (one core).

Wall-clock times on a shared machine depend on its load; the CPU time of one process
(``time.process_time``, BLAS limited to one thread) much less so. This script calls a
fast learner's ``fit_block`` on all ``2**M - 1`` non-empty coalitions in blocks of
4,096 (as ``CoalitionUtility`` does), for each backend asked for, and optionally for
the same learner module at an older git revision (``--compare-rev``), all in one
process, so the ratios are fair.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_fast_kernels.py [--m 20] \\
        [--learners LDA,GaussianNB] [--backends numpy,cpu] [--compare-rev REV] [--quick]
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import breast_cancer, diabetes, emit, load_average
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB

from coopml.learning.fast import fast_learner_for, membership

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 4096

LEARNERS: dict[str, tuple[Any, Any, str]] = {
    "Ridge": (Ridge, diabetes, "linear"),
    "LDA": (LinearDiscriminantAnalysis, breast_cancer, "discriminant"),
    "GaussianNB": (GaussianNB, breast_cancer, "naive_bayes"),
    "LogisticRegression": (
        lambda: LogisticRegression(max_iter=1000),
        breast_cancer,
        "logistic",
    ),
}


def _old_class(rev: str, module: str, cls_name: str) -> Any:
    """The fast-learner class of ``module`` as it was at git revision ``rev``."""
    path = f"src/coopml/learning/fast/{module}.py"
    source = subprocess.run(
        ["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(source)
    spec = importlib.util.spec_from_file_location(f"old_{module}", fh.name)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, cls_name)


def cpu_seconds(learner: Any, m: int) -> tuple[float, float, int]:
    """(CPU seconds, wall seconds, coalitions fitted) over every coalition of ``m``."""
    masks = np.arange(1, 2**m, dtype=np.int64)
    learner.fit_block(membership(masks[-64:], m))  # warm up (first-call costs)
    fitted = 0
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for lo in range(0, masks.size, BLOCK):
        A = membership(masks[lo : lo + BLOCK], m)
        if learner.is_classifier:  # the utility gives classifiers two-class coalitions only
            A = A[learner.present(A).sum(axis=1) >= 2]
        learner.fit_block(A)
        fitted += A.shape[0]
    return time.process_time() - start_cpu, time.perf_counter() - start_wall, fitted


def main(argv: list[str]) -> None:
    def option(name: str, default: str) -> str:
        return argv[argv.index(name) + 1] if name in argv else default

    m = int(option("--m", "16" if "--quick" in argv else "20"))
    learners = option("--learners", "Ridge,LDA,GaussianNB").split(",")
    backends = option("--backends", "numpy").split(",")
    rev = option("--compare-rev", "")
    rows = []
    for name in learners:
        make, data, module = LEARNERS[name]
        X, y, X_val, _ = data()
        parts, targets = [X[i::m] for i in range(m)], [y[i::m] for i in range(m)]
        variants: list[tuple[str, Any]] = [
            (f"backend {b}", fast_learner_for(make(), parts, targets, X_val, device=b))
            for b in backends
        ]
        if rev:
            current = fast_learner_for(make(), parts, targets, X_val)
            old_cls = _old_class(rev, module, type(current).__name__)
            variants.append((f"numpy at {rev}", old_cls(make(), parts, targets, X_val)))
        for label, learner in variants:
            before = load_average()
            cpu, wall, fitted = cpu_seconds(learner, m)
            rows.append(
                {
                    "learner": name,
                    "M": m,
                    "variant": label,
                    "cpu_seconds": cpu,
                    "wall_seconds": wall,
                    "coalitions_fitted": fitted,
                    "load_average_before": before,
                    "load_average_after": load_average(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                }
            )
            print(rows[-1], file=sys.stderr, flush=True)
    emit({"benchmark": "fast_kernels", "rows": rows})


if __name__ == "__main__":
    main(sys.argv[1:])
