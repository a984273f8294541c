"""The shared round engine: streams, plan, participation, training budget, certificates."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

import coopml.federated.fedavg as fedavg_module
from coopml.federated.config import FLConfig
from coopml.federated.fedavg import LogisticModel, minibatches
from coopml.federated.game import AccuracyCurve
from coopml.federated.rounds import Decision, Ledger, RoundEngine, standalone_utility
from coopml.federated.simulation import _scaled_epochs, fit_accuracy_curve, prepare, simulate
from coopml.federated.synthetic import federated_split


class FlatCurve:
    """P(E) = 0.8 whatever the data: only the skew term separates organisations."""

    def __call__(self, E):
        return 0.8 + 0.0 * np.asarray(E, dtype=float)

    def derivative(self, E):
        return 0.0 * np.asarray(E, dtype=float)


def engine(strategy="equilibrium", **changes):
    params = dict(theta=1.0, gamma=0.5, c=2e-4, s_max=300.0, kappa=0.9, mu=0.5)
    params.update(changes)
    params.setdefault("curve", AccuracyCurve(0.95, 0.9, 0.5))
    return RoundEngine(strategy, random_state=4, **params)


def test_same_seed_same_plan_and_books():
    n, h0 = [100, 120, 80, 60], [0.5, 0.2, 0.6, 0.3]
    a, b = engine(client_fraction=0.5), engine(client_fraction=0.5)
    for t in range(3):
        pa, pb = a.plan(t, range(4), n, h0), b.plan(t, range(4), n, h0)
        assert pa.members.tolist() == pb.members.tolist()
        np.testing.assert_array_equal(pa.synthetic, pb.synthetic)
        assert pa.train_streams[0].random() == pb.train_streams[0].random()
        ra, rb = a.book(pa, 0.9), b.book(pb, 0.9)
        np.testing.assert_array_equal(ra.utilities_after, rb.utilities_after)


def test_participation_hand_case_standalone():
    """Two organisations, no skew, generation too dear to pay (s = 0 everywhere):
    P(E) = 1 - 1/E, gamma = 0.9. Together E = 110 and each gets
    (1 - 1/110) (1 - 0.9) = 0.0990909. Alone, the large one gets P(100) = 0.99 and still
    loses 0.9 P(10) = 0.81 to its rival: 0.18 > 0.099, so it leaves. The small one alone
    would get 0.9 - 0.9 * 0.99 = 0.009 < 0.099 and stays. Left alone in the federation it
    trains on its own data, P(10) = 0.9, and still loses 0.9 * 0.99 to the leaver: 0.009,
    its outside option too (indifferent, so it stays).
    """
    eng = RoundEngine(
        "equilibrium",
        theta=1.0,
        gamma=0.9,
        c=1.0,
        s_max=50.0,
        kappa=1.0,
        mu=0.0,
        curve=AccuracyCurve(1.0, 1.0, 1.0),
        outside_option="standalone",
    )
    game = eng.game([0, 1], [100, 10], [0.0, 0.0])
    assert standalone_utility(game, 0, [0.0, 0.0]) == pytest.approx(0.99 - 0.9 * 0.9)
    assert standalone_utility(game, 1, [0.0, 0.0]) == pytest.approx(0.9 - 0.9 * 0.99)
    plan = eng.plan(0, [0, 1], [100, 10], [0.0, 0.0])
    assert plan.sampled.tolist() == [0, 1] and plan.members.tolist() == [1]
    np.testing.assert_allclose(plan.synthetic, [0.0])
    np.testing.assert_allclose(plan.outside, [0.18, 0.009])
    ledger = Ledger("equilibrium", 1, 2)
    ledger.add(eng.book(plan, accuracy=float("nan")))
    res = ledger.result()
    np.testing.assert_allclose(res.utilities_before, [[0.18, 0.009]])
    assert res.participation_per_round.tolist() == [0.5]
    # without the rule both stay at 0.0990909 each
    stay = RoundEngine(
        "equilibrium", theta=1.0, gamma=0.9, c=1.0, s_max=50.0, kappa=1.0, mu=0.0,
        curve=AccuracyCurve(1.0, 1.0, 1.0),
    )  # fmt: skip
    rec = stay.book(stay.plan(0, [0, 1], [100, 10], [0.0, 0.0]))
    np.testing.assert_allclose(rec.utilities_before, [(1 - 1 / 110) * 0.1] * 2)


def test_participation_hand_case_configured_value():
    """Flat P = 0.8, mu = 0.5, skews 0, 0.2, 0.8, no generation: accuracies 0.8, 0.7, 0.4.
    u = A_i - 0.5 mean_{j != i} A_j = 0.525, 0.4, 0.025; with an outside option of 0.1
    the third leaves. Alone it generates s_max = 300 (its first-order condition asks for
    347), so its skew falls to 0.8 * 100 / 400 = 0.2 and its accuracy is 0.7. The two
    members still compete with it: u = 0.8 - 0.5 (0.7 + 0.7) / 2 = 0.45 and
    0.7 - 0.5 (0.8 + 0.7) / 2 = 0.325."""
    eng = engine("no_generation", curve=FlatCurve(), outside_option=0.1)
    plan = eng.plan(0, [0, 1, 2], [100, 100, 100], [0.0, 0.2, 0.8])
    assert plan.members.tolist() == [0, 1]
    rec = eng.book(plan)
    np.testing.assert_allclose(rec.utilities_before, [0.45, 0.325])
    ledger = Ledger("no_generation", 1, 3)
    ledger.add(rec)
    np.testing.assert_allclose(ledger.result().utilities_before, [[0.45, 0.325, 0.1]])
    # one configured value per organisation: nobody below theirs
    per_org = engine("no_generation", curve=FlatCurve(), outside_option=[0.5, 0.4, 0.0])
    assert per_org.plan(0, [0, 1, 2], [100] * 3, [0.0, 0.2, 0.8]).members.tolist() == [0, 1, 2]


def test_simulation_reports_participation_and_certificates():
    cfg = FLConfig.model_validate(
        {
            "rounds": 3,
            "data": {"dataset": "wine", "n_organisations": 4, "alpha": 0.3, "min_size": 5},
            "game": {
                "kappa": 0.9,
                "gamma": 0.9,
                "mu": 0.3,
                "outside_option": "standalone",
                "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.6},
            },
        }
    )
    res = simulate(cfg, train=False)
    doc = res.to_dict()
    for name, s in res.strategies.items():
        entry = doc["strategies"][name]
        assert len(entry["participation_per_round"]) == 3
        assert "max_deviation_gain" in entry
        assert np.all(s.participants <= s.sampled)
        # a member is never below its outside option
        in_ = s.participants
        assert np.all(s.utilities_after[in_] >= s.outside_option[in_] - 1e-9)
    assert res.transfers_sum < 1e-9 and res.individually_rational


def test_certificate_read_from_the_solution_when_the_game_reports_it():
    eng = engine()
    plan = eng.plan(0, [0, 1], [100, 120], [0.5, 0.2])
    assert plan.decision is not None
    certified = dataclasses.replace(
        plan, decision=Decision(plan.synthetic, types.SimpleNamespace(max_deviation_gain=0.01))
    )
    ledger = Ledger("equilibrium", 2, 2)
    ledger.add(eng.book(certified))
    ledger.add(eng.book(dataclasses.replace(plan, t=1, decision=Decision(plan.synthetic, None))))
    res = ledger.result()
    assert res.max_deviation_gain == 0.01
    assert res.to_dict()["max_deviation_gain_per_round"] == [0.01, None]


# ------------------------------------------------------------------ training budget


def test_minibatches_fixed_steps_whatever_the_size():
    rng = np.random.default_rng(0)
    for n in (7, 50, 500):
        assert len(list(minibatches(n, 32, rng, steps=10))) == 10
    assert len(list(minibatches(500, 32, rng, epochs=1))) == 16
    assert len(list(minibatches(50, 32, rng, epochs=1))) == 2


def test_local_steps_budget_makes_synthetic_rows_buy_no_extra_steps(monkeypatch):
    calls = []
    real = fedavg_module.minibatches

    def counting(*args, **kwargs):
        batches = list(real(*args, **kwargs))
        calls.append(len(batches))
        return iter(batches)

    monkeypatch.setattr(fedavg_module, "minibatches", counting)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    X2, y2 = np.vstack([X, X, X, X]), np.concatenate([y, y, y, y])  # + 3x "synthetic"
    for model, expected in (
        (LogisticModel(3, 2, batch_size=8, local_steps=6), [6, 6]),
        (LogisticModel(3, 2, batch_size=8), [5, 20]),  # the epoch budget
    ):
        calls.clear()
        w = model.init(rng)
        model.local_train(w, X, y, rng)
        model.local_train(w, X2, y2, rng)
        assert calls == expected


def test_curve_pilots_follow_the_budget(monkeypatch):
    stepped = LogisticModel(4, 3, local_steps=5)
    epochs = LogisticModel(4, 3)
    assert _scaled_epochs(stepped, 10) is stepped  # steps are equal already
    assert _scaled_epochs(epochs, 10).local_epochs == 10
    cfg = FLConfig.model_validate({"data": {"dataset": "wine", "n_organisations": 3}})
    assert cfg.training.budget == "local_steps"
    assert cfg.training.model_options()["local_steps"] == cfg.training.local_steps
    legacy = FLConfig.model_validate({"training": {"budget": "epochs"}})
    assert legacy.training.model_options()["local_steps"] is None
    # every pilot client takes the same number of steps under the steps budget
    calls = []
    real = fedavg_module.minibatches

    def counting(*args, **kwargs):
        batches = list(real(*args, **kwargs))
        calls.append(len(batches))
        return iter(batches)

    monkeypatch.setattr(fedavg_module, "minibatches", counting)
    data = federated_split("wine", 3, alpha=1.0, min_size=5, random_state=0)
    fit_accuracy_curve(
        data, LogisticModel(data.n_features, 3, local_steps=4), fractions=(0.2, 0.6, 1.0),
        rounds=3,
    )  # fmt: skip
    assert set(calls) == {4}


def test_shapley_beta_needs_training():
    cfg = FLConfig.model_validate(
        {
            "rounds": 1,
            "data": {"dataset": "wine", "n_organisations": 3, "min_size": 5},
            "game": {"kappa": 0.9, "beta": "shapley", "curve": {"fit": False, "A_max": 0.97,
                     "a": 2.0, "b": 0.6}},
        }
    )  # fmt: skip
    with pytest.raises(ValueError, match="beta='shapley' needs training"):
        simulate(cfg, train=False)
    setup = prepare(cfg)
    res = simulate(cfg, setup=setup)
    mech = res.strategies["mechanism"]
    assert mech.individually_rational and mech.transfers_sum < 1e-9
