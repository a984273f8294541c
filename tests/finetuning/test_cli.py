"""``coopml finetune``: the command lines users type, and the interface JSON keys."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from coopml.cli.finetune import app as finetune_app
from coopml.finetuning import quadratic_pareto_set, quadratic_solution_shares

root = typer.Typer()
root.add_typer(finetune_app, name="finetune")
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(root, list(args))


def test_solve_json_interface():
    result = invoke("finetune", "solve", "--c0", "1", "--c1", "2.5", "--revenue", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["pareto_set"] == [list(quadratic_pareto_set(1.0, 2.5))]
    assert set(out["solutions"]) >= {"nash", "kalai_smorodinsky", "egalitarian", "utilitarian"}
    derived = quadratic_solution_shares(1.0, 2.5)
    for name, sol in out["solutions"].items():
        assert {"delta", "u_generalist", "u_specialist", "alpha0", "alpha1"} <= set(sol)
        assert sol["delta"] == pytest.approx(derived[name])
        assert sol["alpha0"] == pytest.approx(sol["delta"] * 3 / 2)


def test_solve_table_and_specialists_file(tmp_path):
    result = invoke("finetune", "solve", "--c0", "1", "--c1", "2", "--revenue", "1")
    assert result.exit_code == 0 and "Pareto-optimal shares" in result.stdout
    spec = tmp_path / "specialists.toml"
    spec.write_text(
        '[[specialists]]\nname = "legal"\nlinear = 0.8\n\n'
        '[[specialists]]\nname = "medical"\nquadratic = 0.5\nfixed = 0.2\nrevenue = 2.0\n'
    )
    result = invoke(
        "finetune",
        "solve",
        "--c0",
        "1",
        "--c1",
        "1",
        "--revenue",
        "1",
        "--specialists",
        str(spec),
        "--n-grid",
        "201",
        "--json",
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    nash = out["solutions"]["nash"]
    assert len(nash["u_specialist"]) == 2 and len(nash["alpha1"]) == 2
    assert [s["name"] for s in out["game"]["specialists"]] == ["legal", "medical"]
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps([{"quadratic": 2.0, "revenue": 1.0}]))
    result = invoke("finetune", "solve", "--c0", "1", "--specialists", str(as_json), "--json")
    assert json.loads(result.stdout)["pareto_set"] == [[0.3333333333333333, 1.0]]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--c0", "-1", "--c1", "2", "--revenue", "1"],
            "parameter 'c0' must be finite and > 0; got -1.0",
        ),
        (["--c0", "1", "--revenue", "1"], "parameters 'c1' and 'revenue' are required"),
        (["--c0", "1", "--c1", "0", "--revenue", "1"], "parameter 'c1' must be finite and > 0"),
        (["--c0", "1", "--c1", "1", "--revenue", "1", "--shares", "all"], "parameter 'shares'"),
        (["--c0", "1", "--specialists", "missing.toml"], "must name an existing file"),
    ],
)
def test_solve_errors_exit_2_without_traceback(args, message):
    result = invoke("finetune", "solve", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_bad_specialists_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"specialists": [{"quadratic": -1, "revenue": 1}]}))
    result = invoke("finetune", "solve", "--c0", "1", "--specialists", str(bad))
    assert result.exit_code == 2 and "specialists.0.quadratic" in result.output
    bad.write_text("{not json")
    result = invoke("finetune", "solve", "--c0", "1", "--specialists", str(bad))
    assert result.exit_code == 2 and "could not parse" in result.output


def test_plot_writes_small_pngs(tmp_path):
    result = invoke(
        "finetune", "plot", "--out", str(tmp_path), "--n-regime", "3", "--n-grid", "101"
    )
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in tmp_path.glob("finetuning_*.png"))
    assert files == [
        "finetuning_disconnected_pareto.png",
        "finetuning_regime_map.png",
        "finetuning_shares_vs_kappa.png",
        "finetuning_utility_curve.png",
    ]
    for path in tmp_path.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 150_000
    assert invoke("finetune", "plot", "--out", str(tmp_path), "--n-regime", "1").exit_code == 2
