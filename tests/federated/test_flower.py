"""The Flower adapter: CoopetitiveFedAvg run by Flower's simulation engine (Ray backend).

One module-scoped Flower run (3 organisations on digits, logistic model, full
participation, 3 rounds) is checked against the game's properties and against an
independent in-process replay of the same rounds without Flower.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from coopml.federated.fedavg import LogisticModel, aggregate
from coopml.federated.flower import (
    CoopetitiveFedAvg,
    FlowerClient,
    _shares,
    run_flower_simulation,
)
from coopml.federated.game import (
    AccuracyCurve,
    RoundGame,
    nash_equilibrium,
    social_optimum,
)
from coopml.federated.synthetic import federated_split, fit_generators

ROUNDS = 3
SEED = 7
GAME = {
    "theta": [1.0, 1.2, 0.9],
    "gamma": [0.5, 0.3, 0.6],
    "c": 1e-4,
    "kappa": 0.8,
    "mu": 0.3,
    "s_max": 300.0,
    "curve": AccuracyCurve(0.97, 2.0, 0.5),
}


@pytest.fixture(scope="module")
def setup():
    fd = federated_split("digits", 3, alpha=0.5, random_state=0)
    pool = fit_generators(fd, "gmm", random_state=0)
    model = LogisticModel(fd.n_features, fd.n_classes, learning_rate=0.05)
    return fd, pool, model


@pytest.fixture(scope="module")
def flower_run(setup):
    fd, pool, model = setup
    return run_flower_simulation(
        fd.clients,
        (fd.X_val, fd.y_val),
        model,
        n_classes=fd.n_classes,
        rounds=ROUNDS,
        generator=pool,
        reference=fd.reference,
        random_state=SEED,
        num_cpus=2,
        **GAME,
    )


def test_run_completes(flower_run):
    assert flower_run.n_iter == ROUNDS and flower_run.converged
    assert [r.round for r in flower_run.rounds] == list(range(1, ROUNDS + 1))
    assert all(r.organisations == (0, 1, 2) for r in flower_run.rounds)
    assert flower_run.final_accuracy > 0.8
    payload = json.loads(json.dumps(flower_run.to_dict()))
    assert len(payload["rounds"]) == ROUNDS and payload["strategy"] == "mechanism"


def test_transfers_balance_and_individual_rationality(flower_run):
    for r in flower_run.rounds:
        assert abs(float(r.transfers.sum())) < 1e-9
        assert np.any(r.transfers != 0)
        assert r.individually_rational
        assert np.all(r.utilities >= r.redistribution.utilities_equilibrium - 1e-9)
    assert flower_run.individually_rational and flower_run.transfers_sum < 1e-9


def test_mechanism_sends_the_social_optimum(setup, flower_run):
    fd, _, _ = setup
    game = RoundGame(n=fd.n, h0=fd.h0, **{**GAME, "s_max": GAME["s_max"]})
    opt = social_optimum(game)
    ne = nash_equilibrium(game)
    for r in flower_run.rounds:
        np.testing.assert_allclose(r.h0, fd.h0, atol=1e-12)  # skew from reported histograms
        np.testing.assert_allclose(r.synthetic, opt.s, rtol=1e-12)
        np.testing.assert_allclose(r.redistribution.s_equilibrium, ne.s, rtol=1e-12)
        np.testing.assert_array_equal(r.synthetic_sent, np.floor(opt.s + 0.5))
        # welfare of the mechanism is the optimum's, above the equilibrium's
        assert r.social_welfare >= ne.social_welfare - 1e-12


def test_contribution_accounting_is_exact_shapley(flower_run):
    for r in flower_run.rounds:
        table = r.coalition_values
        assert table is not None and r.shapley is not None and table.size == 8
        # grand coalition = the aggregated model, empty coalition = the incoming model
        assert table[-1] == pytest.approx(r.accuracy)
        assert r.shapley.sum() == pytest.approx(table[-1] - table[0], abs=1e-12)
        np.testing.assert_allclose(r.redistribution.beta, _shares(r.shapley))


def _replay(setup, rounds):
    """The same rounds without Flower: game, generation, local training, weighted mean."""
    fd, pool, model = setup
    game = RoundGame(n=fd.n, h0=fd.h0, **GAME)
    s = np.floor(social_optimum(game).s + 0.5)
    params = model.init(np.random.default_rng(SEED))
    accs = []
    for t in range(1, rounds + 1):
        updates, sizes = [], []
        for i, (X, y) in enumerate(fd.clients):
            rng = np.random.default_rng([SEED, t, i])
            Xs, ys = pool.generate(int(s[i]), fd.reference, rng)
            Xa, ya = (np.vstack([X, Xs]), np.concatenate([y, ys])) if s[i] > 0 else (X, y)
            updates.append(model.local_train(params, Xa, ya, rng))
            sizes.append(ya.size)
        params = aggregate(updates, sizes)
        accs.append(float(np.mean(model.predict(params, fd.X_val) == fd.y_val)))
    return params, np.array(accs)


def test_flower_equals_in_process_replay(setup, flower_run):
    params, accs = _replay(setup, ROUNDS)
    np.testing.assert_array_equal(flower_run.accuracy_per_round, accs)
    for a, b in zip(flower_run.params, params, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ without Ray


def test_client_reports_statistics_and_trains_deterministically(setup):
    fd, pool, model = setup
    X, y = fd.clients[1]
    client = FlowerClient(1, X, y, model, n_classes=10, generator=pool, random_state=3)
    props = client.get_properties({})
    assert props["partition_id"] == 1 and props["n_samples"] == y.size
    assert json.loads(str(props["label_histogram"])) == np.bincount(y, minlength=10).tolist()
    w0 = model.init(np.random.default_rng(0))
    a, n_a, m_a = client.fit(w0, {"synthetic": 25, "server_round": 2})
    b, n_b, _ = client.fit(w0, {"synthetic": 25, "server_round": 2})
    assert n_a == n_b == y.size + 25 and m_a["n_synthetic"] == 25
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    c, _, _ = client.fit(w0, {"synthetic": 25, "server_round": 3})
    assert not np.array_equal(a[0], c[0])


def test_client_without_generator_refuses_synthetic(setup):
    fd, _, model = setup
    X, y = fd.clients[0]
    client = FlowerClient(0, X, y, model, n_classes=10)
    with pytest.raises(ValueError, match="no generator"):
        client.fit(model.init(np.random.default_rng(0)), {"synthetic": 5})


def test_shares_are_a_distribution():
    np.testing.assert_allclose(_shares(np.array([0.2, -0.1, 0.6])), [0.25, 0.0, 0.75])
    np.testing.assert_allclose(_shares(np.array([-0.1, -0.2])), [0.5, 0.5])


def test_strategy_validates_its_choice(setup):
    fd, _, model = setup
    with pytest.raises(ValueError, match="parameter 'strategy'"):
        CoopetitiveFedAvg(
            model=model,
            validation=(fd.X_val, fd.y_val),
            n_classes=10,
            strategy="greedy",
            **GAME,
        )
