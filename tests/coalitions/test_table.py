"""The value table engine: brute-force agreement, executors, cache, progress."""

from __future__ import annotations

import itertools
from math import factorial

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from coopml.coalitions import CoalitionGame
from coopml.data import Party
from coopml.learning import CoalitionUtility


def _parties(X, y, m):
    return [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]


def _brute_force_shapley(X, y, X_val, y_val, m):
    """Shapley by the subset formula, refitting scikit-learn for every coalition."""
    majority = np.bincount(y).argmax()

    def v(S):
        if not S:
            return float(np.mean(y_val == majority))
        rows = np.concatenate([np.arange(len(y))[i::m] for i in sorted(S)])
        model = LogisticRegression().fit(X[rows], y[rows])
        return accuracy_score(y_val, model.predict(X_val))

    values = {S: v(S) for r in range(m + 1) for S in itertools.combinations(range(m), r)}
    phi = np.zeros(m)
    for S, vs in values.items():
        for i in range(m):
            if i not in S:
                w = factorial(len(S)) * factorial(m - len(S) - 1) / factorial(m)
                phi[i] += w * (values[tuple(sorted((*S, i)))] - vs)
    return phi


def test_shapley_from_utility_matches_brute_force_refit(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    m = 8
    utility = CoalitionUtility(
        LogisticRegression(), _parties(X, y, m), (X_val, y_val), fast=False
    )  # the generic refit path; the fast path is checked in tests/learning/fast
    game = CoalitionGame.from_utility(utility, executor="joblib", n_jobs=2)
    expected = _brute_force_shapley(X, y, X_val, y_val, m)
    np.testing.assert_allclose(game.shapley().values, expected, rtol=0, atol=1e-9)
    assert game.names == tuple(f"p{i}" for i in range(m))
    assert game.info["n_evaluations"] == 2**m


def test_executors_give_identical_tables(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    utility = CoalitionUtility(LogisticRegression(), _parties(X, y, 4), (X_val, y_val))
    serial = CoalitionGame.from_utility(utility, "serial")
    joblib = CoalitionGame.from_utility(utility, "joblib", n_jobs=2)
    np.testing.assert_array_equal(serial.table, joblib.table)


def test_cache_reuses_table_and_is_keyed_by_fingerprint(breast_cancer_split, tmp_path):
    X, y, X_val, y_val = breast_cancer_split
    utility = CoalitionUtility(LogisticRegression(), _parties(X, y, 3), (X_val, y_val))
    first = CoalitionGame.from_utility(utility, cache_dir=tmp_path)
    second = CoalitionGame.from_utility(utility, cache_dir=tmp_path)
    assert (first.info["cache"], second.info["cache"]) == ("miss", "hit")
    np.testing.assert_array_equal(first.table, second.table)
    assert [p.name for p in tmp_path.iterdir()] == [f"{utility.fingerprint()}.npy"]
    other = CoalitionUtility(LogisticRegression(C=0.1), _parties(X, y, 3), (X_val, y_val))
    assert CoalitionGame.from_utility(other, cache_dir=tmp_path).info["cache"] == "miss"


def test_progress_reports_every_coalition(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    utility = CoalitionUtility(LogisticRegression(), _parties(X, y, 3), (X_val, y_val))
    calls: list[tuple[int, int]] = []
    CoalitionGame.from_utility(utility, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (8, 8)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_substituted_failures_are_reported_on_the_game(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    parties = [Party("benign", X[y == 1], y[y == 1]), Party("malignant", X[y == 0], y[y == 0])]
    utility = CoalitionUtility(
        LogisticRegression(), parties, (X_val, y_val), single_class="fit", on_error=0.0
    )
    game = CoalitionGame.from_utility(utility)
    assert sorted(f["mask"] for f in game.info["failures"]) == [1, 2]
    assert game.table[1] == game.table[2] == 0.0


def test_too_many_players_for_an_exact_table():
    class Huge:
        n_players = 26

    with pytest.raises(ValueError, match="monte_carlo_shapley"):
        CoalitionGame.from_utility(Huge())  # type: ignore[arg-type]


def test_unknown_executor(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    utility = CoalitionUtility(LogisticRegression(), _parties(X, y, 2), (X_val, y_val))
    with pytest.raises(ValueError, match="'executor' must be one of 'joblib', 'ray', 'serial'"):
        CoalitionGame.from_utility(utility, "dask")
