"""The model release check on plain fitted scikit-learn estimators and pipelines: it finds
other parties' rows wherever the fitted state holds them (by content, not by learner
name), never reports the recipient's own rows, and releases linear models, ridge, naive
Bayes and LDA."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from coopml.market.release import TREE_ARRAYS, check_release, fitted_arrays


def _split(X, y, seed=0, n_own=120):
    order = np.random.default_rng(seed).permutation(len(y))
    own, other = order[:n_own], order[n_own:]
    return X[own], y[own], X[other], y[other]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return _split(X, y)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return _split(X, y)


def _fit(estimator, data):
    X_own, y_own, X_other, y_other = data
    X, y = np.vstack([X_own, X_other]), np.concatenate([y_own, y_other])
    return estimator.fit(X, y)


def _check(estimator, data):
    X_own, y_own, X_other, y_other = data
    return check_release(_fit(estimator, data), X_other, y_other, X_own=X_own, y_own=y_own)


def _scaled(estimator):
    return make_pipeline(StandardScaler(), estimator)


RELEASED_CLASSIFIERS = [
    LogisticRegression(max_iter=5000),
    RidgeClassifier(),
    GaussianNB(),
    LinearDiscriminantAnalysis(store_covariance=True),
]
RELEASED_REGRESSORS = [LinearRegression(), Ridge()]


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("estimator", RELEASED_CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_linear_ridge_naive_bayes_and_lda_are_released(cancer, estimator, scale):
    check = _check(_scaled(estimator) if scale else estimator, cancer)
    assert check.releasable, check.to_dict()
    assert check.exposures == () and check.n_arrays >= 3
    assert check.reason.startswith("no training row of another party")


@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("estimator", RELEASED_REGRESSORS, ids=lambda e: type(e).__name__)
def test_linear_regressors_are_released(diabetes, estimator, scale):
    check = _check(_scaled(estimator) if scale else estimator, diabetes)
    assert check.releasable, check.to_dict()


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree", "ball_tree"])
def test_knn_stores_every_other_row_and_label(cancer, algorithm):
    _X_own, _y_own, X_other, _y_other = cancer
    check = _check(KNeighborsClassifier(algorithm=algorithm), cancer)
    assert not check.releasable
    found = {(e.path, e.kind): e for e in check.exposures}
    assert found["_fit_X", "features"].rows == tuple(range(len(X_other)))
    assert found["_fit_X", "features"].how == "raw rows"
    # kNN's _y holds label indices into classes_: decoded, they are the rows' labels
    assert found["_y", "label"].rows == tuple(range(len(X_other)))
    if algorithm != "brute":  # the search tree keeps its own copy of the rows
        assert any(p.startswith("_tree[") and k == "features" for p, k in found)
    assert check.rows == tuple(range(len(X_other)))
    assert "training rows in _fit_X" in check.reason and "individual labels in _y" in check.reason


def test_knn_regressor_and_scaled_rows(diabetes):
    check = _check(_scaled(KNeighborsRegressor()), diabetes)
    found = {(e.path, e.kind): e for e in check.exposures}
    rows = found["kneighborsregressor._fit_X", "features"]
    assert rows.how == "rows after step 'standardscaler'"  # not the raw rows: scaled ones
    assert rows.n_rows == len(diabetes[2])
    assert found["kneighborsregressor._y", "label"].n_rows == len(diabetes[2])


def test_the_recipients_own_rows_are_never_reported(cancer):
    X_own, y_own, X_other, y_other = cancer
    # another party also holds three of the recipient's rows: not news to the recipient
    X_other = np.vstack([X_other, X_own[:3]])
    y_other = np.concatenate([y_other, y_own[:3]])
    knn = KNeighborsClassifier(algorithm="brute").fit(
        np.vstack([X_own, X_other]), [*y_own, *y_other]
    )
    check = check_release(knn, X_other, y_other, X_own=X_own, y_own=y_own)
    assert len(X_other) - 3 not in check.rows and check.rows[-1] == len(X_other) - 4
    # and a model trained on the recipient's rows alone is released
    alone = KNeighborsClassifier().fit(X_own, y_own)
    assert check_release(alone, X_other[:-3], y_other[:-3], X_own=X_own, y_own=y_own).releasable


@pytest.mark.parametrize("scale", [False, True])
def test_trees_grown_to_single_row_leaves_are_refused(cancer, scale):
    _X_own, _y_own, X_other, y_other = cancer
    tree = DecisionTreeClassifier(random_state=0)
    check = _check(_scaled(tree) if scale else tree, cancer)
    assert not check.releasable
    (exposure,) = check.exposures
    assert exposure.kind == "label" and exposure.how == "leaf holding one training row"
    fitted = _fit(_scaled(tree) if scale else tree, cancer)
    t = (fitted[-1] if scale else fitted).tree_
    Xt = fitted[:-1].transform(X_other) if scale else X_other
    leaves = (fitted[-1] if scale else fitted).apply(Xt)
    for r in exposure.rows:  # each reported row sits alone in its leaf, with its label
        assert t.n_node_samples[leaves[r]] == 1
        assert np.argmax(t.value[leaves[r], 0]) == y_other[r]


def test_forests_are_refused_through_their_trees(cancer, diabetes):
    check = _check(RandomForestClassifier(n_estimators=10, random_state=0), cancer)
    assert not check.releasable and check.n_trees == 10
    (group,) = check.summary()
    assert group["path"] == "estimators_[*].tree_.value" and group["kind"] == "label"
    assert group["n_rows"] == len(check.rows) > 0
    check = _check(_scaled(RandomForestRegressor(n_estimators=5, random_state=0)), diabetes)
    assert not check.releasable
    assert check.summary()[0]["path"] == "randomforestregressor.estimators_[*].tree_.value"


def test_regression_leaves_of_two_rows_are_solved(diabetes):
    """mean ± sqrt(impurity) of a two-row leaf are the two targets."""
    X_own, y_own, X_other, y_other = diabetes
    tree = _fit(DecisionTreeRegressor(min_samples_leaf=2, random_state=0), diabetes)
    check = check_release(tree, X_other, y_other, X_own=X_own, y_own=y_own)
    hows = {e.how for e in check.exposures}
    assert hows == {"leaf of two rows (mean ± impurity)"}
    leaves = tree.apply(X_other)
    t = tree.tree_
    for r in check.exposures[0].rows:
        leaf = leaves[r]
        m, s = t.value[leaf, 0, 0], np.sqrt(t.impurity[leaf])
        assert t.n_node_samples[leaf] == 2
        assert min(abs(m - s - y_other[r]), abs(m + s - y_other[r])) < 1e-6 * max(1, abs(m))


def test_aggregates_of_several_rows_are_not_reported(cancer):
    """What the check does not claim to see: leaves of >= 5 rows, class means."""
    check = _check(DecisionTreeClassifier(min_samples_leaf=5, random_state=0), cancer)
    assert check.releasable, check.to_dict()


def test_a_class_of_one_row_is_that_row(cancer):
    """Detection is by content: naive Bayes is released, except when a class mean is the
    mean of a single row of another party."""
    X_own, y_own, X_other, _y_other = cancer
    lone = X_other[:1]
    X = np.vstack([X_own, lone])
    y = np.concatenate([y_own, [7]])
    nb = GaussianNB().fit(X, y)
    check = check_release(nb, lone, [7], X_own=X_own, y_own=y_own)
    found = {(e.path, e.kind) for e in check.exposures}
    assert found == {("theta_", "features"), ("classes_", "label")}


def test_support_vectors_are_training_rows(cancer):
    _X_own, _y_own, _X_other, _y_other = cancer
    check = _check(_scaled(SVC()), cancer)
    assert not check.releasable
    assert check.summary()[0]["path"] == "svc.support_vectors_"


class _Copier(ClassifierMixin, BaseEstimator):
    """Keeps the data in odd places: transposed, float32, in a dict, a list, a 1-D row."""

    def fit(self, X, y):
        X = np.asarray(X, dtype=np.float64)
        self.transposed_ = X.T.copy()
        self.small_ = X.astype(np.float32)
        self.store_ = {"nested": [np.zeros(3), X[-2:].copy()], "own": X[:2].copy()}
        self.one_row_ = X[-1].copy()
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.zeros(len(X))


def test_rows_are_found_transposed_in_float32_and_nested(cancer):
    _X_own, _y_own, X_other, _y_other = cancer
    check = _check(_Copier(), cancer)
    found = {e.path: e.n_rows for e in check.exposures if e.kind == "features"}
    assert found["transposed_"] == len(X_other)
    assert found["small_"] == len(X_other)
    assert found["one_row_"] == 1
    assert found["store_['nested'][1]"] == 2
    assert "store_['own']" not in found  # X[:2] are the recipient's own rows


def test_fitted_arrays_walks_trees_through_public_arrays(cancer):
    forest = _fit(RandomForestClassifier(n_estimators=2, random_state=0), cancer)
    paths = [p for p, _ in fitted_arrays(forest)]
    for name in TREE_ARRAYS:
        assert f"estimators_[1].tree_.{name}" in paths
    arrays = dict(fitted_arrays(_fit(_scaled(GaussianNB()), cancer)))
    assert {"standardscaler.mean_", "gaussiannb.theta_", "gaussiannb.var_"} <= set(arrays)


def test_labels_alone_need_y(cancer):
    _X_own, _y_own, X_other, _y_other = cancer
    knn = _fit(KNeighborsClassifier(algorithm="brute"), cancer)
    check = check_release(knn, X_other)  # no labels given: feature rows only
    assert {e.kind for e in check.exposures} == {"features"}
    tree = _fit(DecisionTreeClassifier(random_state=0), cancer)
    assert check_release(tree, X_other).releasable  # leaves give away labels only


def test_to_dict_is_json_and_the_reason_names_no_row(cancer):
    _X_own, _y_own, X_other, _y_other = cancer
    check = _check(KNeighborsClassifier(), cancer)
    text = json.dumps(check.to_dict())
    assert json.loads(text)["releasable"] is False
    assert "rows" not in check.to_dict()["exposures"][0]
    assert check.to_dict(rows=True)["exposures"][0]["rows"][:3] == [0, 1, 2]
    for value in X_other[:5].ravel():
        assert repr(float(value)) not in check.reason


def test_a_step_that_cannot_transform_refuses_release(cancer):
    _X_own, _y_own, X_other, y_other = cancer
    pipe = _fit(_scaled(LogisticRegression(max_iter=5000)), cancer)
    check = check_release(pipe, X_other[:, :5], y_other)
    assert not check.releasable and "could not transform" in check.reason


def test_input_validation_names_the_parameter(cancer):
    X_own, _y_own, X_other, y_other = cancer
    model = _fit(GaussianNB(), cancer)
    with pytest.raises(ValueError, match="parameter 'y'"):
        check_release(model, X_other, y_other[:-1])
    with pytest.raises(ValueError, match="parameter 'X_own'"):
        check_release(model, X_other, y_other, X_own=X_own[:, :3])
    with pytest.raises(ValueError, match="parameter 'X'"):
        check_release(model, np.zeros((2, 2, 2)))
