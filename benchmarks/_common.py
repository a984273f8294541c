"""Shared pieces of the benchmarks: datasets, timing, peak memory, JSON output.

Each benchmark is a script that runs the peer (pyDVL) and coopml on the same work in
one process and prints one JSON object on its last line; ``benchmarks/run.py`` runs
them one by one (so each reports its own peak memory) and prints the ratios.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("MPLBACKEND", "Agg")

T = TypeVar("T")


def timed(fn: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``(fn(*args), seconds)``."""
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def breast_cancer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised breast cancer: 398 training and 171 validation rows (the spec's split)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), y_tr, scaler.transform(X_val), y_val


def diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Diabetes regression: 309 training and 133 validation rows."""
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0)
    return X_tr, y_tr, X_val, y_val


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (``os.getloadavg()``), rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's result as the last line of its output."""
    result["peak_memory_mib"] = round(peak_memory_mib(), 1)
    result["load_average_at_end"] = load_average()
    result["cpu_count"] = os.cpu_count()
    print(json.dumps(result, default=float))
    sys.stdout.flush()
