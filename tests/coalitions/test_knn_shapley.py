"""KNN-Shapley (Jia et al. 2019) against brute-force Shapley over all subsets."""

from __future__ import annotations

import importlib
import itertools
from math import factorial

import numpy as np
import pytest

from coopml.coalitions.knn_shapley import knn_game, knn_shapley


def _knn_utility(X, y, x, label, k, subset):
    """v_x(S): fraction of the k nearest of S with the right label (1/k each)."""
    if not subset:
        return 0.0
    idx = np.array(sorted(subset))
    d = np.sqrt(((X[idx] - x) ** 2).sum(axis=1))
    nearest = idx[np.argsort(d, kind="stable")[:k]]
    return float(np.sum(y[nearest] == label)) / k


def _brute_force(X, y, X_val, y_val, k, groups):
    """Shapley values of the groups by the subset formula, utility averaged over X_val."""
    m = int(max(groups)) + 1
    members = [np.flatnonzero(np.asarray(groups) == j) for j in range(m)]

    def v(S):
        points = set().union(*(set(members[j].tolist()) for j in S)) if S else set()
        return np.mean(
            [_knn_utility(X, y, x, lab, k, points) for x, lab in zip(X_val, y_val, strict=True)]
        )

    phi = np.zeros(m)
    for r in range(m):
        for S in itertools.combinations(range(m), r):
            w = factorial(r) * factorial(m - r - 1) / factorial(m)
            base = v(S)
            for i in set(range(m)) - set(S):
                phi[i] += w * (v(tuple(sorted((*S, i)))) - base)
    return phi


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_point_values_equal_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    n = 7
    X, y = rng.normal(size=(n, 2)), rng.integers(0, 2, n)
    X_val, y_val = rng.normal(size=(3, 2)), rng.integers(0, 2, 3)
    expected = _brute_force(X, y, X_val, y_val, k, np.arange(n))
    np.testing.assert_allclose(knn_shapley(X, y, X_val, y_val, k=k), expected, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_party_game_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(12, 3)), rng.integers(0, 3, 12)
    X_val, y_val = rng.normal(size=(4, 3)), rng.integers(0, 3, 4)
    groups = np.array([0, 1, 2, 3] * 3)
    rng.shuffle(groups)
    game = knn_game(X, y, X_val, y_val, groups, k=3, names=["a", "b", "c", "d"])
    expected = _brute_force(X, y, X_val, y_val, 3, groups)
    np.testing.assert_allclose(game.shapley().values, expected, atol=1e-12)
    assert game.names == ("a", "b", "c", "d") and game.table[0] == 0.0


def test_singleton_groups_reproduce_point_values_and_efficiency():
    rng = np.random.default_rng(9)
    X, y = rng.normal(size=(10, 2)), rng.integers(0, 2, 10)
    X_val, y_val = rng.normal(size=(20, 2)), rng.integers(0, 2, 20)
    values = knn_shapley(X, y, X_val, y_val, k=3)
    game = knn_game(X, y, X_val, y_val, np.arange(10), k=3)
    np.testing.assert_allclose(game.shapley().values, values, atol=1e-12)
    assert values.sum() == pytest.approx(game.grand_value, abs=1e-12)


def test_blocks_of_validation_points_do_not_change_values(monkeypatch):
    module = importlib.import_module("coopml.coalitions.knn_shapley")

    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(300, 4)), rng.integers(0, 3, 300)
    X_val, y_val = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    whole = knn_shapley(X, y, X_val, y_val)
    monkeypatch.setattr(module, "_BLOCK_ENTRIES", 7 * 300)
    np.testing.assert_allclose(knn_shapley(X, y, X_val, y_val), whole, atol=1e-14)


def test_bad_inputs():
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="parameter 'y_train' must have one label per row"):
        knn_shapley(X, y[:3], X, y)
    with pytest.raises(ValueError, match="parameter 'X_val' must have as many features"):
        knn_shapley(X, y, np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="parameter 'k' must be >= 1; got 0"):
        knn_shapley(X, y, X, y, k=0)
    with pytest.raises(ValueError, match="parameter 'y_val' must have one label per row"):
        knn_shapley(X, y, X, y[:1])
    with pytest.raises(ValueError, match="parameter 'groups' must use every player"):
        knn_game(X, y, X, y, groups=[0, 0, 2, 2])
    with pytest.raises(ValueError, match="parameter 'groups' must hold one non-negative"):
        knn_game(X, y, X, y, groups=[0, 1])


def test_equal_distances_are_ordered_by_training_index():
    """Duplicated points: ties in distance are broken by index, as in brute force."""
    rng = np.random.default_rng(3)
    X = np.repeat(rng.normal(size=(3, 2)), 2, axis=0)
    y = np.array([0, 1, 1, 0, 0, 1])
    X_val, y_val = X[[0, 3]], np.array([0, 1])
    expected = _brute_force(X, y, X_val, y_val, 2, np.arange(6))
    np.testing.assert_allclose(knn_shapley(X, y, X_val, y_val, k=2), expected, atol=1e-12)
