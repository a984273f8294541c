"""Exported models take a party's raw rows (issue 14 item 7): a DataFrame with a text
column and missing values, columns matched by name, the encoding inside the model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from coopml.cli import app
from coopml.config import MarketConfig, load_config
from coopml.market.export import export_models, load_skops
from coopml.market.job import run_market_job

pytest.importorskip("skops")
runner = CliRunner()


def _frames(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    frames = {}
    for name, n in [("alpha", 40), ("beta", 30), ("val", 50)]:
        age = rng.normal(50, 10, n).round(1)
        smoker = rng.choice(["no", "former", "yes"], n).astype(object)
        bmi = rng.normal(26, 4, n).round(1)
        sick = age + 6 * (smoker == "yes") + 0.5 * bmi + rng.normal(0, 5, n) > 66
        frame = pd.DataFrame(
            {"smoker": smoker, "age": age, "bmi": bmi, "y": np.where(sick, "sick", "well")}
        )
        frame.loc[rng.choice(n, 4, replace=False), "bmi"] = np.nan
        frame.loc[rng.choice(n, 3, replace=False), "smoker"] = None
        frames[name] = frame
    return frames


def _job(tmp_path, frames) -> None:
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    job = 'features = ["age", "bmi", "smoker"]\n'
    job += "".join(
        f'[[parties]]\nname = "{n}"\npath = "{n}.csv"\ntarget = "y"\n' for n in ("alpha", "beta")
    )
    job += '[validation]\npath = "val.csv"\ntarget = "y"\n'
    job += '[preprocessing]\nimpute = "median"\ncategorical = "onehot"\n'
    job += '[learner]\nestimator = "sklearn.linear_model.LogisticRegression"\n'
    (tmp_path / "job.toml").write_text(job)


def test_cli_exported_model_predicts_on_raw_reordered_rows_as_the_market_did(tmp_path):
    frames = _frames()
    _job(tmp_path, frames)
    models = tmp_path / "models"
    args = ["market", "run", str(tmp_path / "job.toml"), "--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--export-models", str(models)])
    assert result.exit_code == 0, result.output
    cfg, base = load_config(tmp_path / "job.toml", schema=MarketConfig)
    job = run_market_job(cfg, base, audit=False)
    assert job.schema is not None
    manifest = json.loads((models / "models.json").read_text())
    raw = frames["val"].drop(columns="y")
    encoded = job.schema.transform(raw)
    reordered = raw[["smoker", "bmi", "age"]].assign(extra=1.0)
    for name, model in job.result.models.items():
        entry = manifest["models"][name]
        assert entry["input"]["columns"] == [
            {"name": "age", "dtype": "numeric"},
            {"name": "bmi", "dtype": "numeric"},
            {"name": "smoker", "dtype": "categorical", "categories": ["former", "no", "yes"]},
        ]
        assert entry["target"] == "y" and entry["classes"] == ["sick", "well"]
        loaded = load_skops(models / entry["files"]["skops"]["file"])
        assert list(loaded.feature_names_in_) == ["age", "bmi", "smoker"]
        expected = model.estimator.predict_proba(encoded)
        np.testing.assert_array_equal(loaded.predict(raw), model.predict(encoded))
        np.testing.assert_allclose(loaded.predict_proba(reordered), expected, rtol=0, atol=0)
        with pytest.raises(ValueError, match=r"lacks the feature column\(s\) \['bmi'\]"):
            loaded.predict(raw.drop(columns="bmi"))
        with pytest.raises(TypeError, match="must be a pandas DataFrame"):
            loaded.predict(encoded)


def test_all_numeric_export_matches_columns_by_name_not_position(tmp_path):
    frames = {k: f.drop(columns="smoker") for k, f in _frames(1).items()}
    _job(tmp_path, frames)
    (tmp_path / "job.toml").write_text(
        (tmp_path / "job.toml").read_text().replace('["age", "bmi", "smoker"]', '["age", "bmi"]')
    )
    cfg, base = load_config(tmp_path / "job.toml", schema=MarketConfig)
    job = run_market_job(cfg, base, audit=False)
    manifest = export_models(
        job.result, list(job.parties), tmp_path / "m", schema=job.schema, targets=job.targets
    )
    raw = frames["val"].drop(columns="y")
    swapped = raw[["bmi", "age"]]
    entry = manifest["models"]["alpha"]
    loaded = load_skops(tmp_path / "m" / entry["files"]["skops"]["file"])
    expected = job.result.models["alpha"].estimator.predict_proba(raw.to_numpy(float))
    # by name: the same probabilities up to rounding (by position they would differ)
    np.testing.assert_allclose(loaded.predict_proba(swapped), expected, rtol=0, atol=1e-12)
    onnx = entry["files"]["onnx"]
    if "file" in onnx:
        assert onnx["input"]["columns"] == ["age", "bmi"]
