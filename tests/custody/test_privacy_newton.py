"""The privacy knob beyond sufficient statistics: logistic regression's noisy Newton
method, its accounting, LDA with noise."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

from coopml.custody import Agent, AgentError, LocalTransport, newton, run_custody_market
from coopml.custody.privacy import GaussianMechanism, compose_rounds
from coopml.data import Party, load_dataset, make_parties, train_validation_split


def hand_mu(epsilon: float, delta: float) -> float:
    """The mu of the analytic Gaussian mechanism, solved here from its profile
    (Balle and Wang 2018, Theorem 8) with scipy's normal cdf, not with the library."""

    def profile(mu: float) -> float:
        phi = stats.norm.cdf
        return float(
            phi(-epsilon / mu + mu / 2) - math.exp(epsilon) * phi(-epsilon / mu - mu / 2) - delta
        )

    return float(brentq(profile, 1e-6, 50.0, xtol=1e-14))


@pytest.fixture(scope="module")
def market() -> Any:
    ds = load_dataset("breast_cancer")
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    X, X_val, y, y_val = train_validation_split(X, ds.y, random_state=0)
    parties = make_parties(X[:120], y[:120], 3, random_state=0)
    return parties, (X_val, y_val)


def _run(parties: Any, val: Any, privacy: Any, learner: Any, seed: int = 0) -> Any:
    buyer = Agent(Party("buyer", val[0][:1], val[1][:1], val[0], val[1]))
    agents = [Agent(p, privacy, random_state=seed + j) for j, p in enumerate(parties)]
    names = [p.name for p in parties]
    return run_custody_market(LocalTransport([*agents, buyer]), names, learner, "buyer")


def _newton_request(theta: Any, pairs: int | None, what: str = "grad_hess") -> dict[str, Any]:
    request = {
        "kind": "newton",
        "what": what,
        "classes": [0, 1],
        "subset": [0, 1],
        "shift": np.zeros(2),
        "fit_intercept": True,
        "theta": np.asarray(theta, dtype=np.float64),
    }
    if pairs is not None:
        request["plan"] = {"pairs": pairs}
    return request


def test_newton_noise_follows_the_sensitivity_formula() -> None:
    """The gradient's noise, measured over many agents, against sigma computed by hand."""
    X = np.array([[3.0, 4.0], [0.1, 0.2], [-0.3, 0.4]])  # the first row is clipped to norm 1
    y = np.array([0, 1, 1])
    epsilon, delta, clip, pairs = 2.0, 1e-5, 1.0, 3
    mech = GaussianMechanism(epsilon, delta, clip=clip, labels=[0, 1])
    # by hand: a design row (x, 1) has norm <= sqrt(C^2 + 1) = sqrt(2); at theta = 0 every
    # p = 1/2, the gradient is sum (1/2 - y_i) (x_i, 1); one row changes it by <= sqrt(2)
    # and the Hessian (1/4 x x') by <= 2/4. Half of mu^2 goes to the 2P Newton releases.
    clipped = np.array([[0.6, 0.8, 1.0], [0.1, 0.2, 1.0], [-0.3, 0.4, 1.0]])
    exact = ((0.5 - y)[:, None] * clipped).sum(axis=0)
    mu = hand_mu(epsilon, delta)
    mu_each = math.sqrt(mu**2 / 2 / (2 * pairs))
    sigma_grad, sigma_hess = math.sqrt(2.0) / mu_each, 0.5 / mu_each
    draws, reported = [], []
    for s in range(2000):
        agent = Agent(Party("a", X, y), mech, random_state=s)
        agent.handle({"kind": "moments", "task": "classification"})
        reply = agent.handle(_newton_request(np.zeros((1, 3)), pairs))
        draws.append(reply["grad"][0] - exact)
        reported.append((reply["sigma_grad"], reply["sigma_hess"]))
        hess = reply["hess"][0]
        assert np.array_equal(hess, hess.T) and np.linalg.eigvalsh(hess).min() > -1e-9
    noise = np.array(draws).ravel()
    assert reported[0] == pytest.approx((sigma_grad, sigma_hess), rel=1e-9)
    k = noise.size
    assert stats.chi2.cdf((noise**2).sum() / sigma_grad**2, k) == pytest.approx(0.5, abs=0.49)
    assert noise.std() == pytest.approx(sigma_grad, rel=0.03)
    assert abs(noise.mean()) < 4 * sigma_grad / math.sqrt(k)


@pytest.mark.parametrize(("n_classes", "ratio"), [(2, math.sqrt(10) / 4), (3, math.sqrt(5))])
def test_sensitivities_of_two_and_more_classes(n_classes: int, ratio: float) -> None:
    """sigma_hess / sigma_grad = Delta_H / Delta_G: (R^2/4) / R for two classes and
    R^2 / (sqrt(2) R) for more, with R = sqrt(C^2 + 1) = sqrt(10) at C = 3, no shift."""
    X = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    y = np.arange(3) % n_classes
    labels = list(range(n_classes))
    agent = Agent(Party("a", X, y), GaussianMechanism(1.0, 1e-5, clip=3.0, labels=labels))
    agent.handle({"kind": "moments", "task": "classification"})
    request = _newton_request(np.zeros((1, 3 * (n_classes if n_classes > 2 else 1))), 1)
    request["classes"] = request["subset"] = labels
    reply = agent.handle(request)
    assert reply["sigma_hess"] / reply["sigma_grad"] == pytest.approx(ratio, rel=1e-12)


def test_multinomial_logistic_with_noise_settles() -> None:
    ds = load_dataset("iris")
    X = (ds.X - ds.X.mean(axis=0)) / ds.X.std(axis=0)
    X, X_val, y, y_val = train_validation_split(X, ds.y, random_state=0)
    parties = make_parties(X, y, 3, random_state=0)
    mech = GaussianMechanism(10.0, 1e-5, clip=4.0, labels=[0, 1, 2])
    r = _run(parties, (X_val, y_val), mech, LogisticRegression())
    assert r.settlement.verify().ok
    assert r.settlement.provenance["privacy"]["party_1"]["newton_pairs"] > 0


def test_accounting_against_a_hand_computation() -> None:
    m = GaussianMechanism(1.0, 1e-5, clip=1.0, labels=[0, 1])
    record = m.describe("classification")
    # Balle and Wang's reference: sigma = 3.7306 per unit sensitivity at (1, 1e-5)
    rho = 1.0 / (2 * 3.7306**2)
    assert record["mu"] == pytest.approx(1 / 3.7306, rel=1e-4)
    assert record["rho_zcdp"] == pytest.approx(rho, rel=1e-4)
    # Bun and Steinke (2016), Prop. 1.3: epsilon = rho + 2 sqrt(rho ln(1/delta)) = 1.3222
    assert record["epsilon_zcdp"] == pytest.approx(1.3222, abs=2e-4)
    # four rounds at epsilon = 1: mu doubles; epsilon solved by hand from the profile
    total = compose_rounds([record["mu"]] * 4, 1e-5)
    mu4 = 2 / 3.7306
    phi = stats.norm.cdf

    def profile(e: float) -> float:
        return float(phi(-e / mu4 + mu4 / 2) - math.exp(e) * phi(-e / mu4 - mu4 / 2) - 1e-5)

    assert total["epsilon"] == pytest.approx(brentq(profile, 0.1, 20), abs=1e-3)
    assert total["rho"] == pytest.approx(4 * rho, rel=1e-4)


def test_a_logistic_round_composes_to_the_agents_budget(market: Any) -> None:
    parties, val = market
    epsilon, delta = 10.0, 1e-5
    r = _run(
        parties,
        val,
        GaussianMechanism(epsilon, delta, clip=8.0, labels=[0, 1]),
        LogisticRegression(),
    )
    assert r.settlement.verify().ok
    T = newton.NOISY_ITERATIONS
    for record in r.settlement.provenance["privacy"].values():
        # 3 parties, two classes everywhere: the warm start's T iterations and its pieces,
        # then T - 1 iterations for each of the 4 coalitions a party is in
        pairs = T + 1 + (T - 1) * 4
        assert record["newton_pairs"] == pairs
        assert record["releases"] == 2 + 2 * pairs
        # composition by hand: 2 moments releases at mu_i = 1 / noise_multiplier and 2P
        # Newton releases at 1 / noise_multiplier_newton; sqrt(sum mu_i^2) must be the mu
        # whose profile at epsilon is delta
        mus = [1 / record["noise_multiplier"]] * 2 + [1 / record["noise_multiplier_newton"]] * (
            2 * pairs
        )
        total = math.sqrt(sum(u * u for u in mus))
        assert total == pytest.approx(hand_mu(epsilon, delta), rel=1e-8)


def test_infinite_epsilon_recovers_the_exact_payouts(market: Any) -> None:
    parties, val = market
    exact = _run(parties, val, None, LogisticRegression())
    inf = GaussianMechanism(math.inf, 1e-5, clip=math.inf, labels=[0, 1])
    same = _run(parties, val, inf, LogisticRegression())
    assert same.games[0].table.tolist() == exact.games[0].table.tolist()
    assert [p.payout for p in same.settlement.parties] == [
        p.payout for p in exact.settlement.parties
    ]
    # the noisy method itself (fixed iterations, floored Hessians) converges to the
    # exact round as epsilon grows (rows of norm < 100 are not clipped)
    huge = GaussianMechanism(1e16, 1e-5, clip=100.0, labels=[0, 1])
    near = _run(parties, val, huge, LogisticRegression())
    assert near.games[0].table == pytest.approx(exact.games[0].table, abs=1e-12)
    assert [p.payout for p in near.settlement.parties] == pytest.approx(
        [p.payout for p in exact.settlement.parties], abs=1e-9
    )


def test_a_noisy_fit_that_does_not_converge_fails_the_round(
    market: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    parties, val = market
    monkeypatch.setattr(newton, "NOISY_ITERATIONS", 1)  # one step from zero: far off
    mech = GaussianMechanism(1e6, 1e-5, clip=8.0, labels=[0, 1])
    with pytest.raises(ValueError, match=r"did not settle .* nothing is settled"):
        _run(parties, val, mech, LogisticRegression())


def test_the_agent_enforces_its_plan() -> None:
    X, y = np.array([[0.1, 0.2], [0.3, -0.1]]), np.array([0, 1])
    mech = GaussianMechanism(1.0, 1e-5, clip=1.0, labels=[0, 1])
    agent = Agent(Party("a", X, y), mech, random_state=0)
    agent.handle({"kind": "moments", "task": "classification"})
    with pytest.raises(ValueError, match="releases no losses"):
        agent.handle(_newton_request(np.zeros((1, 3)), 2, what="loss"))
    with pytest.raises(ValueError, match="plan"):
        agent.handle(_newton_request(np.zeros((1, 3)), None))
    agent.handle(_newton_request(np.zeros((2, 3)), 3))
    agent.handle(_newton_request(np.zeros((1, 3)), None))
    with pytest.raises(ValueError, match="privacy budget spent"):
        agent.handle(_newton_request(np.zeros((1, 3)), None))
    # and a party that answered newton cannot answer statistics too (same budget)
    with pytest.raises(ValueError, match="privacy budget spent"):
        agent.handle(
            {
                "kind": "statistics",
                "learner": {"name": "GaussianNB", "params": {}},
                "center": {"x": np.zeros(2)},
                "classes": [0, 1],
            }
        )


def test_a_private_round_refuses_a_line_search_naming_the_party(market: Any) -> None:
    parties, _ = market
    agent = Agent(parties[0], GaussianMechanism(1.0, 1e-5, clip=6.0, labels=[0, 1]))
    t = LocalTransport([agent])
    t.exchange({agent.name: {"kind": "moments", "task": "classification"}})
    request = _newton_request(np.zeros((1, 31)), 5, what="loss")
    request["shift"] = np.zeros(30)
    with pytest.raises(AgentError, match=r"party 'party_0'.*releases no losses"):
        t.exchange({agent.name: request})


@pytest.mark.parametrize("epsilon", [3.0, 10.0])
def test_lda_with_noise_settles(market: Any, epsilon: float) -> None:
    """Before the within-class floor, every noisy LDA round on these 30 features failed.
    (At epsilon = 1 a party's noisy count of its 40 rows may fall below d + K = 32, where
    the exact kernel refuses a coalition: the round then fails, naming it.)"""
    parties, val = market
    mech = GaussianMechanism(epsilon, 1e-5, clip=8.0, labels=[0, 1])
    r = _run(parties, val, mech, LinearDiscriminantAnalysis(), seed=3)
    assert r.settlement.verify().ok
    assert r.settlement.provenance["privacy"]["party_0"]["epsilon"] == epsilon
    assert r.settlement.provenance["protocol"]["fitted_coalitions"] == 7
