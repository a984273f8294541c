from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score

from coopml.data import Party
from coopml.learning import CoalitionUtility


def _parties(X, y, m):
    return [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]


@pytest.fixture
def utility(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    return CoalitionUtility(LogisticRegression(), _parties(X, y, 4), (X_val, y_val))


def test_value_is_score_of_model_fit_on_pooled_rows(utility, breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    rows = np.concatenate([np.arange(len(y))[1::4], np.arange(len(y))[3::4]])
    model = LogisticRegression().fit(X[rows], y[rows])
    assert utility({1, 3}) == accuracy_score(y_val, model.predict(X_val))
    assert utility.evaluate_masks([0b1010]).tolist() == [utility({3, 1})]


def test_empty_coalition_scores_majority_class_by_default(utility, breast_cancer_split):
    _, y, _, y_val = breast_cancer_split
    majority = np.bincount(y).argmax()
    assert utility(set()) == pytest.approx(np.mean(y_val == majority))


def test_empty_value_can_be_set(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    u = CoalitionUtility(LogisticRegression(), _parties(X, y, 2), (X_val, y_val), empty_value=0.5)
    assert u(()) == 0.5


def test_single_class_coalition_rules(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    parties = [Party("benign", X[y == 1], y[y == 1]), Party("malignant", X[y == 0], y[y == 0])]
    constant = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val))
    assert constant({0}) == pytest.approx(np.mean(y_val == 1))
    assert constant({1}) == pytest.approx(np.mean(y_val == 0))
    assert constant({0, 1}) > 0.9
    strict = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), single_class="raise")
    with pytest.raises(RuntimeError, match="single class"):
        strict({0})
    fit_anyway = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), single_class="fit")
    with pytest.raises(RuntimeError, match=r"coalition \[0\].*failed.*on_error"):
        fit_anyway({0})


def test_failed_fit_substitution_is_opt_in_and_reported(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    parties = [Party("benign", X[y == 1], y[y == 1]), Party("malignant", X[y == 0], y[y == 0])]
    u = CoalitionUtility(
        LogisticRegression(), parties, (X_val, y_val), single_class="fit", on_error=0.0
    )
    assert u({1}) == 0.0
    assert len(u.failures) == 1 and u.failures[0].mask == 0b10
    assert "ValueError" in u.failures[0].error


def test_random_state_makes_fits_reproducible_and_learner_untouched(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    forest = RandomForestClassifier(n_estimators=5)
    before = clone(forest).get_params()
    values = [
        CoalitionUtility(forest, _parties(X, y, 3), (X_val, y_val), random_state=7)({0, 2})
        for _ in range(2)
    ]
    assert values[0] == values[1]
    assert forest.get_params() == before
    assert not hasattr(forest, "estimators_")


def test_regression_with_r2(breast_cancer_split):
    X, _, X_val, _ = breast_cancer_split
    rng = np.random.default_rng(0)
    w = rng.normal(size=X.shape[1])
    y, y_val = X @ w, X_val @ w
    u = CoalitionUtility(LinearRegression(), _parties(X, y, 3), (X_val, y_val), scorer="r2")
    assert u({0, 1, 2}) == pytest.approx(1.0)
    assert u(()) == pytest.approx(1 - np.mean((y_val - y.mean()) ** 2) / np.var(y_val))


def test_fingerprint_tracks_everything_the_table_depends_on(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    parties = _parties(X, y, 3)
    base = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), random_state=0)
    same = CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), random_state=0)
    assert base.fingerprint() == same.fingerprint()
    variants = [
        CoalitionUtility(LogisticRegression(C=0.5), parties, (X_val, y_val), random_state=0),
        CoalitionUtility(LogisticRegression(), parties[:2], (X_val, y_val), random_state=0),
        CoalitionUtility(LogisticRegression(), parties, (X_val[1:], y_val[1:]), random_state=0),
        CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), "f1", random_state=0),
        CoalitionUtility(LogisticRegression(), parties, (X_val, y_val), random_state=1),
    ]
    assert len({v.fingerprint() for v in variants} | {base.fingerprint()}) == 6


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"learner": object()}, TypeError, "'learner' must be an estimator with fit"),
        ({"validation": np.zeros((3, 2))}, TypeError, "'validation' must be a pair"),
        ({"validation": (np.zeros((3, 30)), np.zeros(2))}, ValueError, "same length"),
        ({"validation": (np.zeros((3, 5)), np.zeros(3))}, ValueError, "feature"),
        ({"validation": (np.zeros((2, 30)), np.array([0, 7]))}, ValueError, "7"),
        ({"scorer": "no_such_metric"}, ValueError, "'scorer' is not a valid scorer"),
        ({"empty_value": "zero"}, ValueError, "'empty_value' must be 'dummy' or a float"),
        ({"on_error": "ignore"}, ValueError, "'on_error' must be 'raise' or a float"),
        ({"single_class": "drop"}, ValueError, "'single_class' must be one of"),
        ({"random_state": -1}, ValueError, "'random_state' must be a non-negative"),
    ],
)
def test_bad_inputs_get_clear_errors(breast_cancer_split, kwargs, error, match):
    X, y, X_val, y_val = breast_cancer_split
    args = {
        "learner": LogisticRegression(),
        "parties": _parties(X, y, 2),
        "validation": (X_val, y_val),
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        CoalitionUtility(**args)


def test_fit_rejects_unknown_players(utility):
    with pytest.raises(ValueError, match=r"indices in 0\.\.3"):
        utility.fit([5])


@pytest.mark.parametrize("estimator", ["monte_carlo", "stratified", "svarm", "msr"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_fit_failures_are_reported_by_every_estimator_and_executor(
    breast_cancer_split, estimator, n_jobs
):
    from coopml.coalitions import (
        MaxPermutations,
        monte_carlo_shapley,
        msr_banzhaf,
        stratified_shapley,
        svarm_shapley,
    )

    X, y, X_val, y_val = breast_cancer_split
    # Party 'benign' alone is single-class: its fit fails and 0.0 is substituted.
    parties = [Party("benign", X[y == 1], y[y == 1]), *_parties(X[y == 0], y[y == 0], 3)]
    u = CoalitionUtility(
        LogisticRegression(max_iter=200), parties, (X_val, y_val), single_class="fit", on_error=0.0
    )
    run = {
        "monte_carlo": lambda: monte_carlo_shapley(
            u, stopping=MaxPermutations(16), n_jobs=n_jobs, random_state=0
        ),
        "stratified": lambda: stratified_shapley(
            u, stopping=MaxPermutations(16), n_jobs=n_jobs, random_state=0
        ),
        "svarm": lambda: svarm_shapley(
            u, stopping=MaxPermutations(16), n_jobs=n_jobs, random_state=0
        ),
        "msr": lambda: msr_banzhaf(u, stopping=MaxPermutations(64), n_jobs=n_jobs, random_state=0),
    }[estimator]
    result = run()
    assert result.info["n_failures"] >= 1
    masks = {f["mask"] for f in result.info["failures"]}
    assert 0b0001 in masks  # the single-class party's own coalition
    assert len(u.failures) == result.info["n_failures"]  # collected from the workers too
