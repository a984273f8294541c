"""The Ray executor against a local Ray instance started by the test."""

from __future__ import annotations

import os

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402

from coopml.coalitions import CoalitionGame  # noqa: E402
from coopml.coalitions.executors import get_executor  # noqa: E402
from coopml.coalitions.ray_executor import RayExecutor  # noqa: E402
from coopml.data import Party  # noqa: E402
from coopml.learning import CoalitionUtility  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _parties(X, y, m):
    return [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]


def test_map_keeps_item_order(local_ray):
    executor = get_executor("ray")
    assert isinstance(executor, RayExecutor) and executor.n_workers == 2
    assert list(executor.map(lambda x: x * x, list(range(10)))) == [x * x for x in range(10)]


@pytest.mark.slow  # Ray workers import sklearn and coopml on first use
@pytest.mark.parametrize("fast", [True, False])
def test_ray_and_joblib_tables_are_identical(local_ray, breast_cancer_split, fast):
    X, y, X_val, y_val = breast_cancer_split
    learner = GaussianNB() if fast else LogisticRegression()
    utility = CoalitionUtility(learner, _parties(X, y, 4), (X_val, y_val), fast=fast)
    serial = CoalitionGame.from_utility(utility, "serial")
    on_ray = CoalitionGame.from_utility(utility, "ray")
    on_joblib = CoalitionGame.from_utility(utility, "joblib", n_jobs=2)
    np.testing.assert_array_equal(on_ray.table, serial.table)
    np.testing.assert_array_equal(on_ray.table, on_joblib.table)
    assert on_ray.info["executor"] == "ray"


def test_function_and_data_are_put_once(local_ray, monkeypatch):
    puts = []
    real_put = ray.put
    monkeypatch.setattr(ray, "put", lambda obj: puts.append(obj) or real_put(obj))
    data = np.arange(1000.0)
    out = list(RayExecutor().map(lambda i: float(data[i]), [1, 2, 3, 4]))
    assert out == [1.0, 2.0, 3.0, 4.0] and len(puts) == 1


def test_bad_n_jobs():
    with pytest.raises(ValueError, match="parameter 'n_jobs' must be >= 1; got 0"):
        RayExecutor(0)
