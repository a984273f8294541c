"""Issue 19: honest certificates per strategy, the market competition model and
[preprocessing] in FL job files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from coopml.federated.competition import MarketCompetition
from coopml.federated.config import ConfigError, FLConfig, load_fl_config
from coopml.federated.equilibrium import deviation_gains
from coopml.federated.game import AccuracyCurve
from coopml.federated.rounds import Ledger, RoundEngine, mechanism_deviation_gain
from coopml.federated.simulation import load_data, simulate

pytestmark = pytest.mark.filterwarnings("ignore:.*has a single class:UserWarning")

CURVE = {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.6}


def engine(strategy: str = "mechanism", **kw: Any) -> RoundEngine:
    return RoundEngine(
        strategy, theta=1.0, gamma=0.5, c=2e-4, s_max=300.0, kappa=0.9, mu=0.5,
        curve=AccuracyCurve(0.95, 0.9, 0.5), random_state=0, **kw,
    )  # fmt: skip


def wine_job(rounds: int = 2, **game: Any) -> FLConfig:
    return FLConfig.model_validate(
        {
            "rounds": rounds,
            "strategies": ["mechanism", "equilibrium", "random"],
            "data": {"dataset": "wine", "n_organisations": 3, "min_size": 5},
            "game": {"kappa": 0.8, "mu": 0.3, "curve": CURVE, **game},
        }
    )


# ------------------------------------------------------------------ item 1: certificates


def test_mechanism_reports_deviation_gain_with_transfers_and_optimum_gap_apart() -> None:
    eng = engine()
    plan = eng.plan(0, [0, 1, 2], n=[100, 120, 80], h0=[0.5, 0.2, 0.6])
    rec = eng.book(plan)
    game, red = plan.game, rec.redistribution
    assert game is not None and red is not None and plan.optimum is not None
    # without transfers the optimum is no equilibrium; with them it is
    assert deviation_gains(game, red.s_optimum).max() > 1e-4
    honest = deviation_gains(game, red.s_optimum, sigma=red.sigma).max()
    assert rec.max_deviation_gain == pytest.approx(honest, abs=1e-15)
    assert rec.max_deviation_gain is not None and rec.max_deviation_gain < 1e-9
    assert rec.optimum_welfare_gap == plan.optimum.max_deviation_gain
    assert rec.converged is True


def test_mechanism_not_converged_when_transfers_do_not_make_it_an_equilibrium() -> None:
    eng = engine()
    plan = eng.plan(0, [0, 1, 2], n=[100, 120, 80], h0=[0.5, 0.2, 0.6])
    # a wrong "optimum" (the equilibrium): its transfers leave profitable deviations
    wrong = dataclasses.replace(plan, optimum=plan.equilibrium)
    rec = eng.book(wrong)
    assert rec.redistribution is not None and plan.game is not None
    assert rec.max_deviation_gain == mechanism_deviation_gain(plan.game, rec.redistribution)
    assert rec.max_deviation_gain is not None and rec.max_deviation_gain > 1e-6
    assert rec.converged is False
    ledger = Ledger("mechanism", 2, 3)
    ledger.add(eng.book(plan))
    ledger.add(eng.book(dataclasses.replace(wrong, t=1)))
    res = ledger.result()
    assert res.converged is False  # one bad round is enough
    assert res.to_dict()["converged"] is False


def test_results_json_carries_converged_and_optimum_gap_per_strategy() -> None:
    res = simulate(wine_job(), train=False)
    doc = res.to_dict()["strategies"]
    assert doc["mechanism"]["converged"] is True
    assert doc["mechanism"]["max_deviation_gain"] < 1e-9
    assert doc["mechanism"]["optimum_welfare_gap"] is not None
    assert doc["equilibrium"]["converged"] is True
    assert doc["equilibrium"]["optimum_welfare_gap"] is None
    assert doc["random"]["converged"] is None and doc["random"]["max_deviation_gain"] is None


# ------------------------------------------------------------------ item 2: competition


def test_fl_job_accepts_market_competition_and_runs() -> None:
    cfg = wine_job(competition="market", market="bertrand", base_margin=0.1, gamma=0.4)
    assert cfg.game.competition_model() == MarketCompetition("bertrand", 0.1)
    eng = engine("equilibrium", competition=cfg.game.competition_model())
    plan = eng.plan(0, [0, 1], n=[100, 120], h0=[0.5, 0.2])
    assert plan.game is not None and isinstance(plan.game.competition, MarketCompetition)
    res = simulate(cfg, train=False)
    linear = simulate(wine_job(gamma=0.4), train=False)
    mech = res.strategies["mechanism"]
    assert mech.converged and res.transfers_sum < 1e-9
    # the market model changes the game: not the linear model's welfare
    assert mech.social_welfare != pytest.approx(linear.strategies["mechanism"].social_welfare)


@pytest.mark.parametrize(
    ("game", "words"),
    [
        ({"market": "cournot"}, "market applies only with competition = 'market'"),
        ({"competition": "market", "gamma": [0.2, 0.3, 0.2]}, "one product similarity"),
        ({"competition": "market", "market": "bertrand", "gamma": 1.0}, "gamma < 1"),
        ({"competition": "market", "outside_option": "standalone"}, "competition = 'market'"),
        ({"competition": "cubic"}, "competition"),
    ],
)
def test_bad_competition_settings_name_the_parameter(game: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        FLConfig.model_validate({"game": {"curve": CURVE, **game}})


# ------------------------------------------------------------------ item 2: preprocessing

JOB = """
rounds = 1
strategies = ["equilibrium"]
[[parties]]
name = "north"
path = "north.csv"
target = "cultivar"
[[parties]]
name = "south"
path = "south.csv"
target = "cultivar"
[validation]
path = "validation.csv"
target = "cultivar"
{preprocessing}
[game]
kappa = 0.9
[game.curve]
fit = false
A_max = 0.97
a = 2.0
b = 0.6
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    frame = load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["region"] = np.where(frame["alcohol"] > 13, "hill", "plain")  # a text column
    frame.loc[::7, "ash"] = np.nan  # missing values
    rows = np.random.default_rng(0).permutation(len(frame))
    frame.iloc[rows[:60]].to_csv(tmp_path / "north.csv", index=False)
    frame.iloc[rows[60:130]].to_csv(tmp_path / "south.csv", index=False)
    frame.iloc[rows[130:]].to_csv(tmp_path / "validation.csv", index=False)
    return tmp_path


def write(folder: Path, preprocessing: str) -> FLConfig:
    (folder / "job.toml").write_text(JOB.format(preprocessing=preprocessing))
    return load_fl_config(folder / "job.toml")


def test_fl_party_files_accept_preprocessing(folder: Path) -> None:
    cfg = write(folder, '[preprocessing]\nimpute = "median"\ncategorical = "onehot"')
    data = load_data(cfg)
    X = np.vstack([X for X, _ in data.clients])
    assert data.n_features == 13 + 2  # 13 numbers and the one-hot region
    assert np.all(np.isfinite(X)) and np.all(np.isfinite(data.X_val))
    # imputed with the pooled training median, then standardised with pooled statistics
    train = pd.concat([pd.read_csv(folder / f) for f in ("north.csv", "south.csv")])
    ash = train["ash"].fillna(train["ash"].median())
    col = list(train.drop(columns=["cultivar", "region"]).columns).index("ash")
    expected = (ash - ash.mean()) / ash.std(ddof=0)
    assert np.allclose(np.sort(X[:, col]), np.sort(expected.to_numpy()))


def test_fl_missing_values_error_names_only_remedies_that_work(folder: Path) -> None:
    cfg = write(folder, '[preprocessing]\ncategorical = "onehot"')
    with pytest.raises(ConfigError, match=r"impute") as err:
        load_data(cfg)
    assert "learner" not in str(err.value)


def test_preprocessing_needs_party_files() -> None:
    with pytest.raises(ValueError, match=r"\[preprocessing\] apply only to \[\[parties\]\]"):
        FLConfig.model_validate({"preprocessing": {"impute": "mean"}})
