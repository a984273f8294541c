"""``coopml client ...``: the whole operator/party workflow without curl, in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import coopml.cli.client as cli_client
from coopml.cli import app
from coopml.service.client import CoopmlClient

OPERATOR_TOKEN = "operator-token-for-cli-tests-0123456789"
URL = "http://testserver"


def _party_csvs(tmp_path, n=3):
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(1).permutation(len(y))
    chunks = np.array_split(order, 2 * n)
    columns = [f"x{j}" for j in range(X.shape[1])]
    paths = []
    for i in range(n):
        pair = {}
        for role, idx in (("train", chunks[2 * i]), ("validation", chunks[2 * i + 1])):
            frame = pd.DataFrame(X[idx].round(5), columns=columns).assign(label=y[idx])
            path = tmp_path / f"p{i}_{role}.csv"
            if role == "train" and i == 2:  # one party sends Parquet
                path = path.with_suffix(".parquet")
                frame.to_parquet(path)
            else:
                frame.to_csv(path, index=False)
            pair[role] = path
        paths.append(pair)
    return paths


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    settings = Settings(tmp_path_factory.mktemp("svc"), operator_token=OPERATOR_TOKEN)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def run(http, monkeypatch):
    """Invoke ``coopml client ...`` against the in-process app; returns the result."""
    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=http),
    )
    runner = CliRunner()

    def invoke(*args: str, token: str | None = OPERATOR_TOKEN, ok: bool = True):
        env = {"COOPML_URL": URL, "COOPML_TOKEN": token or ""}
        result = runner.invoke(app, ["client", *args], env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_three_party_workflow(run, tmp_path):
    market = run(
        "create-market", "clinics", "--description", "three clinics",
        "--release-policy", "aggregate_only", "-q",
    ).stdout.strip()  # fmt: skip
    assert len(market) >= 8
    out = run("add-party", market, "alice").stdout
    assert "shown once" in out
    tokens = {"alice": out.strip().splitlines()[-1]}
    for name in ("bob", "carol"):
        tokens[name] = run("add-party", market, name, "-q").stdout.strip()
    assert len(set(tokens.values())) == 3
    paths = _party_csvs(tmp_path)
    for token, pair in zip(tokens.values(), paths, strict=True):
        for role, path in pair.items():
            shown = run(
                "upload", market, str(path), "--target", "label", "--role", role, token=token
            )
            assert "30 features" in shown.stdout, shown.stdout
    listing = run("datasets", market, "--json", token=tokens["bob"]).stdout
    assert json.loads(listing)["total"] == 2
    assert json.loads(run("datasets", market, "--json").stdout)["total"] == 6

    rnd = run(
        "open-round", market, "--learner", "gaussian_nb", "--param", "var_smoothing=1e-9",
        "--rule", "shapley", "--price", "1.5", "--empty-value", "zero", "--wait", "-q",
    ).stdout.strip()  # fmt: skip
    status = run("status", rnd, token=tokens["carol"]).stdout
    assert "completed" in status and "100%" in status
    assert json.loads(run("status", rnd, "--wait", "--json").stdout)["status"] == "completed"
    assert rnd in run("rounds", market, "--json").stdout

    full = json.loads(run("settlement", rnd, "--json").stdout)
    assert full["empty_value"] == "zero"
    assert sorted(line["name"] for line in full["lines"]) == ["alice", "bob", "carol"]
    own = json.loads(run("settlement", rnd, "--json", token=tokens["alice"]).stdout)
    assert [line["name"] for line in own["lines"]] == ["alice"]
    table = run("settlement", rnd, token=tokens["alice"]).stdout
    assert "alice" in table and "bob" not in table

    model = tmp_path / "alice.skops"
    run("download-model", rnd, "-o", str(model), token=tokens["alice"])
    assert model.read_bytes()[:2] == b"PK"

    csv_out = run("predict", rnd, str(paths[0]["validation"]), token=tokens["alice"]).stdout
    lines = csv_out.strip().splitlines()
    n_val = len(paths[0]["validation"].read_text().strip().splitlines()) - 1
    assert lines[0] == "prediction" and len(lines) == n_val + 1
    assert set(lines[1:]) <= {"0", "1", "0.0", "1.0"}
    json_out = tmp_path / "preds.json"
    run("predict", rnd, str(paths[0]["validation"]), "-o", str(json_out), token=tokens["alice"])
    assert len(json.loads(json_out.read_text())["predictions"]) == n_val

    audit = run("audit", rnd).stdout
    assert "balance" in audit and "verification" in audit
    ledger = json.loads(run("ledger", rnd, "--json").stdout)
    entries = ledger["items"]
    assert ledger["total"] == len(entries)
    sign = {"fee_collected": 1.0, "fee_returned": -1.0, "payout": -1.0}
    assert abs(sum(sign[e["kind"]] * e["amount"] for e in entries)) < 1e-9

    log = json.loads(run("audit-log", "--json", token=tokens["alice"]).stdout)
    actions = " ".join(e["action"] for e in log["items"])
    assert log["total"] >= 3 and "model_queried" in actions and "model_downloaded" in actions
    assert "Audit log" in run("audit-log").stdout

    assert "operator" in run("me").stdout
    me = json.loads(run("me", "--json", token=tokens["bob"]).stdout)
    assert me["role"] == "party" and me["name"] == "bob" and me["market_id"] == market
    parties = json.loads(run("parties", market, "--json", token=tokens["bob"]).stdout)
    assert [p["name"] for p in parties["items"]] == ["bob"]
    assert market in run("markets", "--json").stdout
    assert "ok" in run("health").stdout


def test_errors_are_one_line_messages_with_exit_codes(run, tmp_path):
    result = run("me", token=None, ok=False)
    assert result.exit_code == 2 and "no API token" in result.output
    result = run("me", token="not-a-real-token", ok=False)
    assert result.exit_code == 1 and "HTTP 401" in result.output
    assert "Traceback" not in result.output
    result = run("status", "0" * 32, ok=False)
    assert result.exit_code == 1 and "HTTP 404" in result.output and "request id" in result.output
    result = run("open-round", "m", "--learner", "ridge", "--param", "alpha", ok=False)
    assert result.exit_code == 2 and "key=value" in result.output
    result = run("open-round", "m", "--learner", "ridge", "--empty-value", "none", ok=False)
    assert result.exit_code == 2 and "--empty-value" in result.output
    market = run("create-market", "errs", "-q").stdout.strip()
    result = run("open-round", market, "--learner", "no_such_learner", ok=False)
    assert result.exit_code == 1 and "no_such_learner" in result.output
    result = run("upload", market, str(tmp_path / "missing.csv"), "--target", "y", ok=False)
    assert result.exit_code == 2


def test_unreachable_service(monkeypatch):
    result = CliRunner().invoke(
        app, ["client", "me", "--url", "http://127.0.0.1:9", "--token", "t"]
    )
    assert result.exit_code == 1 and "cannot reach" in result.output


def test_parse_params():
    assert cli_client._parse_params(["C=0.5", "max_iter=200", "penalty=l2", "fit=true"]) == {
        "C": 0.5,
        "max_iter": 200,
        "penalty": "l2",
        "fit": True,
    }


def _frame(seed: int, n: int = 80):
    import pandas as pd

    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, n)
    return pd.DataFrame(
        {
            "a": a.round(4),
            "b": rng.normal(5, 2, n).round(4),
            "c": rng.normal(-3, 0.5, n).round(4),
            "d": rng.normal(50, 10, n).round(4),
            "label": (a > 0).astype(int),
        }
    )


def test_predict_uses_the_market_feature_order(run, http, tmp_path):
    """Bob's first upload fixes the order a,b,c,d; alice's files list d,c,b,a. Her CLI
    predictions must equal the API's on rows in the market's order."""
    market = run("create-market", "order", "-q").stdout.strip()
    tokens = {
        name: run("add-party", market, name, "-q").stdout.strip() for name in ("bob", "alice")
    }
    for seed, (name, order) in enumerate((("bob", "abcd"), ("alice", "dcba"))):
        for k, role in enumerate(("train", "validation")):
            path = tmp_path / f"{name}_{role}.csv"
            _frame(10 * seed + k)[[*order, "label"]].to_csv(path, index=False)
            run(
                "upload", market, str(path), "--target", "label", "--role", role, token=tokens[name]
            )
    rnd = run("open-round", market, "--learner", "gaussian_nb", "--wait", "-q").stdout.strip()
    via_cli = run("predict", rnd, str(tmp_path / "alice_validation.csv"), token=tokens["alice"])
    cli = [float(v) for v in via_cli.stdout.split()[1:]]
    alice = CoopmlClient(URL, tokens["alice"], http_client=http)
    frame = _frame(11)
    right = alice.predict(rnd, frame[list("abcd")].to_numpy().tolist())
    wrong = alice.predict(rnd, frame[list("dcba")].to_numpy().tolist())
    assert right != wrong, "the data should make the column order matter"
    assert cli == [float(v) for v in right]


def test_status_shows_progress_and_fails_with_the_round(monkeypatch):
    """Against a mock service: a running round shows a bar; --wait follows it to 'failed'
    and exits 1."""
    import httpx

    states = iter(["running", "running", "failed"])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(states, "failed")
        body = {"id": "r1", "market_id": "m", "status": status, "progress": 0.4}
        return httpx.Response(200, json=body | {"message": f"{status} here"})

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(
            url, token, transport=httpx.MockTransport(handler)
        ),
    )
    monkeypatch.setattr("coopml.service.client.time.sleep", lambda s: None)
    runner = CliRunner()
    first = runner.invoke(app, ["client", "status", "r1", "--token", "t"])
    assert first.exit_code == 0 and "running (40%)" in first.stdout and "━" in first.stdout
    waited = runner.invoke(app, ["client", "status", "r1", "--wait", "--token", "t"])
    assert waited.exit_code == 1 and "failed here" in waited.stdout


def test_connection_options_before_or_after_the_command(monkeypatch):
    """--url/--token/--json are options of the group; after the command's name they win;
    the environment fills in what neither gives."""
    import httpx

    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.host, request.headers.get("authorization", "")))
        return httpx.Response(
            200, json={"role": "operator", "party_id": None, "market_id": None, "name": None}
        )

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(
            url, token, transport=httpx.MockTransport(handler)
        ),
    )
    runner = CliRunner()
    env = {"COOPML_URL": "http://env.test", "COOPML_TOKEN": "env-token"}
    cases = [
        (["me"], ("env.test", "env-token")),
        (["--url", "http://group.test", "me"], ("group.test", "env-token")),
        (["--token", "group-token", "me"], ("env.test", "group-token")),
        (
            ["--url", "http://group.test", "me", "--url", "http://cmd.test"],
            ("cmd.test", "env-token"),
        ),
        (["--token", "group-token", "me", "--token", "cmd-token"], ("env.test", "cmd-token")),
    ]
    for args, (host, token) in cases:
        seen.clear()
        result = runner.invoke(app, ["client", *args], env=env)
        assert result.exit_code == 0, (args, result.output)
        assert seen == [(host, f"Bearer {token}")], args
        assert result.stdout.strip() == "operator"
    for args in (["--json", "me"], ["me", "--json"], ["--json", "me", "--json"]):
        result = runner.invoke(app, ["client", *args], env=env)
        assert result.exit_code == 0 and json.loads(result.stdout)["role"] == "operator", args
    seen.clear()
    result = runner.invoke(app, ["client", "--url", "http://group.test", "health", "--json"])
    assert result.exit_code == 0 and seen[0][0] == "group.test"


def test_group_json_is_refused_by_a_command_without_a_json_answer(run):
    result = run("--json", "delete-dataset", "d1", ok=False)
    assert result.exit_code == 2 and "delete-dataset` has no JSON answer" in result.output
    result = run("delete-dataset", "d1", "--json", ok=False)
    assert result.exit_code == 2 and "No such option" in result.output
