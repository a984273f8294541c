"""The privacy knob: Gaussian-mechanism noise on the agents' statistics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB

from coopml.custody import Agent, LocalTransport, run_custody_market
from coopml.custody.privacy import (
    GaussianMechanism,
    classic_sigma,
    clip_rows,
    gdp_delta,
    gdp_mu,
)
from coopml.data import Party, load_dataset, make_parties, train_validation_split


@pytest.fixture(scope="module")
def market() -> Any:
    ds = load_dataset("breast_cancer")
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    X, X_val, y, y_val = train_validation_split(X, ds.y, random_state=0)
    parties = make_parties(X[:120], y[:120], 3, random_state=0)
    return parties, (X_val, y_val)


def _run(parties: Any, val: Any, privacy: Any = None, learner: Any = None, seed: int = 0) -> Any:
    buyer = Agent(Party("buyer", val[0][:1], val[1][:1], val[0], val[1]))
    agents = [Agent(p, privacy, random_state=seed + j) for j, p in enumerate(parties)]
    transport = LocalTransport([*agents, buyer])
    names = [p.name for p in parties]
    return run_custody_market(transport, names, learner or GaussianNB(), "buyer")


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 8.0])
def test_calibration_matches_the_analytic_gaussian_formula(epsilon: Any) -> None:
    delta = 1e-6
    mu = gdp_mu(epsilon, delta)
    # the privacy profile of mu-GDP at epsilon is delta (Balle and Wang 2018, Thm 8)
    phi = stats.norm.cdf
    profile = phi(-epsilon / mu + mu / 2) - math.exp(epsilon) * phi(-epsilon / mu - mu / 2)
    assert profile == pytest.approx(delta, rel=1e-6)
    assert gdp_delta(mu * 1.01, epsilon) > delta  # the largest such mu
    m = GaussianMechanism(epsilon, delta, clip=2.0, labels=[0, 1])
    # four releases composed (GDP: sqrt of the sum of squares) spend exactly mu
    assert m.noise_multiplier("classification") == pytest.approx(2.0 / mu)
    assert m.noise_multiplier("regression") == pytest.approx(math.sqrt(5) / mu)
    if epsilon < 1:  # the classical calibration is valid there, and looser
        assert 1 / mu < classic_sigma(epsilon, delta)


def test_reference_value_of_balle_and_wang() -> None:
    # epsilon = 1, delta = 1e-5: sigma = 3.73 per unit sensitivity (classical: 4.85)
    assert 1 / gdp_mu(1.0, 1e-5) == pytest.approx(3.7306, abs=1e-3)


def test_noise_has_the_stated_variance() -> None:
    """Many agents' noisy feature sums: chi-square test of the sample variance."""
    X = np.array([[3.0, 4.0], [0.1, 0.2], [-1.0, 0.5]])
    mech = GaussianMechanism(2.0, 1e-5, clip=1.0, labels=[0, 1])
    exact = clip_rows(X, 1.0).sum(axis=0)
    draws = np.array(
        [
            Agent(Party("a", X, [0, 1, 1]), mech, random_state=s).handle(
                {"kind": "moments", "task": "classification"}
            )["sum_x"]
            - exact
            for s in range(3000)
        ]
    ).ravel()
    sigma = 1.0 * mech.noise_multiplier("classification")  # sensitivity C = 1
    k = draws.size
    statistic = (draws**2).sum() / sigma**2  # chi-square with k degrees of freedom
    assert stats.chi2.cdf(statistic, k) == pytest.approx(0.5, abs=0.49)
    assert abs(draws.mean()) < 4 * sigma / math.sqrt(k)
    # and the sample standard deviation is within 3% of the stated one
    assert draws.std() == pytest.approx(sigma, rel=0.03)


def test_no_privacy_and_infinite_epsilon_give_todays_results(market: Any) -> None:
    parties, val = market
    exact = _run(parties, val)
    inf = GaussianMechanism(math.inf, 1e-5, clip=math.inf, labels=[0, 1])
    same = _run(parties, val, inf)
    assert same.games[0].table.tolist() == exact.games[0].table.tolist()
    assert [p.fee for p in same.settlement.parties] == [p.fee for p in exact.settlement.parties]
    assert exact.settlement.provenance["privacy"] == {p.name: None for p in parties}


def test_provenance_records_each_partys_mechanism(market: Any) -> None:
    parties, val = market
    r = _run(parties, val, GaussianMechanism(1.0, 1e-5, clip=6.0, labels=[0, 1]))
    record = r.settlement.provenance["privacy"]
    assert set(record) == {p.name for p in parties}
    for entry in record.values():
        assert (entry["epsilon"], entry["delta"], entry["clip"]) == (1.0, 1e-5, 6.0)
        assert entry["mechanism"] == "gaussian"
        assert entry["neighbouring"] == "add or remove one training row"
    assert r.settlement.verify().ok
    # the noise changes the value table: the round is no longer exact
    assert r.games[0].table.tolist() != _run(parties, val).games[0].table.tolist()


def test_noisy_statistics_pass_the_operators_checks_and_no_fingerprint(market: Any) -> None:
    parties, _ = market
    mech = GaussianMechanism(0.5, 1e-5, clip=6.0, labels=[0, 1])
    agent = Agent(parties[0], mech, random_state=0)
    moments = agent.handle({"kind": "moments", "task": "classification"})
    assert moments["fingerprint"] == "" and moments["labels"] == [0, 1]
    counts = moments["label_counts"]
    assert (counts == np.round(counts)).all() and (counts >= 0).all()
    assert not np.array_equal(counts, np.bincount(parties[0].y, minlength=2))
    # a repeat of moments costs nothing (the same reply); the budget is then enforced
    again = agent.handle({"kind": "moments", "task": "classification"})
    assert np.array_equal(again["sum_x"], moments["sum_x"])
    request = {
        "kind": "statistics",
        "learner": {"name": "GaussianNB", "params": {}},
        "center": {"x": np.zeros(parties[0].X.shape[1])},
        "classes": [0, 1],
    }
    s = agent.handle(request)
    assert np.array_equal(s["counts"], counts)
    n = np.repeat(s["counts"], parties[0].X.shape[1])
    assert (n * s["squares"] - s["sums"] ** 2 >= -1e-9 * (1 + n * s["squares"])).all()
    with pytest.raises(ValueError, match="privacy budget spent"):
        agent.handle(request)


def test_ridge_with_privacy_settles_and_gram_is_psd() -> None:
    ds = load_dataset("diabetes")
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    y = (ds.y - ds.y.mean()) / ds.y.std()
    X, X_val, y, y_val = train_validation_split(X, y, random_state=0)
    parties = make_parties(X, y, 3, random_state=0)
    mech = GaussianMechanism(50.0, 1e-5, clip=4.0, target_clip=3.0)
    agent = Agent(parties[0], mech, random_state=1)
    agent.handle({"kind": "moments", "task": "regression"})
    reply = agent.handle(
        {
            "kind": "statistics",
            "learner": {"name": "Ridge", "params": {}},
            "center": {"x": np.zeros(X.shape[1]), "y": 0.0},
            "classes": [],
        }
    )
    gram = reply["gram"].reshape(X.shape[1], X.shape[1])
    assert np.array_equal(gram, gram.T) and np.linalg.eigvalsh(gram).min() > -1e-9
    buyer = Agent(Party("buyer", X_val[:1], y_val[:1], X_val, y_val))
    agents = [Agent(p, mech, random_state=j) for j, p in enumerate(parties)]
    r = run_custody_market(
        LocalTransport([*agents, buyer]),
        [p.name for p in parties],
        Ridge(alpha=10.0),
        "buyer",
        scorer="clipped_r2",
    )
    assert r.settlement.provenance["privacy"]["party_0"]["target_clip"] == 3.0


def test_logistic_regression_with_privacy_settles(market: Any) -> None:
    # (the noisy Newton method and its accounting: tests/custody/test_privacy_newton.py)
    parties, val = market
    mech = GaussianMechanism(10.0, 1e-5, clip=6.0, labels=[0, 1])
    r = _run(parties, val, mech, LogisticRegression())
    assert r.settlement.verify().ok
    assert r.settlement.provenance["privacy"]["party_0"]["newton_pairs"] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epsilon": 0.0, "delta": 1e-5, "clip": 1.0}, "'epsilon' must be positive"),
        ({"epsilon": 1.0, "delta": 1.0, "clip": 1.0}, "'delta' must be in"),
        ({"epsilon": 1.0, "delta": 1e-5, "clip": math.inf}, "'clip' must be finite"),
        ({"epsilon": 1.0, "delta": 1e-5, "clip": -1.0}, "'clip' must be positive"),
    ],
)
def test_bad_parameters_are_named(kwargs: Any, message: Any) -> None:
    with pytest.raises(ValueError, match=message):
        GaussianMechanism(**kwargs)


def test_classification_needs_the_public_labels(market: Any) -> None:
    parties, _ = market
    agent = Agent(parties[0], GaussianMechanism(1.0, 1e-5, clip=6.0), random_state=0)
    with pytest.raises(ValueError, match="'labels'"):
        agent.handle({"kind": "moments", "task": "classification"})
