"""`coopml init DIR --target COL`, then `coopml value` and `coopml market run` on its job."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from coopml.cli import app

runner = CliRunner()


def hospital_folder(path, validation="validation.csv", messy=False):
    """One CSV (or Parquet) file per hospital, columns in different orders."""
    rng = np.random.default_rng(0)
    path.mkdir(exist_ok=True)
    files = ["h1.csv", "h2.parquet", "h3.csv", *([validation] if validation else [])]
    for k, name in enumerate(files):
        n = 40 if name != validation else 60
        frame = pd.DataFrame({"age": rng.normal(50, 10, n), "bmi": rng.normal(26, 4, n)})
        frame["outcome"] = (frame["age"] + rng.normal(0, 5, n) > 50).astype(int)
        if messy:
            frame["smoker"] = rng.choice(["no", "yes"], n)
            if name != validation:
                frame.loc[[2, 5], "bmi"] = np.nan
        frame = frame[list(np.roll(frame.columns, k))]  # another column order per file
        if name.endswith(".parquet"):
            frame.to_parquet(path / name)
        else:
            frame.to_csv(path / name, index=False)
    return path


def _value_and_market(job, tmp_path):
    out = tmp_path / "values.json"
    result = runner.invoke(app, ["value", str(job), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [p["name"] for p in report["parties"]] == ["h1", "h2", "h3"]
    result = runner.invoke(app, ["market", "run", str(job), "--out", str(tmp_path / "market")])
    assert result.exit_code == 0, result.output
    settlement = json.loads((tmp_path / "market" / "settlement.json").read_text())
    return report, settlement


def test_init_then_value_and_market_run(tmp_path):
    folder = hospital_folder(tmp_path / "data")
    result = runner.invoke(app, ["init", str(folder), "--target", "outcome"])
    assert result.exit_code == 0, result.output
    job = folder / "job.toml"
    raw = tomllib.loads(job.read_text())
    assert [p["name"] for p in raw["parties"]] == ["h1", "h2", "h3"]
    assert raw["parties"][1]["path"] == "h2.parquet"
    assert raw["validation"] == {"path": "validation.csv", "target": "outcome"}
    assert raw["features"] == ["age", "bmi"]  # the first file's columns less the target
    assert raw["preprocessing"] == {"impute": "none", "categorical": "error", "scale": True}
    report, settlement = _value_and_market(job, tmp_path)
    assert report["parties"][0]["n_samples"] == 40
    assert len(settlement["parties"]) == 3


def test_init_with_missing_values_text_and_no_validation_file(tmp_path):
    folder = hospital_folder(tmp_path / "data", validation=None, messy=True)
    out = tmp_path / "jobs" / "hospitals.toml"
    learner = "sklearn.naive_bayes.GaussianNB"
    result = runner.invoke(
        app, ["init", str(folder), "--target", "outcome", "--out", str(out), "--learner", learner]
    )
    assert result.exit_code == 0, result.output
    raw = tomllib.loads(out.read_text())
    assert raw["parties"][0]["path"] == "../data/h1.csv"
    assert raw["validation"] == {"fraction": 0.3}
    assert raw["preprocessing"]["impute"] == "median"
    assert raw["preprocessing"]["categorical"] == "onehot"
    assert raw["learner"]["estimator"] == learner
    report, _ = _value_and_market(out, tmp_path)
    assert report["parties"][0]["n_samples"] == 40 - 12  # 30% held out for validation


def test_init_refusals_name_the_problem(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["init", str(empty), "--target", "outcome"])
    assert result.exit_code == 2 and "holds no party data" in result.output
    folder = hospital_folder(tmp_path / "data")
    result = runner.invoke(app, ["init", str(folder), "--target", "Outcome"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "file 'h1.csv' has no target column 'Outcome' (did you mean 'outcome'?)" in text
    assert runner.invoke(app, ["init", str(folder), "--target", "outcome"]).exit_code == 0
    result = runner.invoke(app, ["init", str(folder), "--target", "outcome"])
    assert result.exit_code == 2 and "--force" in result.output
    forced = runner.invoke(app, ["init", str(folder), "--target", "outcome", "--force"])
    assert forced.exit_code == 0
    (folder / "test.csv").write_text((folder / "validation.csv").read_text())
    result = runner.invoke(app, ["init", str(folder), "--target", "outcome", "--force"])
    assert result.exit_code == 2 and "--validation" in result.output


def test_a_single_class_party_is_warned_about_in_the_output_and_the_report(tmp_path):
    folder = hospital_folder(tmp_path / "data")
    frame = pd.read_csv(folder / "h3.csv")
    frame["outcome"] = 1  # every row of h3 has the same label
    frame.to_csv(folder / "h3.csv", index=False)
    assert runner.invoke(app, ["init", str(folder), "--target", "outcome"]).exit_code == 0
    out = tmp_path / "market"
    result = runner.invoke(app, ["market", "run", str(folder / "job.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "warning: party 'h3' has a single class (1) in its 40 training rows" in text
    assert "party &#x27;h3&#x27; has a single class" in (out / "report.html").read_text()
