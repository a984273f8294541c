"""``coopml fl simulate`` with one CSV file per organisation ([[parties]], [validation])."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from typer.testing import CliRunner

from coopml.cli import app
from coopml.federated.config import ConfigError, load_fl_config
from coopml.federated.simulation import prepare
from coopml.federated.sweep import sweep

# organisations with one cultivar only are the point of label skew (party.py warns)
pytestmark = pytest.mark.filterwarnings("ignore:.*has a single class:UserWarning")

JOB = """
rounds = 2
strategies = ["mechanism", "equilibrium", "no_generation"]
[[parties]]
name = "north"
path = "north.csv"
target = "cultivar"
[[parties]]
name = "south"
path = "south.csv"
target = "cultivar"
[[parties]]
name = "east"
path = "east.csv"
target = "cultivar"
[validation]
path = "validation.csv"
target = "cultivar"
[game]
kappa = 0.9
mu = 0.3
[game.curve]
fit = false
A_max = 0.97
a = 2.0
b = 0.6
"""


@pytest.fixture
def folder(tmp_path):
    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    rng = np.random.default_rng(0)
    rows = rng.permutation(len(frame))
    # skewed parties: sorted by label, so each sees mostly one or two cultivars
    train = frame.iloc[rows[:130]].sort_values("cultivar", kind="stable")
    parts = np.array_split(np.arange(len(train)), 3)
    for name, idx in zip(("north", "south", "east"), parts, strict=True):
        part = train.iloc[idx]
        if name == "south":  # the same columns in another order: matched by name
            part = part[list(reversed(part.columns))]
        part.to_csv(tmp_path / f"{name}.csv", index=False)
    frame.iloc[rows[130:]].to_csv(tmp_path / "validation.csv", index=False)
    (tmp_path / "job.toml").write_text(JOB)
    return tmp_path


def test_fl_simulate_reads_one_file_per_organisation(folder):
    out = folder / "out"
    result = CliRunner().invoke(
        app, ["fl", "simulate", str(folder / "job.toml"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "results.json").read_text())
    for strategy in doc["strategies"]:  # printed whole off a terminal, never "equilibri…"
        assert f" {strategy} " in result.output
    assert "…" not in result.output
    assert doc["organisations"] == ["north", "south", "east"]
    sizes = [len(pd.read_csv(folder / f"{n}.csv")) for n in ("north", "south", "east")]
    assert doc["n"] == sizes
    assert max(doc["h0"]) > 0.3  # the skew of the files is measured
    for entry in doc["strategies"].values():
        assert entry["final_accuracy"] > 0.8  # wine, chance 0.4
        assert entry["participation_per_round"] == [1.0, 1.0]
    assert doc["transfers_sum"] < 1e-9 and doc["individually_rational"]


def test_reordered_columns_give_the_same_data(folder):
    cfg = load_fl_config(folder / "job.toml")
    data = prepare(cfg, train=False).data
    south = pd.read_csv(folder / "south.csv")
    features = [c for c in pd.read_csv(folder / "north.csv").columns if c != "cultivar"]
    X = south[features].to_numpy(dtype=float)
    mean = np.vstack(
        [pd.read_csv(folder / f"{n}.csv")[features] for n in ("north", "south", "east")]
    )
    standardised = (X - mean.mean(axis=0)) / mean.std(axis=0)
    np.testing.assert_allclose(data.clients[1][0], standardised)
    assert data.classes == ("barbera", "barolo", "grignolino")


def test_renamed_column_names_the_file_and_the_column(folder):
    east = pd.read_csv(folder / "east.csv").rename(columns={"alcohol": "Alcohol"})
    east.to_csv(folder / "east.csv", index=False)
    result = CliRunner().invoke(app, ["fl", "simulate", str(folder / "job.toml")])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "east.csv" in text and "'alcohol'" in text and "did you mean 'Alcohol'" in text


def test_party_files_exclude_a_bundled_split_and_the_alpha_sweep(folder):
    (folder / "bad.toml").write_text(JOB + '\n[data]\ndataset = "wine"\n')
    with pytest.raises(ConfigError, match=r"data\.dataset"):
        load_fl_config(folder / "bad.toml")
    cfg = load_fl_config(folder / "job.toml")
    with pytest.raises(ValueError, match="'alpha' only for a bundled dataset"):
        sweep(cfg, "alpha", [0.5], train=False)
