"""Shared fixtures: small, fast parties built from scikit-learn's bundled datasets."""

from __future__ import annotations

import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
# Two xdist workers on two cores: one BLAS/OpenMP thread each (also for the servers,
# workers and Ray processes that tests start). A second thread per small fit made a busy
# machine up to 25x slower.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

_THREADS = threadpool_limits(limits=1)


@pytest.fixture(scope="session")
def breast_cancer_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised breast-cancer features: 398 training and 171 validation rows."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_val, y_tr, y_val = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), y_tr, scaler.transform(X_val), y_val


# The longest tests first (seconds on the 2-core CI machine, 2026-12-03): the
# parties-custody and service runs, mostly waiting on processes, then start beside the
# short CPU-bound tests instead of forming the run's tail on one worker. `make test`
# runs `--dist loadfile --no-loadscope-reorder`: each file on one worker (a module's
# fixtures, a server or a finished run, are built once), files in this order.
# (`--dist loadgroup` would keep the order per test, but with pytest 9.2 it silently
# stops grouping: pytest-xdist issue #1386.)
FIRST = (
    "tests/service/test_custody_rounds.py",  # 5 rounds on one service: ~600 s
    "tests/service/test_custody_faults_slow.py",  # 2 x ~120 s
    "tests/service/test_custody_prediction.py",
    "tests/service/test_fuzz.py",
    "tests/service/test_docs_walkthrough.py",
    "tests/custody/test_flower.py",
    "tests/custody/test_agent_privacy.py",
    "tests/market/test_large_market_review.py",
    "tests/service/test_load.py",
    "tests/federated/test_flower.py",
    "tests/service/test_crash_recovery.py",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of :data:`FIRST` first, then every file with a ``slow`` test, then the
    rest, each in collection order (a stable sort)."""
    slow = {i.nodeid.split("::")[0] for i in items if i.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        first = next((i for i, p in enumerate(FIRST) if path == p), None)
        return first if first is not None else len(FIRST) + (path not in slow)

    items.sort(key=rank)
