"""The service's learner allow-list (pydantic models per learner): defaults filled, and
every bad parameter refused naming it, what it allows and what it received."""

from __future__ import annotations

from typing import Any

import pytest

from coopml.service.learners import LEARNERS, LearnerError, build_learner, check_learner

#: (learner, params, the whole message).
BAD: list[tuple[str, Any, str]] = [
    ("logistic_regression", {"C": 0}, "learner.params.C of 'logistic_regression' must be "
     "float in [1e-06, 1e+06]; received 0"),
    ("logistic_regression", {"C": "1"}, "learner.params.C of 'logistic_regression' must be "
     "float in [1e-06, 1e+06]; received '1'"),
    ("logistic_regression", {"max_iter": 10.0}, "learner.params.max_iter of "
     "'logistic_regression' must be int in [1, 10000]; received 10.0"),
    ("logistic_regression", {"fit_intercept": "yes"}, "learner.params.fit_intercept of "
     "'logistic_regression' must be true or false; received 'yes'"),
    ("ridge", {"alpha": -0.5}, "learner.params.alpha of 'ridge' must be float in "
     "[0, 1e+06]; received -0.5"),
    ("ridge", {"alpha": float("inf")}, "learner.params.alpha of 'ridge' must be float in "
     "[0, 1e+06]; received inf"),
    ("ridge", {"alpha": True}, "learner.params.alpha of 'ridge' must be float in [0, 1e+06]; "
     "received True"),
    ("ridge", {"fit_intercept": 1}, "learner.params.fit_intercept of 'ridge' must be true "
     "or false; received 1"),
    ("gaussian_nb", {"var_smoothing": 2.0}, "learner.params.var_smoothing of 'gaussian_nb' "
     "must be float in [1e-15, 1]; received 2.0"),
    ("knn", {"n_neighbors": 0}, "learner.params.n_neighbors of 'knn' must be int in "
     "[1, 100]; received 0"),
    ("knn", {"n_neighbors": True}, "learner.params.n_neighbors of 'knn' must be int in "
     "[1, 100]; received True"),
    ("knn", {"weights": "inverse"}, "learner.params.weights of 'knn' must be one of "
     "'uniform', 'distance'; received 'inverse'"),
    ("random_forest", {"n_estimators": 10**9}, "learner.params.n_estimators of "
     "'random_forest' must be int in [1, 300]; received 1000000000"),
    ("random_forest", {"max_depth": 0}, "learner.params.max_depth of 'random_forest' must be "
     "int in [1, 50] or null; received 0"),
    ("decision_tree", {"min_samples_leaf": 1001}, "learner.params.min_samples_leaf of "
     "'decision_tree' must be int in [1, 1000]; received 1001"),
    ("decision_tree", {"standardize": "true"}, "learner.params.standardize of "
     "'decision_tree' must be true or false; received 'true'"),
    ("gaussian_nb", {"evil_param": 1, "other": 2}, "learner.params of 'gaussian_nb' may only "
     "contain var_smoothing, standardize; received unknown 'evil_param', 'other'"),
    ("gaussian_nb", None, "learner.params must be an object; received None"),
    ("knn", [3], "learner.params must be an object; received [3]"),
    ("svm", {}, "learner.name must be one of decision_tree, gaussian_nb, knn, "
     "linear_regression, logistic_regression, random_forest, ridge; received 'svm'"),
    ("linear_regression", {}, "learner 'linear_regression' serves regression markets; this "
     "market's task is 'classification'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "params", "message"), BAD, ids=[m[:60] for _, _, m in BAD])
def test_a_bad_learner_request_names_the_parameter_what_it_allows_and_what_it_received(
    name: str, params: Any, message: str
) -> None:
    with pytest.raises(LearnerError) as refused:
        check_learner(name, params, "classification")
    assert str(refused.value) == message


def test_defaults_are_filled_and_numbers_normalised() -> None:
    assert check_learner("ridge", {"alpha": 2}, "regression") == {
        "name": "ridge",
        "params": {"alpha": 2.0, "fit_intercept": True, "standardize": False},
    }
    assert isinstance(check_learner("ridge", {"alpha": 2}, "regression")["params"]["alpha"], float)
    forest = check_learner("random_forest", {"max_depth": None, "standardize": True}, "regression")
    assert forest == {
        "name": "random_forest",
        "params": {
            "n_estimators": 50,
            "max_depth": None,
            "min_samples_leaf": 1,
            "standardize": True,
        },
    }
    assert check_learner("logistic_regression", {}, "classification")["params"] == {
        "C": 1.0,
        "max_iter": 1000,
        "fit_intercept": True,
        "standardize": False,
    }


def test_the_allow_list_serves_the_documented_tasks() -> None:
    assert {name: spec.tasks for name, spec in LEARNERS.items()} == {
        "logistic_regression": ("classification",),
        "ridge": ("classification", "regression"),
        "linear_regression": ("regression",),
        "gaussian_nb": ("classification",),
        "knn": ("classification", "regression"),
        "random_forest": ("classification", "regression"),
        "decision_tree": ("classification", "regression"),
    }


def test_a_stored_round_configuration_builds_its_estimator() -> None:
    """A round's stored ``learner`` (every parameter filled, read back from JSON) builds
    the estimator it names, with those parameters and a scaler when asked."""
    stored = {
        "name": "knn",
        "params": {"n_neighbors": 7, "weights": "distance", "standardize": True},
    }
    pipeline = build_learner(stored, "regression")
    scaler, knn = (step for _, step in pipeline.steps)
    assert type(scaler).__name__ == "StandardScaler" and type(knn).__name__ == "KNeighborsRegressor"
    assert (knn.n_neighbors, knn.weights) == (7, "distance")
    tree = build_learner({"name": "decision_tree", "params": {"max_depth": 3}}, "classification")
    assert (type(tree).__name__, tree.max_depth, tree.random_state) == (
        "DecisionTreeClassifier",
        3,
        0,
    )
    with pytest.raises(LearnerError, match="n_neighbors"):
        build_learner({"name": "knn", "params": {"n_neighbors": 0}}, "regression")
