from __future__ import annotations

import json

from typer.testing import CliRunner

from coopml.cli import app

runner = CliRunner()

CONFIG = """
[data]
dataset = "breast_cancer"
[partition]
method = "size_skew"
n_parties = 3
sizes = [0.5, 0.3, 0.2]
names = ["a", "b", "c"]
[[transform]]
kind = "replicate"
party = "b"
name = "b_copy"
[learner]
estimator = "sklearn.naive_bayes.GaussianNB"
[market]
rule = "ohrimenko"
[audit]
party = "c"
replicas = [1]
kinds = ["exact"]
"""


def _config(tmp_path, text=CONFIG):
    path = tmp_path / "job.toml"
    path.write_text(text)
    return str(path)


def test_run_writes_settlement_report_and_charts(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["market", "run", _config(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "settlement.json").read_text())
    assert {"rule", "parties", "value_table", "checks", "provenance"} <= set(record)
    assert [p["name"] for p in record["parties"]] == ["a", "b", "c", "b_copy"]
    keys = {"name", "fee", "own_gain", "model_gain", "improvement", "share", "payout", "net_gain"}
    assert all(keys <= set(p) for p in record["parties"])
    assert len(record["value_table"]) == 16
    assert record["checks"]["balanced"] is True and abs(record["checks"]["balance_error"]) < 1e-9
    assert record["checks"]["symmetric"] is True and record["identical"] == [["b", "b_copy"]]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and "Replication audit" in html
    assert (out / "settlement.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "audit.json").read_text())["party"] == "c"
    assert "replicated data" in result.output and "b_copy" in result.output

    verified = runner.invoke(app, ["market", "verify", str(out / "settlement.json")])
    assert verified.exit_code == 0 and "consistent" in verified.output
    record["parties"][0]["payout"] += 0.001
    (out / "tampered.json").write_text(json.dumps(record))
    tampered = runner.invoke(app, ["market", "verify", str(out / "tampered.json")])
    assert tampered.exit_code == 1 and "a: stored payout" in tampered.output
    (out / "junk.json").write_text("{}")
    junk = runner.invoke(app, ["market", "verify", str(out / "junk.json")])
    assert junk.exit_code == 1 and "not a coopml settlement record" in junk.output


def test_audit_command(tmp_path):
    out = tmp_path / "audit"
    result = runner.invoke(
        app, ["market", "audit", _config(tmp_path), "--party", "a", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["party"] == "a" and len(audit["rows"]) == 5
    assert (out / "audit.png").exists()


def test_multi_task_mode(tmp_path):
    text = CONFIG.replace('rule = "ohrimenko"', 'rule = "shapley"\nmode = "multi"')
    out = tmp_path / "out"
    result = runner.invoke(app, ["market", "run", _config(tmp_path, text), "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads((out / "settlement.json").read_text())
    assert record["mode"] == "multi" and record["value_table"] is None
    assert all(t["value_table"] is not None for t in record["tasks"])
    assert record["checks"]["balanced"] is True


def test_errors_are_reported_without_traceback(tmp_path):
    bad = CONFIG.replace('rule = "ohrimenko"', 'rule = "fairest"')
    result = runner.invoke(app, ["market", "run", _config(tmp_path, bad)])
    assert result.exit_code == 2 and "market.rule" in result.output
    assert "Traceback" not in result.output
    bad = CONFIG.replace('party = "c"', 'party = "zed"')
    result = runner.invoke(app, ["market", "run", _config(tmp_path, bad), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'party' must name a party; got 'zed'" in result.output
    missing = runner.invoke(app, ["market", "verify", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "cannot read settlement" in missing.output
