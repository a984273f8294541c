"""Every fast learner against the generic refit path (the reference) on small inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier

from coopml.coalitions import CoalitionGame
from coopml.data import Party
from coopml.learning import CoalitionUtility
from coopml.learning.fast import (
    FastGaussianNB,
    FastLinearDiscriminantAnalysis,
    FastLinearRegression,
    FastLogisticRegression,
    fast_learner_for,
    membership,
)


def _parties(X, y, m):
    return [Party(f"p{i}", X[i::m], y[i::m]) for i in range(m)]


def _tables(learner, X, y, X_val, y_val, m, **kwargs):
    fast = CoalitionUtility(learner, _parties(X, y, m), (X_val, y_val), **kwargs)
    slow = CoalitionUtility(learner, _parties(X, y, m), (X_val, y_val), fast=False, **kwargs)
    assert fast.fast_learner is not None and slow.fast_learner is None
    return CoalitionGame.from_utility(fast).table, CoalitionGame.from_utility(slow).table


def _regression(seed, n=90, d=4):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.1, 10, d) + rng.normal(0, 50, d)
    y = X @ rng.normal(size=d) + rng.normal(size=n) + 3.0
    return X, y, X[: n // 3] + 0.5, y[: n // 3]


def _classification(seed, n=120, d=4, k=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(k, d))[y] + rng.normal(0, 20, d)
    return X, y, X[::3] + rng.normal(0, 0.3, (len(y[::3]), d)), y[::3]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "learner",
    [LinearRegression(), Ridge(alpha=3.0), Ridge(alpha=0.5, fit_intercept=False)],
    ids=["ols", "ridge", "ridge-no-intercept"],
)
@pytest.mark.parametrize("scorer", ["r2", "neg_mean_absolute_error", "explained_variance"])
def test_linear_tables_match_refit(learner, seed, scorer):
    X, y, X_val, y_val = _regression(seed)
    fast, slow = _tables(learner, X, y, X_val, y_val, 5, scorer=scorer)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)


def test_rank_deficient_coalitions_take_the_refit_path():
    """Coalitions with fewer rows than features get sklearn's minimum-norm solution."""
    X, y, X_val, y_val = _regression(3, n=24, d=8)
    fast, slow = _tables(LinearRegression(), X, y, X_val, y_val, 4, scorer="r2")
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
    A = membership(np.array([1, 15]), 4)
    parts, targets = [X[i::4] for i in range(4)], [y[i::4] for i in range(4)]
    block = fast_learner_for(LinearRegression(), parts, targets, X_val)
    assert block is not None and block.fit_block(A).ok.tolist() == [False, True]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "learner",
    [
        LinearDiscriminantAnalysis(),
        LinearDiscriminantAnalysis(solver="lsqr"),
        LinearDiscriminantAnalysis(solver="eigen"),
        GaussianNB(),
        LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-10),
        LogisticRegression(fit_intercept=False, solver="newton-cholesky", tol=1e-10),
    ],
    ids=["lda-svd", "lda-lsqr", "lda-eigen", "gnb", "logistic", "logistic-no-intercept"],
)
@pytest.mark.parametrize("k", [2, 3])
def test_classifier_tables_match_refit(learner, seed, k):
    X, y, X_val, y_val = _classification(seed, k=k)
    fast, slow = _tables(learner, X, y, X_val, y_val, 5)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize(
    "learner",
    [
        LinearDiscriminantAnalysis(),
        GaussianNB(),
        LogisticRegression(solver="newton-cholesky", tol=1e-10),
    ],
    ids=["lda", "gnb", "logistic"],
)
def test_probability_scorer_and_missing_classes(learner):
    """Parties holding some classes only (coalitions see 2 or 3 classes); neg_log_loss
    reads the fitted estimator's probabilities."""
    X, y, X_val, y_val = _classification(4, n=150, k=3)
    holds = [(0, 2), (0, 1), (1, 2), (0, 1, 2)]
    parties = [
        Party(f"p{i}", X[i::4][np.isin(y[i::4], c)], y[i::4][np.isin(y[i::4], c)])
        for i, c in enumerate(holds)
    ]
    kinds = {
        len(np.unique(np.concatenate([p.y for j, p in enumerate(parties) if s >> j & 1])))
        for s in range(1, 16)
    }
    assert kinds == {2, 3}
    # sklearn's log loss refuses a 2-class model on 3-class labels: substituted alike.
    games = [
        CoalitionGame.from_utility(
            CoalitionUtility(
                learner, parties, (X_val, y_val), scorer="neg_log_loss", on_error=-9.0, fast=f
            )
        )
        for f in (True, False)
    ]
    np.testing.assert_allclose(games[0].table, games[1].table, rtol=1e-6, atol=1e-7)
    assert [f["mask"] for f in games[0].info["failures"]] == [1, 2, 4]
    assert games[0].info["failures"] == games[1].info["failures"]


def test_fitted_parameters_match_sklearn():
    X, y, X_val, _ = _regression(5)
    parts, targets = [X[i::3] for i in range(3)], [y[i::3] for i in range(3)]
    fast = FastLinearRegression(Ridge(alpha=2.0), parts, targets, X_val)
    block = fast.fit_block(membership(np.array([0b101]), 3))
    model = fast.estimator(block, 0)
    rows = np.concatenate([X[0::3], X[2::3]]), np.concatenate([y[0::3], y[2::3]])
    ref = Ridge(alpha=2.0).fit(*rows)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-9)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=1e-9)

    Xc, yc, Xc_val, _ = _classification(6, k=3)
    for cls, learner, attrs in [
        (FastLinearDiscriminantAnalysis, LinearDiscriminantAnalysis(), ["means_", "priors_"]),
        (FastGaussianNB, GaussianNB(), ["theta_", "var_", "class_prior_", "epsilon_"]),
    ]:
        fast_c = cls(learner, [Xc[i::3] for i in range(3)], [yc[i::3] for i in range(3)], Xc_val)
        model = fast_c.estimator(fast_c.fit_block(membership(np.array([7]), 3)), 0)
        ref = clone(learner).fit(Xc, yc)
        for attr in attrs:
            np.testing.assert_allclose(getattr(model, attr), getattr(ref, attr), rtol=1e-9)
        np.testing.assert_allclose(
            model.predict_proba(Xc_val), ref.predict_proba(Xc_val), rtol=1e-8, atol=1e-12
        )


def test_logistic_default_lbfgs_values_within_tolerance(breast_cancer_split):
    """sklearn's lbfgs stops at tol=1e-4; the fast optimum agrees to the documented
    tolerance on values, exactly on most coalitions."""
    X, y, X_val, y_val = breast_cancer_split
    fast, slow = _tables(LogisticRegression(), X, y, X_val, y_val, 6)
    assert np.mean(fast == slow) > 0.9
    assert np.abs(fast - slow).max() <= 2 / len(y_val) + 1e-12
    phi_fast = CoalitionGame(fast).shapley().values
    phi_slow = CoalitionGame(slow).shapley().values
    assert np.abs(phi_fast - phi_slow).max() < 1e-3


def test_logistic_is_the_exact_optimum(breast_cancer_split):
    X, y, X_val, _ = breast_cancer_split
    parts, targets = [X[i::4] for i in range(4)], [y[i::4] for i in range(4)]
    fast = FastLogisticRegression(LogisticRegression(C=2.0), parts, targets, X_val)
    block = fast.fit_block(membership(np.array([0b0110, 0b1111]), 4))
    assert block.ok.all()
    for b, rows in enumerate([np.r_[1::4, 2::4], np.arange(len(y))]):
        rows = (
            np.sort(np.concatenate([np.arange(len(y))[i::4] for i in (1, 2)])) if b == 0 else rows
        )
        ref = LogisticRegression(C=2.0, solver="newton-cholesky", tol=1e-12).fit(
            np.concatenate([X[i::4] for i in (1, 2)]) if b == 0 else X,
            np.concatenate([y[i::4] for i in (1, 2)]) if b == 0 else y,
        )
        model = fast.estimator(block, b)
        np.testing.assert_allclose(
            model.decision_function(X_val), ref.decision_function(X_val), atol=1e-7
        )


def test_single_class_rules_hold_on_the_fast_path(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    parties = [Party("benign", X[y == 1], y[y == 1]), Party("malignant", X[y == 0], y[y == 0])]
    for learner in (LinearDiscriminantAnalysis(), GaussianNB(), LogisticRegression()):
        constant = CoalitionUtility(learner, parties, (X_val, y_val))
        assert constant.fast_learner is not None
        assert constant({0}) == pytest.approx(np.mean(y_val == 1))
        strict = CoalitionUtility(learner, parties, (X_val, y_val), single_class="raise")
        with pytest.raises(RuntimeError, match="single class"):
            strict({0})


def test_dispatch_only_for_supported_estimators_and_parameters():
    X, y = np.eye(3), np.array([0, 1, 1])

    class MyRidge(Ridge):
        pass

    unsupported = [
        Ridge(positive=True),
        Ridge(solver="sag"),
        MyRidge(),
        LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"),
        GaussianNB(priors=[0.5, 0.5]),
        LogisticRegression(l1_ratio=1.0, solver="saga"),
        LogisticRegression(class_weight="balanced"),
        LogisticRegression(C=np.inf),
        DecisionTreeClassifier(),
    ]
    for learner in unsupported:
        assert fast_learner_for(learner, [X], [y], X) is None, learner


def test_fast_flag_is_validated_and_part_of_the_fingerprint(breast_cancer_split):
    X, y, X_val, y_val = breast_cancer_split
    with pytest.raises(TypeError, match="parameter 'fast' must be a bool; got 'yes'"):
        CoalitionUtility(GaussianNB(), _parties(X, y, 2), (X_val, y_val), fast="yes")  # type: ignore[arg-type]
    a = CoalitionUtility(GaussianNB(), _parties(X, y, 2), (X_val, y_val))
    b = CoalitionUtility(GaussianNB(), _parties(X, y, 2), (X_val, y_val), fast=False)
    assert a.fingerprint() != b.fingerprint()
    assert a.block_size > b.block_size


def test_block_fits_run_with_one_blas_thread_and_the_same_results(monkeypatch):
    from threadpoolctl import threadpool_info, threadpool_limits

    import coopml.learning.fast._base as base

    X, y, X_val, _ = _classification(7, k=3)
    parts, targets = [X[i::4] for i in range(4)], [y[i::4] for i in range(4)]
    fast = FastLinearDiscriminantAnalysis(LinearDiscriminantAnalysis(), parts, targets, X_val)
    seen = []
    inner = fast._fit_block

    def spy(A):
        seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
        return inner(A)

    monkeypatch.setattr(fast, "_fit_block", spy)
    A = membership(np.arange(1, 16), 4)
    with threadpool_limits(limits=2, user_api="blas"):  # the limit must show inside
        limited = fast.fit_block(A)
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert seen and set(seen) == {1}
    assert set(after) != {1}  # restored afterwards
    monkeypatch.setattr(base, "BLAS_THREADS", None)
    free = fast.fit_block(A)
    np.testing.assert_array_equal(limited.ok, free.ok)
    np.testing.assert_array_equal(limited.predictions, free.predictions)
    np.testing.assert_allclose(limited.params["coef"], free.params["coef"], rtol=1e-9)


def test_batched_newton_declines_models_with_too_many_parameters():
    """Ten classes on 64 pixels (650 parameters per model): each coalition's Hessian
    alone would take 3.4 MB and a Newton step 2.7e8 operations, so scikit-learn refits
    instead; two classes on 30 features (31 parameters) keep the batched fit."""
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.linear_model import LogisticRegression

    from coopml.learning.fast import fast_learner_for
    from coopml.learning.fast.logistic import MAX_PARAMETERS

    X, y = load_digits(return_X_y=True)
    assert (64 + 1) * 10 > MAX_PARAMETERS
    assert (
        fast_learner_for(LogisticRegression(), [X[:100], X[100:200]], [y[:100], y[100:200]], X[:10])
        is None
    )
    X, y = load_breast_cancer(return_X_y=True)
    fast = fast_learner_for(
        LogisticRegression(), [X[:100], X[100:200]], [y[:100], y[100:200]], X[:10]
    )
    assert type(fast).__name__ == "FastLogisticRegression"
