"""The Flower adapter: CoopetitiveFedAvg run by Flower's simulation engine (Ray backend).

Flower runs on digits (logistic model, 3 rounds, ~10-25 s each with Ray start-up) are
checked against the game's properties and against the built-in simulator
(:func:`coopml.federated.simulation.run_strategy`) on the same set-up and seed: the
mechanism with 3 of 4 organisations sampled per round, and (slow) the no-generation
baseline with 2 of 3.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

pytest.importorskip("flwr")
pytest.importorskip("ray")

from coopml.federated.accounting import shapley_shares as _shares
from coopml.federated.config import FLConfig
from coopml.federated.flower import CoopetitiveFedAvg, FlowerClient, run_flower_simulation
from coopml.federated.flower.client import decode_stream as _decode_stream
from coopml.federated.flower.client import encode_stream as _encode_stream
from coopml.federated.simulation import prepare, run_strategy

ROUNDS = 3


def _config(n_organisations, client_fraction):
    return FLConfig.model_validate(
        {
            "rounds": ROUNDS,
            "random_state": 7,
            "data": {"dataset": "digits", "n_organisations": n_organisations, "alpha": 0.5},
            "training": {"learning_rate": 0.05, "client_fraction": client_fraction},
            "game": {
                "kappa": 0.8,
                "theta": [1.0, 1.2, 0.9, 1.1][:n_organisations],
                "gamma": [0.5, 0.3, 0.6, 0.4][:n_organisations],
                "c": 1e-4,
                "mu": 0.3,
                "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.5},
            },
        }
    )


@pytest.fixture(scope="module")
def local_ray():
    """One Ray instance for both Flower runs (each run would otherwise start its own)."""
    import os

    import ray

    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def setup():
    return prepare(_config(4, 0.75))


@pytest.fixture(scope="module")
def mechanism_run(local_ray, setup):
    return run_flower_simulation(setup, "mechanism", client_num_cpus=2)


@pytest.fixture(scope="module")
def sampled_setup():
    return prepare(_config(3, 0.67))


@pytest.fixture(scope="module")
def no_generation_run(local_ray, sampled_setup):
    return run_flower_simulation(
        sampled_setup, "no_generation", beta="contribution", client_num_cpus=2
    )


def test_run_completes(mechanism_run):
    assert mechanism_run.n_iter == ROUNDS and mechanism_run.converged
    assert [r.round for r in mechanism_run.rounds] == list(range(1, ROUNDS + 1))
    assert all(len(r.organisations) == 3 for r in mechanism_run.rounds)
    assert len({r.organisations for r in mechanism_run.rounds}) > 1  # sampling varies
    assert mechanism_run.final_accuracy > 0.8
    payload = json.loads(json.dumps(mechanism_run.to_dict()))
    assert len(payload["rounds"]) == ROUNDS and payload["strategy"] == "mechanism"
    assert payload["individually_rational"] is True


def test_transfers_balance_and_individual_rationality(mechanism_run):
    for r in mechanism_run.rounds:
        assert abs(float(r.transfers.sum())) < 1e-9
        assert np.any(r.transfers != 0)
        assert r.individually_rational
        assert np.all(r.utilities >= r.redistribution.utilities_equilibrium - 1e-9)
        assert r.social_welfare >= r.equilibrium.social_welfare - 1e-12
    assert mechanism_run.individually_rational and mechanism_run.transfers_sum < 1e-9


def test_contribution_accounting_is_exact_shapley(mechanism_run):
    for r in mechanism_run.rounds:
        table = r.coalition_values
        assert table is not None and r.shapley is not None and table.size == 8
        # grand coalition = the aggregated model, empty coalition = the incoming model
        assert table[-1] == pytest.approx(r.accuracy)
        assert r.shapley.sum() == pytest.approx(table[-1] - table[0], abs=1e-12)
        # Independent reference: Shapley by averaging over all orderings of the table,
        # then the non-negative shares the mechanism redistributes by.
        n = int(np.log2(table.size))
        phi = np.zeros(n)
        for order in itertools.permutations(range(n)):
            mask = 0
            for i in order:
                phi[i] += table[mask | 1 << i] - table[mask]
                mask |= 1 << i
        phi /= math.factorial(n)
        np.testing.assert_allclose(r.shapley, phi, atol=1e-12)
        positive = np.clip(phi, 0.0, None)
        expected = positive / positive.sum() if positive.sum() > 0 else np.full(n, 1 / n)
        np.testing.assert_allclose(r.redistribution.beta, expected, atol=1e-12)


def test_game_solutions_equal_the_simulator(setup, mechanism_run):
    sim = run_strategy(setup, "mechanism")
    for t, r in enumerate(mechanism_run.rounds):
        ids = list(r.organisations)
        assert np.flatnonzero(sim.participants[t]).tolist() == ids  # same clients sampled
        np.testing.assert_allclose(r.h0, setup.data.h0[ids], atol=1e-12)  # from histograms
        np.testing.assert_allclose(r.synthetic, sim.synthetic[t, ids], rtol=1e-12)
        np.testing.assert_allclose(
            r.utilities - r.transfers, sim.utilities_before[t, ids], rtol=1e-12
        )
        np.testing.assert_allclose(
            r.redistribution.utilities_equilibrium, sim.utilities_equilibrium[t, ids], rtol=1e-12
        )
        # transfers differ only through beta (Shapley here, contribution shares there)
        red = r.redistribution
        sim_beta_part = sim.transfers[t, ids] - (r.transfers - red.beta * red.welfare_gain)
        assert np.all(sim_beta_part >= -1e-12)
        assert sim_beta_part.sum() == pytest.approx(red.welfare_gain, rel=1e-9)
    np.testing.assert_allclose(mechanism_run.synthetic_per_round, sim.synthetic_per_round)
    assert mechanism_run.social_welfare == pytest.approx(sim.social_welfare, rel=1e-12)


def test_accuracies_equal_the_simulator(setup, mechanism_run):
    """Both engines give each participant its own generation stream per round, so the
    Flower run draws the same synthetic samples and trains the same models."""
    assert all(np.all(r.synthetic_sent > 0) for r in mechanism_run.rounds)
    sim = run_strategy(setup, "mechanism")
    np.testing.assert_array_equal(mechanism_run.accuracy_per_round, sim.accuracy_per_round)


@pytest.mark.slow  # a second Flower run
def test_no_generation_run_equals_the_simulator(sampled_setup, no_generation_run):
    sim = run_strategy(sampled_setup, "no_generation")
    flower_present = np.zeros_like(sim.participants)
    for t, r in enumerate(no_generation_run.rounds):
        flower_present[t, list(r.organisations)] = True
        assert np.all(r.transfers == 0)  # no mechanism, no transfers
    assert flower_present.sum(axis=1).tolist() == [2] * ROUNDS
    np.testing.assert_array_equal(flower_present, sim.participants)
    np.testing.assert_array_equal(no_generation_run.accuracy_per_round, sim.accuracy_per_round)
    np.testing.assert_array_equal(no_generation_run.synthetic_per_round, 0.0)
    np.testing.assert_array_equal(no_generation_run.synthetic_sent_per_round, 0.0)


# ------------------------------------------------------------------ without Ray


def test_client_reports_statistics_and_trains_deterministically(setup):
    X, y = setup.data.clients[1]
    model = setup.model()
    client = FlowerClient(1, X, y, model, n_classes=10, generator=setup.pool, random_state=3)
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


def test_streams_travel_exactly():
    children = np.random.default_rng(np.random.SeedSequence(11).spawn(5)[2]).spawn(4)
    for child in children:
        copy = _decode_stream(_encode_stream(child))
        assert np.array_equal(copy.random(5), child.random(5))


def test_client_without_generator_refuses_synthetic(setup):
    X, y = setup.data.clients[0]
    model = setup.model()
    client = FlowerClient(0, X, y, model, n_classes=10)
    with pytest.raises(ValueError, match="no generator"):
        client.fit(model.init(np.random.default_rng(0)), {"synthetic": 5})


def test_shares_are_a_distribution():
    np.testing.assert_allclose(_shares(np.array([0.2, -0.1, 0.6])), [0.25, 0.0, 0.75])
    np.testing.assert_allclose(_shares(np.array([-0.1, -0.2])), [0.5, 0.5])


def test_strategy_validates_its_options(setup):
    with pytest.raises(ValueError, match="parameter 'strategy'"):
        CoopetitiveFedAvg.from_setup(setup, "greedy")
    with pytest.raises(ValueError, match="parameter 'beta'"):
        CoopetitiveFedAvg.from_setup(setup, beta="shapley", contribution_accounting=False)
    strat = CoopetitiveFedAvg.from_setup(setup, beta="equal")
    assert "beta='equal'" in repr(strat)
