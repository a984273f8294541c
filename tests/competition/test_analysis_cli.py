"""``analyze`` and the ``coopml sharing`` CLI."""

from __future__ import annotations

import json

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
