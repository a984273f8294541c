"""``--executor``, ``--n-jobs`` and ``--ray-address`` of ``coopml value`` and ``coopml
market run``: they override the job file's ``[executor]`` table."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from coopml.cli import app

runner = CliRunner()

MARKET = """
[data]
dataset = "iris"
[partition]
n_parties = 3
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[market]
rule = "shapley"
"""


def _job(tmp_path, text):
    path = tmp_path / "job.toml"
    path.write_text(text)
    return str(path)


def test_market_run_takes_the_executor_from_the_command_line(tmp_path):
    job = _job(tmp_path, MARKET + '[executor]\nkind = "ray"\naddress = "auto"\n')
    out = tmp_path / "out"
    args = ["market", "run", job, "--executor", "joblib", "--n-jobs", "2", "--out", str(out)]
    result = runner.invoke(app, [*args, "--quiet"])
    assert result.exit_code == 0, result.output
    settlement = json.loads((out / "settlement.json").read_text())
    assert len(settlement["parties"]) == 3


def test_bad_executor_options_are_named(tmp_path):
    job = _job(tmp_path, MARKET)
    result = runner.invoke(app, ["market", "run", job, "--executor", "dask"])
    assert result.exit_code != 0 and "executor.kind" in result.output
    bad = ["market", "run", job, "--executor", "joblib", "--ray-address", "auto"]
    result = runner.invoke(app, bad)
    assert result.exit_code != 0
    assert "address names a Ray cluster and needs kind = 'ray'" in " ".join(result.output.split())
    value_job = _job(tmp_path, MARKET.replace('[market]\nrule = "shapley"\n', ""))
    result = runner.invoke(app, ["value", value_job, "--executor", "serial", "--n-jobs", "3"])
    assert result.exit_code != 0
    assert "needs kind = 'joblib' or 'ray'" in " ".join(result.output.split())
