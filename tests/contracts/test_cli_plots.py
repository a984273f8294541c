"""The ``coopml contract`` command group, the config file and the figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from coopml.cli.contract import app as contract_app
from coopml.contracts.config import ContractConfigError, parse_contract_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "contract_scenario1.toml"
KEYS = {
    "contributions",
    "rewards",
    "utilities",
    "reservation_utilities",
    "expected_model_value",
    "verified",
}


@pytest.fixture()
def root() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(contract_app, name="contract")
    return app


def test_solve_json_has_the_interface_keys(root):
    out = CliRunner().invoke(root, ["contract", "solve", str(EXAMPLE), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert KEYS <= data.keys()
    assert data["verified"] is True
    assert [round(x, 2) for x in data["reservation_utilities"]] == [
        6.77,
        13.15,
        20.75,
        30.34,
        44.16,
    ]
    assert round(data["expected_model_value"], 2) == 86.48


def test_solve_writes_menu_and_figures(root, tmp_path):
    out = CliRunner().invoke(root, ["contract", "solve", str(EXAMPLE), "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "Optimal contract menu" in out.stdout
    for name in ("result.json", "menu.csv", "menu.png", "contributions.png", "rewards.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_solve_user_config_power_law_and_exclusion(root, tmp_path):
    cfg = tmp_path / "mine.toml"
    cfg.write_text(
        'n_participants = 4\ncosts = [0.01, 0.3, 0.005]\ncurve = "power_law"\n'
        'a_max = 0.95\nscale = 20.0\nexponent = 0.7\nexclusion = "threshold"\n'
    )
    out = CliRunner().invoke(root, ["contract", "solve", str(cfg), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert len(data["contributions"]) == 3 and data["verified"]
    assert data["prior"] == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("costs = [0.1]\n", "n_participants"),
        ("n_participants = 3\ncosts = [0.1, 0.1]\n", "distinct values"),
        ('n_participants = 3\ncosts = [0.2, 0.1]\ncurve = "spline"\n', "curve"),
        ("n_participants = 3\ncosts = [0.2, 0.1]\nprior = [1.0]\n", "one entry per cost"),
        ("n_participants = 3\ncosts = [0.2, 0.1]\nbogus = 1\n", "bogus"),
        ("n_participants = [\n", "not valid TOML"),
    ],
)
def test_bad_configs_exit_2_with_a_message(root, tmp_path, text, match):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    out = CliRunner().invoke(root, ["contract", "solve", str(cfg)])
    assert out.exit_code == 2
    assert match in out.output
    assert "Traceback" not in out.output


def test_missing_config(root):
    out = CliRunner().invoke(root, ["contract", "solve", "nope.toml"])
    assert out.exit_code == 2 and "config file not found" in out.output


def test_sweep(root, tmp_path):
    cfg = tmp_path / "two.toml"
    cfg.write_text("n_participants = 2\ncosts = [0.02, 0.01]\n")
    out = CliRunner().invoke(
        root,
        [
            "contract",
            "sweep",
            str(cfg),
            "--n",
            "4:10:6",
            "--p1",
            "0.5:0.9:2",
            "--json",
            "--out",
            str(tmp_path),
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)["rows"]
    assert len(rows) == 4 and all(r["verified"] for r in rows)
    assert [round(rows[2]["m1"], 1), round(rows[2]["m2"], 1)] == [1915.8, 1917.9]
    assert rows[3]["m1"] == pytest.approx(rows[3]["m2"])  # pooling at p1 = 0.9
    assert (tmp_path / "surface_contributions.png").exists()
    bad = CliRunner().invoke(root, ["contract", "sweep", str(cfg), "--n", "x"])
    assert bad.exit_code == 2 and "option '--n' must be" in bad.output


def test_parse_config_error_names_the_key():
    with pytest.raises(ContractConfigError, match="'valuation_scale'"):
        parse_contract_config({"n_participants": 2, "costs": [0.2, 0.1], "valuation_scale": -1})


def test_figures(scenario1):
    from coopml.contracts.sweep import two_type_sweep
    from coopml.plots.contracts import (
        plot_contract_menu,
        plot_contribution_bars,
        plot_reward_distributions,
        plot_two_type_surface,
    )

    problem, res = scenario1
    assert len(plot_contract_menu(res).axes) == 2
    assert len(plot_contribution_bars(res).axes[0].patches) == 10
    assert len(plot_reward_distributions(problem, res).axes[0].patches) == 5
    sweep = two_type_sweep([0.02, 0.01], [4, 6], [0.4, 0.6])
    assert np.all(sweep.verified)
    with pytest.raises(ValueError, match="parameter 'quantity' must be one of"):
        plot_two_type_surface(sweep, "prices")
