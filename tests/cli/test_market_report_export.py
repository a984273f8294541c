"""`coopml market run`: readable output (whole tables off a terminal, summary first),
`--export-models` (skops always, ONNX where it converts), and `coopml value`'s Monte
Carlo sentence."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from coopml.cli import app
from coopml.reports.summary import sig

runner = CliRunner()

LONG = [
    "university_hospital_of_the_northern_region",
    "saint_bartholomews_teaching_hospital_trust",
    "riverside_community_clinic_and_laboratory",
]

CONFIG = f"""
[data]
dataset = "breast_cancer"
[partition]
method = "size_skew"
n_parties = 3
sizes = [0.5, 0.3, 0.2]
names = {json.dumps(LONG)}
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[market]
rule = "ohrimenko"
"""


def test_wide_settlement_is_whole_when_output_is_not_a_terminal(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(CONFIG)
    out = tmp_path / "out"
    result = runner.invoke(app, ["market", "run", str(job), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "…" not in text
    record = json.loads((out / "settlement.json").read_text())
    rows = [
        line
        for line in text.splitlines()
        if line.lstrip().startswith(tuple(LONG)) and len(line.split()) == 9
    ]
    assert len(rows) == 3
    for party in record["parties"]:
        row = next(r for r in rows if r.split()[0] == party["name"])
        cells = row.split()
        for key in ("fee", "own_gain", "model_gain", "charge", "share", "payout"):
            assert sig(party[key]) in cells, (key, row)
        assert sig(party["net_gain"], signed=True) in cells
    # the summary comes first, the members list is collapsed into one sentence
    flat = " ".join(text.split())
    assert flat.index("money is in units of the price") < flat.index("Settlement (")
    assert "Every party's model was trained on all 3 parties' data." in flat
    html = (out / "report.html").read_text()
    assert "<h2>In short</h2>" in html and "members" not in html


KNN = CONFIG.replace(
    'estimator = "sklearn.naive_bayes.GaussianNB"',
    'estimator = "sklearn.neighbors.KNeighborsClassifier"',
)


def test_export_models_round_trip(tmp_path):
    from sklearn.naive_bayes import GaussianNB

    from coopml.data import load_dataset, make_parties, train_validation_split
    from coopml.market import run_market
    from coopml.market.export import export_models, load_skops

    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    parties = make_parties(X, y, 3, names=["a b", "c", "d"], random_state=0)
    result = run_market(parties, GaussianNB(), (X_val, y_val))
    manifest = export_models(result, parties, tmp_path)
    assert json.loads((tmp_path / "models.json").read_text()) == manifest
    for name, model in result.models.items():
        entry = manifest["models"][name]
        path = tmp_path / entry["files"]["skops"]["file"]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["files"]["skops"]["sha256"] == digest
        loaded = load_skops(path)
        np.testing.assert_array_equal(loaded.predict(X_val), model.predict(X_val))
        np.testing.assert_array_equal(
            loaded.predict_proba(X_val), model.estimator.predict_proba(X_val)
        )
        assert entry["holds_other_parties_rows"] is False
        assert entry["trained_on"] == ["a b", "c", "d"]
    assert manifest["models"]["a b"]["files"]["skops"]["file"] == "a_b.skops"
    ort = pytest.importorskip("onnxruntime")
    onnx = manifest["models"]["c"]["files"]["onnx"]
    assert onnx["agreement"] == 1.0, onnx
    session = ort.InferenceSession(str(tmp_path / onnx["file"]), providers=["CPUExecutionProvider"])
    labels = session.run(None, {"X": X_val.astype(onnx["input"]["dtype"])})[0]
    np.testing.assert_array_equal(labels, result.models["c"].predict(X_val))


def test_cli_export_flags_row_holding_models(tmp_path):
    pytest.importorskip("skops")
    job = tmp_path / "job.toml"
    job.write_text(KNN)
    models = tmp_path / "models"
    result = runner.invoke(
        app,
        ["market", "run", str(job), "--out", str(tmp_path / "out"), "--export-models", str(models)],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((models / "models.json").read_text())
    assert "other parties' training rows" in manifest["note"]
    for name in LONG:
        entry = manifest["models"][name]
        assert entry["holds_other_parties_rows"] is True  # kNN stores every row
        assert "_fit_X" in entry["release_check"]["reason"]
        assert (models / entry["files"]["skops"]["file"]).exists()
    assert "holds other parties' training rows" in " ".join(result.output.split())


def test_export_without_skops_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "skops", None)
    monkeypatch.setitem(sys.modules, "skops.io", None)
    job = tmp_path / "job.toml"
    job.write_text(CONFIG)
    result = runner.invoke(app, ["market", "run", str(job), "--export-models", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "coopml[export]" in result.output and "Traceback" not in result.output


VALUE = """
[data]
dataset = "wine"
[partition]
method = "iid"
n_parties = 6
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[valuation]
methods = ["monte_carlo"]
max_evaluations = 30
"""


def test_value_prints_monte_carlo_as_a_sentence(tmp_path):
    (tmp_path / "job.toml").write_text(VALUE)
    result = runner.invoke(app, ["value", str(tmp_path / "job.toml")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "monte_carlo_shapley: stopped after" in text
    assert "by the 30-evaluation budget; not converged: largest standard error" in text
    assert "MaxPermutations" not in text and "{" not in text
