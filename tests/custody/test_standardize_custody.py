"""Standardisation in parties custody: ``make_pipeline(StandardScaler(), learner)``
settles as operator custody does (payouts to 1e-6) and keeps the same models
(predictions to 1e-8), on features of very different scales and a constant column."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.custody._grid import assert_same_settlement, both_custodies, split_market

from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.learners import build_estimator, custody_learner, learner_spec
from coopml.custody.market import custom_models, released_models
from coopml.custody.standardize import coalition_scaler
from coopml.data import Party, load_dataset

#: columns multiplied by these factors: scales from 1e-3 to 1e3
FACTORS = (1e3, 1e-3, 1.0, 1e3, 1e-3)
CONSTANT = 3.0


def _skewed(X: np.ndarray) -> np.ndarray:
    """Up to five features at very different scales, then a constant column."""
    X = X[:, : len(FACTORS)] * np.array(FACTORS[: min(X.shape[1], len(FACTORS))])
    return np.hstack([X, np.full((X.shape[0], 1), CONSTANT)])


def _market(dataset: str, multi: bool, n_train: int) -> tuple[list[Party], Any]:
    ds = load_dataset(dataset)
    return split_market(_skewed(ds.X), ds.y, multi, n_train)


CASES = [
    pytest.param("breast_cancer", GaussianNB(), "accuracy", 45, id="naive_bayes"),
    pytest.param("wine", LinearDiscriminantAnalysis(), "accuracy", 60, id="lda"),
    pytest.param("diabetes", Ridge(alpha=1.0), "clipped_r2", 60, id="ridge"),
    pytest.param("diabetes", LinearRegression(), "clipped_r2", 60, id="linear"),
    *(
        pytest.param(
            dataset,
            LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000),
            "accuracy",
            45,
            id=case,
        )
        for dataset, case in (("breast_cancer", "logistic"), ("iris", "logistic-3"))
    ),
]


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


@pytest.mark.parametrize("multi", [False, True], ids=["single", "per_party"])
@pytest.mark.parametrize(("dataset", "learner", "scorer", "n_train"), CASES)
def test_standardised_payouts_and_models_equal_operator_custody(
    dataset: str, learner: Any, scorer: str, n_train: int, multi: bool
) -> None:
    parties, (X_val, y_val) = _market(dataset, multi, n_train)
    pipeline = make_pipeline(StandardScaler(), learner)
    reference, custody, _ = both_custodies(parties, (X_val, y_val), pipeline, scorer, multi)
    names = [p.name for p in parties]
    payouts = np.array([[p.payout, p.fee] for p in reference.settlement.parties])
    assert np.abs(payouts).max() > 1e-3  # a market where data is worth something
    assert_same_settlement(reference.settlement, custody.settlement, atol=1e-6)
    for game_ref, game in zip(reference.games, custody.games, strict=True):
        np.testing.assert_allclose(game.table, game_ref.table, rtol=0, atol=1e-9)
    # the kept models: pipelines predicting as operator custody's, also after the
    # round trip through plain data (what the service stores)
    again = custom_models(json.loads(json.dumps(released_models(custody))))
    for name in names:
        kept = custody.models[name].estimator
        assert isinstance(kept, Pipeline) and isinstance(kept[0], StandardScaler)
        expected = _predict(reference.models[name].estimator, X_val)
        np.testing.assert_allclose(_predict(kept, X_val), expected, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(
            _predict(again[name].estimator, X_val), expected, rtol=1e-8, atol=1e-8
        )


def test_each_coalition_has_its_own_scaler() -> None:
    """The grand coalition's scaler is the pooled rows' (computed here by NumPy), and a
    single party's is its own rows'; the constant column has scale 1."""
    parties, (X_val, y_val) = _market("breast_cancer", False, 45)
    agents = [Agent(p) for p in parties] + [Agent(Party("buyer", X_val, y_val, X_val, y_val))]
    result = run_custody_market(
        LocalTransport(agents),
        [p.name for p in parties],
        make_pipeline(StandardScaler(), GaussianNB()),
        "buyer",
    )
    scaler = result.models["party_0"].estimator[0]
    pooled = np.vstack([p.X for p in parties])
    np.testing.assert_allclose(scaler.mean_, pooled.mean(axis=0), rtol=1e-12)
    expected = pooled.std(axis=0)
    expected[expected == 0] = 1.0
    np.testing.assert_allclose(scaler.scale_, expected, rtol=1e-10)
    assert scaler.scale_[-1] == 1.0 and scaler.var_[-1] == 0.0
    assert scaler.n_samples_seen_ == pooled.shape[0]


def test_coalition_scaler_follows_scikit_learn_on_constant_features() -> None:
    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(size=(50, 2)) * [1e3, 1e-3], np.full((50, 1), 0.1)])
    shift = X.mean(axis=0) + X.std(axis=0)  # another coalition's mean: about a std away
    Z = X - shift
    _, mean, var, scale = coalition_scaler(
        np.array([50.0]), Z.sum(axis=0)[None], (Z**2).sum(axis=0)[None], shift
    )
    ref = StandardScaler().fit(X)
    np.testing.assert_allclose(mean[0], ref.mean_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(scale[0], ref.scale_, rtol=1e-10)
    assert scale[0, 2] == 1.0 and var[0, 2] == 0.0


def test_the_pipeline_travels_as_a_spec() -> None:
    pipeline = make_pipeline(StandardScaler(), Ridge(alpha=2.0))
    spec = learner_spec(pipeline)
    assert spec["standardize"] is True and spec["name"] == "Ridge"
    rebuilt = build_estimator(json.loads(json.dumps(spec)))
    assert isinstance(rebuilt, Pipeline) and rebuilt[1].alpha == 2.0
    assert custody_learner(rebuilt).__name__ == "FastLinearRegression"
    with pytest.raises(ValueError, match="learner standardize must be true or false"):
        build_estimator({**spec, "standardize": "yes"})


@pytest.mark.parametrize(
    "pipeline",
    [
        make_pipeline(StandardScaler(with_mean=False), Ridge()),
        make_pipeline(StandardScaler(), StandardScaler(), Ridge()),
        Pipeline([("ridge", Ridge())]),
    ],
    ids=["no-centring", "two-scalers", "no-scaler"],
)
def test_other_pipelines_are_refused(pipeline: Any) -> None:
    with pytest.raises(ValueError, match=r"only StandardScaler\(\) \(default parameters\)"):
        custody_learner(pipeline)


def test_standardised_logistic_without_intercept_is_refused() -> None:
    parties, (X_val, y_val) = _market("breast_cancer", False, 45)
    agents = [Agent(p) for p in parties] + [Agent(Party("buyer", X_val, y_val, X_val, y_val))]
    with pytest.raises(ValueError, match="fit_intercept=False"):
        run_custody_market(
            LocalTransport(agents),
            [p.name for p in parties],
            make_pipeline(StandardScaler(), LogisticRegression(fit_intercept=False)),
            "buyer",
        )


def test_standardised_logistic_with_privacy_noise_is_refused() -> None:
    from coopml.custody import GaussianMechanism

    parties, (X_val, y_val) = _market("breast_cancer", False, 45)
    noise = GaussianMechanism(1.0, 1e-5, clip=4.0, labels=[0, 1])
    agents = [Agent(p, noise, random_state=0) for p in parties]
    agents.append(Agent(Party("buyer", X_val, y_val, X_val, y_val)))
    with pytest.raises(ValueError, match="add privacy noise"):
        run_custody_market(
            LocalTransport(agents),
            [p.name for p in parties],
            make_pipeline(StandardScaler(), LogisticRegression()),
            "buyer",
        )
