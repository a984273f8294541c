"""The torch backend of the fast learners against the numpy backend (on CPU).

Tolerance: fitted parameters agree to ``rtol=1e-9`` (both backends compute in float64;
they differ only in the order of floating-point operations), regression predictions
too, class predictions and the ``ok`` (no refit needed) flags are identical. The CUDA
device is not available here.
"""

from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB

from coopml.coalitions import CoalitionGame
from coopml.data import Party
from coopml.learning import CoalitionUtility
from coopml.learning.fast import (
    NumpyBackend,
    TorchBackend,
    fast_learner_for,
    get_backend,
    membership,
    use_device,
)


def _data(seed, k, n=150, d=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n) if k else None
    if k:
        X = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(k, d))[y] + rng.normal(0, 20, d)
    else:
        X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d)
        y = X @ rng.normal(size=d) + rng.normal(size=n)
    return X, y, X[::3] + rng.normal(0, 0.3, (len(X[::3]), d))


LEARNERS = [
    (LinearRegression(), 0),
    (Ridge(alpha=2.0), 0),
    (LinearDiscriminantAnalysis(), 2),
    (LinearDiscriminantAnalysis(), 3),
    (LinearDiscriminantAnalysis(solver="lsqr"), 3),
    (GaussianNB(), 2),
    (GaussianNB(), 3),
    (LogisticRegression(C=0.5), 2),
    (LogisticRegression(), 3),
]
IDS = ["ols", "ridge", "lda-2", "lda-3", "lda-lsqr", "gnb-2", "gnb-3", "logit-2", "logit-3"]


@pytest.mark.parametrize(("learner", "k"), LEARNERS, ids=IDS)
def test_torch_cpu_matches_numpy(learner, k):
    pytest.importorskip("torch")
    m = 5
    X, y, X_val = _data(1, k)
    parts, targets = [X[i::m] for i in range(m)], [y[i::m] for i in range(m)]
    fast_np = fast_learner_for(learner, parts, targets, X_val)
    fast_t = fast_learner_for(learner, parts, targets, X_val, device="cpu")
    assert isinstance(fast_np.backend, NumpyBackend) and isinstance(fast_t.backend, TorchBackend)
    A = membership(np.arange(1, 2**m), m)
    if k:
        A = A[fast_np.present(A).sum(axis=1) >= 2]
    a, b = fast_np.fit_block(A), fast_t.fit_block(A)
    np.testing.assert_array_equal(a.ok, b.ok)
    assert a.ok.mean() > 0.5
    if k:  # class indices: identical
        np.testing.assert_array_equal(a.predictions[a.ok], b.predictions[b.ok])
    else:
        np.testing.assert_allclose(a.predictions[a.ok], b.predictions[b.ok], rtol=1e-9)
    assert set(a.params) == set(b.params)
    for name, value in a.params.items():
        assert isinstance(b.params[name], np.ndarray)
        np.testing.assert_allclose(
            value[a.ok], b.params[name][a.ok], rtol=1e-9, atol=1e-10, err_msg=name
        )


@pytest.mark.parametrize(
    "learner", [LinearDiscriminantAnalysis(), GaussianNB(), LogisticRegression()]
)
def test_tables_identical_under_use_device(learner):
    pytest.importorskip("torch")
    X, y, X_val = _data(2, 2)
    y_val = y[::3]
    parties = [Party(f"p{i}", X[i::4], y[i::4]) for i in range(4)]
    ref = CoalitionGame.from_utility(CoalitionUtility(learner, parties, (X_val, y_val)))
    with use_device("cpu"):
        utility = CoalitionUtility(learner, parties, (X_val, y_val))
    assert isinstance(utility.fast_learner.backend, TorchBackend)
    assert get_backend().name == "numpy"  # the default is restored
    np.testing.assert_array_equal(CoalitionGame.from_utility(utility).table, ref.table)
    direct = CoalitionUtility(learner, parties, (X_val, y_val), device="cpu")
    assert isinstance(direct.fast_learner.backend, TorchBackend)
    np.testing.assert_array_equal(CoalitionGame.from_utility(direct).table, ref.table)


def test_torch_learner_pickles_for_worker_processes():
    pytest.importorskip("torch")
    X, y, X_val = _data(3, 2)
    fast = fast_learner_for(GaussianNB(), [X[:70], X[70:]], [y[:70], y[70:]], X_val, "cpu")
    clone = pickle.loads(pickle.dumps(fast))
    A = membership(np.array([3]), 2)
    np.testing.assert_array_equal(clone.fit_block(A).predictions, fast.fit_block(A).predictions)


def test_bad_devices_are_rejected():
    pytest.importorskip("torch")
    import torch

    with pytest.raises(ValueError, match="parameter 'device' must be a torch device"):
        get_backend("gpu0")
    with pytest.raises(TypeError, match="parameter 'device' must be a str or None"):
        get_backend(3)  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            get_backend("cuda")


def test_without_torch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'coopml\[torch\]'"):
        get_backend("cpu")
    assert get_backend(None).name == "numpy"
