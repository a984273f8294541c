"""The simulation loop, the strategies, the sweeps and the CLI interface."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from coopml.cli import app
from coopml.federated.config import FLConfig, parse_fl_config
from coopml.federated.simulation import prepare, simulate
from coopml.federated.sweep import sweep

GAME = {
    "kappa": 0.9,
    "c": 2e-4,
    "mu": 0.5,
    "gamma": 0.5,
    "curve": {"fit": False, "A_max": 0.95, "a": 0.9, "b": 0.5},
}


def small(**changes: object) -> FLConfig:
    raw: dict[str, object] = {
        "rounds": 3,
        "data": {"dataset": "digits", "n_organisations": 5, "alpha": 0.3},
        "training": {"model": "logistic", "client_fraction": 0.8},
        "game": GAME,
    }
    raw.update(changes)
    return FLConfig.model_validate(raw)


@pytest.fixture(scope="module")
def trained():
    return simulate(small())


def test_every_strategy_trains_and_books(trained):
    assert set(trained.strategies) == {
        "mechanism",
        "equilibrium",
        "no_generation",
        "competition_oblivious",
        "random",
    }
    for s in trained.strategies.values():
        assert s.final_accuracy > 0.6  # digits, chance 0.1
        assert s.synthetic.shape == (3, 5)
        assert np.all(s.participants.sum(axis=1) == 4)
        assert np.all(s.synthetic[~s.participants] == 0)
    assert trained.strategies["no_generation"].synthetic_per_round.sum() == 0
    assert trained.transfers_sum <= 1e-9
    assert trained.individually_rational


def test_generation_lowers_the_measured_skew(trained):
    eq = trained.strategies["equilibrium"]
    base = trained.strategies["no_generation"]
    present = eq.participants & (eq.synthetic > 1)
    assert present.any()
    assert np.all(eq.skew_after[present] < base.skew_after[present])


def test_mechanism_welfare_at_least_every_baseline(trained):
    w = {k: v.social_welfare for k, v in trained.strategies.items()}
    assert all(w["mechanism"] >= v - 1e-9 for v in w.values())
    mech = trained.strategies["mechanism"]
    assert np.all(mech.utilities_after >= mech.utilities_equilibrium - 1e-9)
    np.testing.assert_allclose(mech.transfers.sum(axis=1), 0.0, atol=1e-9)


def test_strategies_share_random_streams():
    cfg = small(strategies=["no_generation"])
    a = simulate(cfg).strategies["no_generation"]
    b = simulate(cfg).strategies["no_generation"]
    np.testing.assert_array_equal(a.accuracy_per_round, b.accuracy_per_round)


def test_sweeps_mechanism_dominates_and_amounts_follow_gamma_and_skew():
    cfg = small(rounds=2)
    base = prepare(cfg, train=False)
    by_gamma = sweep(cfg, "gamma", [0.0, 0.3, 0.6, 0.9], train=False, base=base)
    assert np.all(by_gamma.social_welfare[0] >= by_gamma.social_welfare.max(axis=0) - 1e-9)
    eq = by_gamma.strategies.index("equilibrium")
    mech = by_gamma.strategies.index("mechanism")
    for k in (eq, mech):
        assert np.all(np.diff(by_gamma.synthetic[k]) < 0)  # falls with competition
    by_alpha = sweep(cfg, "alpha", [0.05, 1.0, 100.0], train=False, base=base)
    assert np.all(np.diff(by_alpha.mean_skew) < 0)
    assert np.all(np.diff(by_alpha.synthetic[eq]) < 0)  # rises with skew (falls with alpha)
    assert np.all(by_alpha.social_welfare[0] >= by_alpha.social_welfare.max(axis=0) - 1e-9)
    assert by_alpha.transfers_sum <= 1e-9 and by_alpha.individually_rational


def test_config_errors_name_the_key():
    with pytest.raises(ValueError, match="game"):
        parse_fl_config({"game": {"gamma": 2.0}})
    with pytest.raises(ValueError, match="strategies"):
        parse_fl_config({"strategies": ["greedy"]})


TOML = """
rounds = 2
[data]
dataset = "wine"
n_organisations = 3
alpha = 1.0
min_size = 5
[training]
model = "logistic"
[game]
gamma = 0.4
c = 1e-3
mu = 0.3
[game.curve]
pilot_fractions = [0.2, 0.5, 1.0]
pilot_rounds = 3
[sweep]
gamma = [0.0, 0.5]
alpha = [0.5, 5.0]
rounds = 2
train = false
"""


def test_cli_simulate_and_sweep_write_the_interface(tmp_path):
    runner = CliRunner()
    job = tmp_path / "job.toml"
    job.write_text(TOML)
    out = tmp_path / "out"
    result = runner.invoke(app, ["fl", "simulate", str(job), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["strategies"]) == {
        "mechanism",
        "equilibrium",
        "no_generation",
        "competition_oblivious",
        "random",
    }
    for entry in doc["strategies"].values():
        assert {"social_welfare", "final_accuracy", "synthetic_per_round"} <= set(entry)
        assert len(entry["synthetic_per_round"]) == 2
    assert doc["transfers_sum"] <= 1e-9
    assert doc["individually_rational"] is True
    assert 0 < doc["kappa"] <= 1 and doc["quality"]["n_samples"] > 0
    assert (out / "accuracy.png").stat().st_size > 0 and (out / "utilities.png").exists()
    sweep_out = tmp_path / "sweep"
    result = runner.invoke(app, ["fl", "sweep", str(job), "--out", str(sweep_out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((sweep_out / "sweep.json").read_text())
    assert set(doc) == {"gamma", "alpha"}
    assert (sweep_out / "sweep_gamma.png").exists() and (sweep_out / "sweep_alpha.png").exists()


def test_cli_reports_config_errors(tmp_path):
    job = tmp_path / "bad.toml"
    job.write_text("rounds = 0\n")
    result = CliRunner().invoke(app, ["fl", "simulate", str(job), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "rounds" in result.output


def test_sweep_with_training_records_accuracy():
    cfg = FLConfig.model_validate(
        {
            "rounds": 1,
            "strategies": ["mechanism", "no_generation"],
            "data": {"dataset": "wine", "n_organisations": 3, "min_size": 5},
            "game": GAME,
        }
    )
    r = sweep(cfg, "alpha", [0.5, 5.0])
    assert r.final_accuracy.shape == (2, 2) and np.all(r.final_accuracy > 0.3)
    assert np.all(np.isfinite(r.social_welfare_measured))
    doc = r.to_dict()
    assert set(doc["strategies"]) == {"mechanism", "no_generation"}
