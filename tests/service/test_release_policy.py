"""Model release policy and prediction quota of a market: set at creation, shown to every
party (API, dashboard, ``coopml client``), enforced on downloads and predictions,
audited; stored by migration 0002 (existing markets become ``query_only``)."""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    SECRET,
    breast_cancer_csvs,
    make_market_with_parties,
    run_round_to_completion,
)
from typer.testing import CliRunner

from coopml.service import Settings, create_app
from coopml.service.client import CoopmlClient, ServiceError

OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _rows(n: int) -> list[list[float]]:
    frame = pd.read_csv(io.BytesIO(breast_cancer_csvs(3)[0]["validation"]))
    X = frame.drop(columns="label").to_numpy()
    return np.resize(X, (n, X.shape[1])).tolist()


def _audit(client: TestClient, headers: dict[str, str], **params) -> list[dict]:
    r = client.get(f"{API}/audit-log", params={"limit": 500, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_the_default_is_query_only_and_every_party_sees_the_policy(client):
    market = make_market_with_parties(client, 2)
    r = client.get(f"{API}/markets/{market.id}", headers=OP)
    assert r.json()["release_policy"] == "query_only"
    assert (r.json()["predict_quota"], r.json()["predict_window_seconds"]) == (10_000, 3600)
    for party in market.parties:
        shown = client.get(f"{API}/markets/{market.id}", headers=party.headers).json()
        assert shown["release_policy"] == "query_only" and shown["predict_quota"] == 10_000
        listed = client.get(f"{API}/markets", headers=party.headers).json()["items"]
        assert [m["release_policy"] for m in listed] == ["query_only"]
    r = client.post(
        f"{API}/markets",
        json={"name": "m", "task": "classification", "release_policy": "everything"},
        headers=OP,
    )
    assert r.status_code == 422 and "release_policy" in r.json()["error"]["message"]
    r = client.post(
        f"{API}/markets",
        json={"name": "m", "task": "classification", "predict_quota": 0},
        headers=OP,
    )
    assert r.status_code == 422 and "predict_quota" in r.json()["error"]["message"]


def test_the_service_default_quota_is_a_setting(tmp_path):
    settings = Settings(
        tmp_path / "d",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        predict_quota=25,
        predict_window_seconds=60,
    )
    with TestClient(create_app(settings)) as http:
        op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=http)
        default = op.create_market("a")
        own = op.create_market("b", predict_quota=7, predict_window_seconds=5)
    assert (default["predict_quota"], default["predict_window_seconds"]) == (25, 60)
    assert (own["predict_quota"], own["predict_window_seconds"]) == (7, 5)
    with pytest.raises(ValueError, match="predict_quota"):
        Settings(tmp_path / "e", predict_quota=0)


def test_query_only_refuses_the_model_file_but_answers_predictions(client):
    market = make_market_with_parties(client, 3)
    rnd = run_round_to_completion(client, market.id)
    alice = market.parties[0]
    r = client.get(f"{API}/rounds/{rnd['id']}/model", headers=alice.headers)
    assert r.status_code == 403
    error = r.json()["error"]
    assert error["code"] == "model_not_released"
    assert "'query_only'" in error["message"] and "predict" in error["message"]
    r = client.post(
        f"{API}/rounds/{rnd['id']}/predict", json={"rows": _rows(3)}, headers=alice.headers
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    actions = [e["action"] for e in _audit(client, alice.headers)]
    assert "model_download_refused" in actions and "model_downloaded" not in actions


def test_aggregate_only_releases_by_the_recorded_check(client):
    market = make_market_with_parties(client, 3, release_policy="aggregate_only")
    alice = market.parties[0]
    nb = run_round_to_completion(client, market.id)
    knn = run_round_to_completion(client, market.id, learner={"name": "knn", "params": {}})
    r = client.get(f"{API}/rounds/{nb['id']}/model", headers=alice.headers)
    assert r.status_code == 200 and r.content[:2] == b"PK"
    r = client.get(f"{API}/rounds/{knn['id']}/model", headers=alice.headers)
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "'aggregate_only'" in message and "_fit_X" in message
    for other in market.parties[1:]:
        assert other.name not in message and other.id not in message
    # the verdict is stored with the model when the round settles
    from coopml.service.storage.models import ModelArtifact

    with client.app.state.service.db.session() as s:
        stored = {
            (m.round_id, m.releasable)
            for m in s.query(ModelArtifact).filter(ModelArtifact.party_id == alice.id)
        }
    assert stored == {(nb["id"], True), (knn["id"], False)}


def test_full_is_an_audited_opt_in_shown_on_the_dashboard(client):
    market = make_market_with_parties(client, 2, release_policy="full")
    calm = make_market_with_parties(client, 2, release_policy="aggregate_only")
    entries = _audit(client, OP, item_id=market.id)
    assert {"market_created", "release_policy_full"} <= {e["action"] for e in entries}
    assert "release_policy_full" not in {e["action"] for e in _audit(client, OP, item_id=calm.id)}
    rnd = run_round_to_completion(client, market.id, learner={"name": "knn", "params": {}})
    bob = market.parties[1]
    r = client.get(f"{API}/rounds/{rnd['id']}/model", headers=bob.headers)
    assert r.status_code == 200  # 'full': even kNN, with the other party's rows
    for token in (OPERATOR_TOKEN, bob.token):
        client.cookies.clear()
        assert client.post("/login", data={"token": token}).status_code == 200
        page = client.get(f"/ui/markets/{market.id}").text
        assert 'id="release-policy"' in page and "policy-full" in page
        assert "other parties&#39; training rows" in page or "other parties' training" in page
        listing = client.get("/ui/markets").text
        assert "policy-full" in listing
    client.cookies.clear()


@pytest.fixture
def quota_round(client):
    """A settled round in a market allowing 10 rows per party every 2 seconds."""
    return _quota_round(client)


def _quota_round(client: TestClient) -> tuple[str, list[dict[str, str]]]:
    headers = OP
    r = client.post(
        f"{API}/markets",
        json={
            "name": "q",
            "task": "classification",
            "predict_quota": 10,
            "predict_window_seconds": 2,
        },
        headers=headers,
    )
    market_id = r.json()["id"]
    parties = []
    for i, files in enumerate(breast_cancer_csvs(2)):
        body = client.post(
            f"{API}/markets/{market_id}/parties", json={"name": f"p{i}"}, headers=headers
        ).json()
        auth = {"Authorization": f"Bearer {body['token']}"}
        for role in ("train", "validation"):
            client.post(
                f"{API}/markets/{market_id}/datasets",
                files={"file": (f"{role}.csv", files[role], "text/csv")},
                data={"role": role, "target": "label"},
                headers=auth,
            )
        parties.append(auth)
    rnd = run_round_to_completion(client, market_id)
    return rnd["id"], parties


def test_prediction_quota_answers_429_with_retry_after(client, quota_round):
    round_id, (alice, bob) = quota_round
    url = f"{API}/rounds/{round_id}/predict"
    assert client.post(url, json={"rows": _rows(6)}, headers=alice).status_code == 200
    r = client.post(url, json={"rows": _rows(6)}, headers=alice)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert "10 rows" in r.json()["error"]["message"]
    retry = int(r.headers["retry-after"])
    assert 1 <= retry <= 2
    assert client.post(url, json={"rows": _rows(4)}, headers=alice).status_code == 200
    assert client.post(url, json={"rows": _rows(1)}, headers=alice).status_code == 429
    assert client.post(url, json={"rows": _rows(10)}, headers=bob).status_code == 200  # his own
    r = client.post(url, json={"rows": _rows(11)}, headers=alice)
    assert r.status_code == 422 and "at most 10" in r.json()["error"]["message"]
    # every call is audited with its row count; refused calls do not count
    queried = [e["n_rows"] for e in _audit(client, alice) if e["action"] == "model_queried"]
    assert queried == [4, 6]
    time.sleep(retry + 0.1)  # the window slid past the first call
    assert client.post(url, json={"rows": _rows(6)}, headers=alice).status_code == 200


def test_concurrent_predictions_never_exceed_the_quota(client, quota_round):
    _race(client, *quota_round)


def test_concurrent_predictions_on_postgresql(pg_settings):
    app = create_app(pg_settings)
    try:
        with TestClient(app) as client:
            _race(client, *_quota_round(client))
    finally:
        app.state.service.db.dispose()


def _race(client: TestClient, round_id: str, parties: list[dict[str, str]]) -> None:
    """Eight concurrent 3-row calls against a 10-row quota: three pass."""
    alice = parties[0]
    url = f"{API}/rounds/{round_id}/predict"
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        r = client.post(url, json={"rows": _rows(3)}, headers=alice)
        with lock:
            statuses.append(r.status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 3 + [429] * 5, statuses


def test_the_client_reports_retry_after(client, quota_round):
    round_id, (alice, _bob) = quota_round
    party = CoopmlClient("http://testserver", alice["Authorization"].split()[1], http_client=client)
    party.predict(round_id, _rows(10))
    with pytest.raises(ServiceError) as exc:
        party.predict(round_id, _rows(1))
    assert exc.value.status == 429 and exc.value.retry_after is not None
    assert 1 <= exc.value.retry_after <= 2


def test_coopml_client_sets_and_shows_the_policy(client, monkeypatch):
    import coopml.cli.client as cli_client
    from coopml.cli import app

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": OPERATOR_TOKEN}
    runner = CliRunner()
    out = runner.invoke(
        app,
        ["client", "create-market", "clinics", "--release-policy", "full",
         "--predict-quota", "500", "--predict-window", "60"],
        env=env,
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "release policy: full" in out.output and "500 rows" in out.output
    listing = runner.invoke(app, ["client", "markets", "--json"], env=env)
    (market,) = json.loads(listing.output)["items"]
    assert market["release_policy"] == "full" and market["predict_quota"] == 500
    bad = runner.invoke(app, ["client", "create-market", "x", "--release-policy", "all"], env=env)
    assert bad.exit_code != 0 and "query_only" in bad.output


def test_migration_0002_makes_existing_markets_query_only(tmp_path: Path):
    from alembic import command
    from sqlalchemy import create_engine, text

    from coopml.service.storage.database import alembic_config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO markets (id, name, task, description, created_at) "
                "VALUES ('a' || hex(randomblob(15)), 'old', 'classification', '', "
                "CURRENT_TIMESTAMP)"
            )
        )
        command.upgrade(cfg, "0002")
        row = conn.execute(
            text("SELECT release_policy, predict_quota, predict_window_seconds FROM markets")
        ).one()
        assert tuple(row) == ("query_only", 10_000, 3600)
        conn.execute(
            text(
                "INSERT INTO prediction_queries (id, at, model_id, party_id, n_rows) "
                "VALUES ('q1', CURRENT_TIMESTAMP, 'm1', 'p1', 3)"
            )
        )
        for statement in (
            "DELETE FROM prediction_queries",
            "UPDATE prediction_queries SET n_rows = 0",
        ):
            with pytest.raises(Exception, match="append-only"):
                conn.execute(text(statement))
        command.downgrade(cfg, "0001")
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(markets)"))]
        assert "release_policy" not in columns
        conn.commit()
    engine.dispose()
