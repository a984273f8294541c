"""CoopetitiveFedAvg driven in-process (no Ray): every strategy against the simulator.

A minimal ``ClientProxy`` hands Flower's messages straight to :class:`FlowerClient`, so
the strategy's ``configure_fit`` / ``aggregate_fit`` run exactly as in a deployment,
without the simulation engine's start-up cost.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("flwr")

from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.client_manager import SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from coopml.federated.config import STRATEGIES, FLConfig
from coopml.federated.flower import CoopetitiveFedAvg, FlowerClient
from coopml.federated.simulation import prepare, run_strategy

ROUNDS = 2


class _Proxy(ClientProxy):
    def __init__(self, cid, client):
        super().__init__(cid)
        self.client = client

    def get_properties(self, ins, timeout, group_id):
        return self.client.get_properties(ins)

    def get_parameters(self, ins, timeout, group_id):
        return self.client.get_parameters(ins)

    def fit(self, ins, timeout, group_id):
        return self.client.fit(ins)

    def evaluate(self, ins, timeout, group_id):
        return self.client.evaluate(ins)

    def reconnect(self, ins, timeout, group_id):  # pragma: no cover - unused
        raise NotImplementedError


@pytest.fixture(scope="module")
def setup():
    cfg = FLConfig.model_validate(
        {
            "rounds": ROUNDS,
            "random_state": 3,
            "data": {"dataset": "digits", "n_organisations": 4, "alpha": 0.3},
            "training": {"learning_rate": 0.05, "client_fraction": 0.75},
            "game": {
                "kappa": 0.7,
                "gamma": [0.2, 0.5, 0.8, 0.4],
                "c": 5e-5,
                "mu": 0.3,
                "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.5},
            },
        }
    )
    return prepare(cfg)


def _drive(setup, strategy, *, beta="shapley", fail=False):
    strat = CoopetitiveFedAvg.from_setup(setup, strategy, beta=beta, accept_failures=not fail)
    manager = SimpleClientManager()
    model = setup.model()
    # register in a scrambled order: the strategy must sort by partition id
    for pid in (2, 0, 3, 1):
        X, y = setup.data.clients[pid]
        client = FlowerClient(
            pid,
            X,
            y,
            model,
            n_classes=setup.data.n_classes,
            generator=setup.pool,
            reference=setup.data.reference,
        )
        manager.register(_Proxy(f"node-{pid}", client.to_client()))
    params = strat.initialize_parameters(manager)
    for t in range(1, ROUNDS + 1):
        instructions = strat.configure_fit(t, params, manager)
        results = [(cp, cp.fit(ins, None, t)) for cp, ins in instructions]
        failures = [RuntimeError("lost")] if fail else []
        new, metrics = strat.aggregate_fit(t, results, failures)
        if new is None:
            return strat, None
        params = new
        assert metrics["accuracy"] == strat.rounds[-1].accuracy
    return strat, parameters_to_ndarrays(params)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_plays_the_simulators_game(setup, strategy):
    strat, _ = _drive(setup, strategy)
    sim = run_strategy(setup, strategy)
    assert len(strat.rounds) == ROUNDS
    welfare = sum(r.social_welfare for r in strat.rounds)
    assert welfare == pytest.approx(sim.social_welfare, rel=1e-12)
    for t, r in enumerate(strat.rounds):
        ids = list(r.organisations)
        assert np.flatnonzero(sim.participants[t]).tolist() == ids
        np.testing.assert_allclose(r.synthetic, sim.synthetic[t, ids], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(
            r.utilities - r.transfers, sim.utilities_before[t, ids], rtol=1e-12
        )
        assert abs(float(r.transfers.sum())) < 1e-9
        if strategy == "mechanism":
            assert r.individually_rational and np.any(r.transfers != 0)
        else:
            assert np.all(r.transfers == 0)
        # the same generation streams: the same samples, the same models
        assert r.accuracy == sim.accuracy_per_round[t]


def test_beta_rules_change_only_the_lump_sums(setup):
    runs = {b: _drive(setup, "mechanism", beta=b)[0] for b in ("shapley", "contribution", "equal")}
    sim = run_strategy(setup, "mechanism")  # the simulator's default: contribution shares
    for t in range(ROUNDS):
        ids = list(runs["contribution"].rounds[t].organisations)
        np.testing.assert_allclose(runs["contribution"].rounds[t].transfers, sim.transfers[t, ids])
        eq = runs["equal"].rounds[t].redistribution
        np.testing.assert_allclose(eq.beta, 1.0 / len(ids))
        sigmas = [runs[b].rounds[t].redistribution.sigma for b in runs]
        assert all(np.array_equal(sigmas[0], s) for s in sigmas)
        for b in runs:
            red = runs[b].rounds[t].redistribution
            gain = red.utilities_after - red.utilities_equilibrium
            np.testing.assert_allclose(gain, red.beta * red.welfare_gain, atol=1e-12)


def test_history_is_json_ready(setup):
    import json

    strat, params = _drive(setup, "mechanism")
    history = json.loads(json.dumps(strat.history()))
    assert history["beta"] == "shapley" and len(history["rounds"]) == ROUNDS
    first = history["rounds"][0]
    assert len(first["coalition_values"]) == 2 ** len(first["organisations"])
    assert abs(first["transfers_sum"]) < 1e-9
    assert all(np.array_equal(a, b) for a, b in zip(params, strat.parameters, strict=True))


def test_rejected_round_books_nothing(setup):
    strat, params = _drive(setup, "mechanism", fail=True)
    assert params is None and strat.rounds == []


def test_fit_config_carries_amounts_and_streams(setup):
    strat = CoopetitiveFedAvg.from_setup(setup)
    manager = SimpleClientManager()
    for pid, (X, y) in enumerate(setup.data.clients):
        client = FlowerClient(pid, X, y, setup.model(), n_classes=10, generator=setup.pool)
        manager.register(_Proxy(str(pid), client.to_client()))
    params = ndarrays_to_parameters(setup.model().init(np.random.default_rng(0)))
    instructions = strat.configure_fit(1, params, manager)
    assert len(instructions) == 3
    for _, ins in instructions:
        assert {"synthetic", "train_stream", "generation_stream", "server_round"} <= set(ins.config)
        assert ins.config["server_round"] == 1


def test_one_engine_books_both_paths_identically(setup):
    """The simulator and the Flower strategy share the round engine: the same plan and
    the same books (every array of the ledger) for the same seed."""
    for strategy in ("mechanism", "random"):
        strat, _ = _drive(setup, strategy, beta=setup.config.game.beta)
        flower = strat.strategy_result(len(setup.data.clients))
        sim = run_strategy(setup, strategy)
        for name in (
            "participants", "sampled", "synthetic", "utilities_before", "transfers",
            "utilities_equilibrium", "utilities_measured", "accuracy_per_round",
        ):  # fmt: skip
            np.testing.assert_array_equal(getattr(flower, name), getattr(sim, name), err_msg=name)


def test_simulator_offers_shapley_shares_like_flower(setup):
    """beta = "shapley" in the built-in simulator: the same per-round Shapley shares and
    transfers as the Flower strategy's contribution accounting."""
    strat, _ = _drive(setup, "mechanism", beta="shapley")
    sim = run_strategy(setup, "mechanism", beta="shapley")
    for t, r in enumerate(strat.rounds):
        ids = list(r.organisations)
        np.testing.assert_allclose(sim.transfers[t, ids], r.transfers, rtol=0, atol=1e-15)
        gain = sim.utilities_after[t, ids] - sim.utilities_equilibrium[t, ids]
        np.testing.assert_allclose(gain, r.redistribution.beta * r.redistribution.welfare_gain)


def test_participation_rule_runs_inside_flower(setup):
    """Organisations left for a configured outside option are not asked to train."""
    cfg = setup.config.model_copy(
        update={"game": setup.config.game.model_copy(update={"outside_option": 0.45})}
    )
    left_setup = dataclasses.replace(setup, config=cfg)
    strat, _ = _drive(left_setup, "equilibrium", beta="contribution")
    sim = run_strategy(left_setup, "equilibrium")
    flower = strat.strategy_result(len(setup.data.clients))
    np.testing.assert_array_equal(flower.participants, sim.participants)
    np.testing.assert_array_equal(flower.accuracy_per_round, sim.accuracy_per_round)
    assert (sim.participants.sum() < sim.sampled.sum()) and any(r.left for r in strat.rounds)
