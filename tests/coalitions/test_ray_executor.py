"""The Ray executor against a local Ray instance started by the test."""

from __future__ import annotations

import itertools
import os
import pickle
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402

from coopml.coalitions import (  # noqa: E402
    CoalitionGame,
    monte_carlo_shapley,
    svarm_shapley,
)
from coopml.coalitions.executors import get_executor  # noqa: E402
from coopml.coalitions.ray_executor import RayExecutor  # noqa: E402
from coopml.coalitions.stopping import MaxEvaluations, MaxPermutations  # noqa: E402
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


def _counting_puts(monkeypatch):
    """Record the pickled size of everything ``ray.put`` stores."""
    puts: list[int] = []
    real_put = ray.put

    def put(obj, *args, **kwargs):
        puts.append(len(pickle.dumps(obj, protocol=5)))
        return real_put(obj, *args, **kwargs)

    monkeypatch.setattr(ray, "put", put)
    return puts


def _synthetic_utility(m=10, n=4000, d=20):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    X_val = rng.normal(size=(500, d))
    return CoalitionUtility(GaussianNB(), _parties(X, y, m), (X_val, (X_val[:, 0] > 0) * 1)), X


def test_svarm_ships_the_utility_once_per_run(local_ray, monkeypatch):
    """svarm calls the executor once per batch with a new partial; the utility (and the
    training data it holds, once) goes into the object store once for the whole run."""
    utility, X = _synthetic_utility()
    puts = _counting_puts(monkeypatch)
    executor = RayExecutor(n_jobs=2)
    stopping = MaxEvaluations(600)
    on_ray = svarm_shapley(utility, stopping=stopping, executor=executor, random_state=3)
    assert len(puts) == 1, f"{len(puts)} puts of {sum(puts) / 1e6:.1f} MB"
    assert puts[0] < 1.2 * X.nbytes + 200_000  # the data once, not pooled again
    serial = svarm_shapley(utility, stopping=stopping, random_state=3)
    np.testing.assert_array_equal(on_ray.values, serial.values)
    executor.close()
    assert executor._stored == {}


def test_a_reassigned_attribute_ships_the_object_again(local_ray, monkeypatch):
    utility, _ = _synthetic_utility(m=3, n=300, d=3)
    puts = _counting_puts(monkeypatch)
    executor = RayExecutor(n_jobs=2)
    blocks = [np.arange(4, dtype=np.int64), np.arange(4, 8, dtype=np.int64)]
    first = [v for v, _ in executor.map(utility.evaluate_block, blocks)]
    list(executor.map(utility.evaluate_block, blocks))
    assert len(puts) == 1
    utility.on_error = 0.0  # what the workers compute with has changed: store it again
    list(executor.map(utility.evaluate_block, blocks))
    assert len(puts) == 2
    np.testing.assert_array_equal(np.concatenate(first), utility.evaluate_masks(np.arange(8)))


@pytest.mark.slow  # Ray workers import sklearn and coopml on first use
def test_serial_joblib_and_ray_give_identical_estimates(local_ray, breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    utility = CoalitionUtility(GaussianNB(), _parties(X, y, 7), (X_val, y_val))
    runs = {
        "svarm": lambda ex, k: svarm_shapley(
            utility, stopping=MaxEvaluations(90), executor=ex, n_jobs=k, random_state=5
        ),
        "monte_carlo": lambda ex, k: monte_carlo_shapley(
            utility, stopping=MaxPermutations(12), executor=ex, n_jobs=k, random_state=5
        ),
    }
    for method, run in runs.items():
        serial, on_joblib, on_ray = run("serial", None), run("joblib", 2), run("ray", 2)
        for other in (on_joblib, on_ray):
            np.testing.assert_array_equal(other.values, serial.values, err_msg=method)
            np.testing.assert_array_equal(other.stderr, serial.stderr, err_msg=method)
            assert other.n_evaluations == serial.n_evaluations


def test_a_task_that_can_never_be_scheduled_times_out(local_ray):
    """The local instance has no GPU: without a timeout this would wait forever."""
    executor = RayExecutor(timeout=1.5, task_options={"num_gpus": 1})
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=1\.5 s .*COOPML_EXECUTOR_TIMEOUT"):
        list(executor.map(abs, [-1, -2, -3]))
    assert time.monotonic() - start < 10


def _interval(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_n_jobs_limits_the_tasks_in_flight_on_a_running_cluster(local_ray):
    """With a cluster already running, n_jobs must not reach ray.init (Ray refuses
    num_cpus there); it bounds the tasks running at once instead."""
    executor = RayExecutor(n_jobs=1)
    assert executor.n_workers == 1
    spans = sorted(executor.map(_interval, [0.3] * 3))
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))


def test_an_address_other_than_the_connected_cluster_is_refused(local_ray):
    with pytest.raises(
        ValueError, match=r"'address' asks for the Ray cluster at '10\.0\.0\.9:6379'"
    ):
        RayExecutor(address="10.0.0.9:6379")
    with pytest.raises(ValueError, match="parameter 'timeout' must be seconds > 0"):
        RayExecutor(timeout=-1)
    with pytest.raises(TypeError, match="parameter 'task_options' must be a mapping"):
        RayExecutor(task_options=[("num_gpus", 1)])  # type: ignore[arg-type]
