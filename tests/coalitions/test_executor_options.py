"""Executor options that need no Ray: timeouts, addresses, and what a utility ships."""

from __future__ import annotations

import pickle
import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from coopml.coalitions.executors import JoblibExecutor, get_executor
from coopml.data import Party
from coopml.learning import CoalitionUtility


def test_a_joblib_task_past_its_timeout_stops_the_run():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=1\.0 s; .*COOPML_EXECUTOR_TIMEOUT"):
        list(JoblibExecutor(n_jobs=2, timeout=1).map(time.sleep, [0.0, 3.0]))
    assert time.monotonic() - start < 3.0


@pytest.mark.parametrize("timeout", [0, -5, float("nan"), "60", True])
def test_bad_timeouts_are_named(timeout):
    with pytest.raises(ValueError, match="parameter 'timeout' must be seconds > 0 or None"):
        get_executor("joblib", 2, timeout=timeout)


def test_an_address_needs_the_ray_executor():
    with pytest.raises(ValueError, match="'address' names a Ray cluster and needs executor='ray'"):
        get_executor("serial", address="auto")


def test_a_pickled_utility_holds_the_training_data_once():
    """Executors ship the utility to their workers: the parties' arrays, not also a
    pooled copy of them; the copy computes the same values (generic refit path)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 10))
    y = (X[:, 0] > 0).astype(int)
    parties = [Party(f"p{i}", X[i::4], y[i::4]) for i in range(4)]
    X_val = rng.normal(size=(50, 10))
    utility = CoalitionUtility(
        LogisticRegression(), parties, (X_val, (X_val[:, 0] > 0) * 1), fast=False
    )
    size = len(pickle.dumps(utility, protocol=5))
    assert size < 1.2 * (X.nbytes + y.nbytes), f"{size / X.nbytes:.2f} times the features"
    copy = pickle.loads(pickle.dumps(utility))
    masks = np.arange(16)
    np.testing.assert_array_equal(copy.evaluate_masks(masks), utility.evaluate_masks(masks))
