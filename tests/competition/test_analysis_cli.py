"""``analyze`` and the ``coopml sharing`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from coopml.cli.sharing import app as sharing_app
from coopml.competition import analyze, equilibrium_deviation_gain

root = typer.Typer()
root.add_typer(sharing_app, name="sharing")


def test_analyze() -> None:
    result = analyze([1000, 100], gamma=0.5, beta=0.5)
    assert result.full.agrees.tolist() == [False, True]
    assert equilibrium_deviation_gain(result.alone) <= 1e-8
    assert equilibrium_deviation_gain(result.shared) <= 1e-8
    assert result.shared.welfare > result.alone.welfare
    json.dumps(result.to_dict())


def test_cli_json() -> None:
    args = ["sharing", "analyze", "--sizes", "1000", "100", "--gamma", "0.05", "--beta", "0.3"]
    out = CliRunner().invoke(root, [*args, "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [f["size"] for f in data["firms"]] == [1000.0, 100.0]
    assert set(data["firms"][0]) == {
        "size", "profit_alone", "profit_shared", "agrees_to_full_sharing",
    }  # fmt: skip
    assert data["full_sharing"] is True  # gamma = 0.05 < 2R(0.3, 10)
    assert len(data["nash_bargaining"]["fractions"]) == 2
    assert data["equilibria_verified"] is True and data["max_deviation_gain"] <= 1e-8
    expected = analyze([1000, 100], gamma=0.05, beta=0.3).to_dict()
    assert data["firms"] == expected["firms"]


def test_cli_table_and_bertrand() -> None:
    args = ["sharing", "analyze", "--sizes", "300", "200", "100", "--gamma", "0.4"]
    out = CliRunner().invoke(root, [*args, "--beta", "0.5", "--market", "bertrand"])
    assert out.exit_code == 0, out.output
    assert "full sharing" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "100", "x", "--gamma", "0.5", "--beta", "0.5"], "parameter 'sizes'"),
        (["--sizes", "100", "50", "--gamma", "2", "--beta", "0.5"], "parameter 'gamma'"),
        (["--sizes", "100", "50", "--gamma", "0.5", "--beta", "0"], "parameter 'beta'"),
        (["--sizes", "100", "50", "--gamma", "0.5", "--beta", "1", "--market", "x"], "market"),
    ],
)
def test_cli_errors(args: list[str], message: str) -> None:
    out = CliRunner().invoke(root, ["sharing", "analyze", *args])
    assert out.exit_code == 2
    assert message in out.output


def test_cli_quality_channel_and_plot(tmp_path: Path) -> None:
    base = ["sharing", "analyze", "--sizes", "1000", "100", "--gamma", "0.3", "--beta", "0.4"]
    cost = json.loads(CliRunner().invoke(root, [*base, "--json"]).output)
    out = CliRunner().invoke(root, [*base, "--quality", "demand", "--json"])
    assert out.exit_code == 0, out.output
    demand = json.loads(out.output)
    assert demand["model"]["quality"] == "demand"
    assert [f["agrees_to_full_sharing"] for f in demand["firms"]] == [
        f["agrees_to_full_sharing"] for f in cost["firms"]
    ]
    png = tmp_path / "gains.png"
    table = CliRunner().invoke(root, [*base, "--market", "bertrand", "--plot", str(png)])
    assert table.exit_code == 0, table.output
    assert png.stat().st_size > 0 and "decision" in table.output
    bad = CliRunner().invoke(root, [*base, "--quality", "price"])
    assert bad.exit_code == 2 and "parameter 'quality'" in bad.output


@pytest.mark.parametrize(
    "args",
    [
        ["--sizes", "1000", "100"],
        ["--axis", "ratio", "--beta", "0.3", "--market", "bertrand"],
        ["--sizes", "300", "200", "100", "--quality", "demand"],
    ],
)
def test_cli_phase_diagram(tmp_path: Path, args: list[str]) -> None:
    out = CliRunner().invoke(
        root,
        [
            "sharing",
            "phase-diagram",
            *args,
            "--n-gamma",
            "12",
            "--n-y",
            "9",
            "--out",
            str(tmp_path),
        ],
    )
    assert out.exit_code == 0, out.output
    name = "size_ratio" if "ratio" in args else "beta"
    frame = pd.read_csv(tmp_path / f"phase_{name}.csv")
    assert len(frame) == 12 * 9
    assert (tmp_path / f"phase_{name}.png").stat().st_size > 0
    assert (tmp_path / f"fractions_{name}.png").exists() == ("300" not in args)
    assert "12 x 9 diagram in" in out.output


def test_cli_phase_diagram_errors(tmp_path: Path) -> None:
    out = CliRunner().invoke(root, ["sharing", "phase-diagram", "--out", str(tmp_path)])
    assert out.exit_code == 2 and "parameter 'sizes' is required" in out.output
    out = CliRunner().invoke(
        root, ["sharing", "phase-diagram", "--axis", "x", "--out", str(tmp_path)]
    )
    assert out.exit_code == 2 and "parameter 'axis'" in out.output


class QuadraticCostCournot:
    """A user market: Cournot with an extra quadratic production cost q_i^2 / 2."""

    gamma = 0.5

    def profits(self, q: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        others = q.sum(axis=-1, keepdims=True) - q
        return (a - q - self.gamma * others - c) * q - 0.5 * q**2

    def action_bounds(self, a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(a)), np.ones(len(a))


def test_analyze_with_a_user_market() -> None:
    market = QuadraticCostCournot()
    r = analyze([1000, 100], gamma=0.5, beta=0.5, market=market, n_grid=100, n_starts=1)
    assert r.model.market_name == "QuadraticCostCournot"
    assert r.alone.converged and r.shared.converged and r.verified
    assert r.alone.max_deviation_gain <= 1e-8
    # closed form of this market: q_i = (3 m_i - g m_j) / (9 - g^2)
    m = 1 - 0.25 * np.array([1000.0, 100.0]) ** -0.5
    q = (3 * m - 0.5 * m[::-1]) / (9 - 0.25)
    np.testing.assert_allclose(r.alone.actions, q, atol=1e-6)
    assert r.full.agrees[1]  # the smaller firm wants full sharing here too
    assert r.structures is None
    json.dumps(r.to_dict())
