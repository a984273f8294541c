"""End to end over the HTTP API on SQLite: a three-party round, from market creation to
predictions, with the contract's error shapes, request ids and pagination."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skops.io as sio
from tests.service.conftest import (
    API,
    assert_ledger_balanced,
    breast_cancer_csvs,
    make_market_with_parties,
    run_round_to_completion,
)

from coopml.market import Settlement


def test_health_and_me(client, operator_headers):
    r = client.get(f"{API}/health")
    assert r.json() == {"status": "ok", "database": "sqlite"}
    assert r.headers["x-request-id"]
    r = client.get(f"{API}/me", headers={**operator_headers, "X-Request-ID": "abc-123"})
    assert r.json()["role"] == "operator"
    assert r.headers["x-request-id"] == "abc-123"


def test_errors_have_one_shape(client, operator_headers):
    r = client.get(f"{API}/markets", headers={"X-Request-ID": "req-1"})
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "code": "unauthenticated",
            "message": r.json()["error"]["message"],
            "request_id": "req-1",
        }
    }
    r = client.post(
        f"{API}/markets", json={"name": "m", "task": "ranking"}, headers=operator_headers
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "validation_error" and "task" in error["message"]
    assert "ranking" in error["message"]
    r = client.get(f"{API}/markets/{'0' * 32}", headers=operator_headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.get(f"{API}/markets/not-an-id", headers=operator_headers)
    assert r.status_code == 404


def test_pagination(client, operator_headers):
    for i in range(5):
        client.post(
            f"{API}/markets", json={"name": f"m{i}", "task": "regression"}, headers=operator_headers
        )
    r = client.get(f"{API}/markets", params={"limit": 2, "offset": 3}, headers=operator_headers)
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (5, 2, 3)
    assert [m["name"] for m in body["items"]] == ["m3", "m4"]
    r = client.get(f"{API}/markets", params={"limit": 501}, headers=operator_headers)
    assert r.status_code == 422


def test_three_party_round(client, operator_headers):
    # the model file is downloaded below: a policy that releases gaussian_nb's
    market = make_market_with_parties(client, 3, release_policy="aggregate_only")
    alice, bob = market.parties[0], market.parties[1]
    # parties see only themselves and their own datasets
    r = client.get(f"{API}/markets/{market.id}/parties", headers=alice.headers)
    assert [p["id"] for p in r.json()["items"]] == [alice.id]
    r = client.get(f"{API}/markets/{market.id}/datasets", headers=alice.headers)
    assert {d["party_id"] for d in r.json()["items"]} == {alice.id}
    r = client.get(f"{API}/markets/{market.id}/datasets", headers=operator_headers)
    assert r.json()["total"] == 6
    assert r.json()["items"][0]["n_features"] == 30

    rnd = run_round_to_completion(client, market.id, operator_headers)
    assert rnd["progress"] == 1.0 and rnd["finished_at"] is not None
    assert "_inputs" not in rnd["config"]
    assert rnd["config"]["learner"]["name"] == "gaussian_nb"
    assert_ledger_balanced(client, rnd["id"], operator_headers)

    r = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=operator_headers)
    s = r.json()
    assert len(s["lines"]) == 3 and s["verified"] is True
    # balance: payouts equal the charges (c · improvement, or 0 where a payment was
    # refunded; this round's pooled model is worse overall, see test_round_conventions)
    assert s["totals"]["payout"] == pytest.approx(s["totals"]["charge"], abs=1e-9)
    # every line reconciles with the ledger: fee = charge + fee_returned
    for line in s["lines"]:
        assert line["fee_returned"] == pytest.approx(line["fee"] - line["charge"], abs=1e-12)
    assert s["totals"]["fee"] == pytest.approx(
        s["totals"]["fee_returned"] + s["totals"]["payout"], abs=1e-9
    )
    ledger = client.get(f"{API}/rounds/{rnd['id']}/ledger", headers=operator_headers).json()
    returned = {e["party_id"]: e["amount"] for e in ledger["items"] if e["kind"] == "fee_returned"}
    for line in s["lines"]:
        assert returned[line["party_id"]] == pytest.approx(line["fee_returned"], abs=1e-12)
    r = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=alice.headers)
    lines = r.json()["lines"]
    assert [line["party_id"] for line in lines] == [alice.id]
    assert "fee_returned" in lines[0]
    assert r.json()["totals"] == {}

    r = client.get(f"{API}/rounds/{rnd['id']}/audit", headers=operator_headers)
    audit = r.json()
    assert audit["balance"]["balanced"] is True and audit["verification"]["ok"] is True
    assert audit["duplicates"] is not None
    assert client.get(f"{API}/rounds/{rnd['id']}/audit", headers=alice.headers).status_code == 403

    # the stored settlement record verifies on its own
    from coopml.service.storage.models import SettlementRow

    with client.app.state.service.db.session() as sess:
        record = sess.query(SettlementRow).one().record
    assert Settlement.from_dict(record).verify().ok

    # own model: a skops file that predicts like the predict endpoint
    r = client.get(f"{API}/rounds/{rnd['id']}/model", headers=alice.headers)
    assert r.status_code == 200
    model = sio.loads(r.content, trusted=sio.get_untrusted_types(data=r.content))
    import pandas as pd

    X = pd.read_csv(io.BytesIO(breast_cancer_csvs(3)[0]["validation"])).drop(columns="label")
    rows = X.to_numpy()[:5].tolist()
    r = client.post(f"{API}/rounds/{rnd['id']}/predict", json={"rows": rows}, headers=alice.headers)
    assert r.status_code == 200
    assert r.json()["predictions"] == model.predict(np.asarray(rows)).tolist()
    r = client.post(
        f"{API}/rounds/{rnd['id']}/predict", json={"rows": [[1.0, 2.0]]}, headers=alice.headers
    )
    assert r.status_code == 422 and "30 features" in r.json()["error"]["message"]
    assert (
        client.get(f"{API}/rounds/{rnd['id']}/model", headers=operator_headers).status_code == 403
    )

    # the audit log records model and prediction accesses; bob sees none of alice's
    r = client.get(f"{API}/audit-log", params={"limit": 500}, headers=alice.headers)
    actions = {e["action"] for e in r.json()["items"]}
    assert {"model_downloaded", "model_queried", "dataset_uploaded"} <= actions
    r = client.get(f"{API}/audit-log", params={"limit": 500}, headers=bob.headers)
    assert all(e["actor"] != f"party:{alice.id}" for e in r.json()["items"])
    r = client.get(f"{API}/audit-log", params={"limit": 500}, headers=operator_headers)
    assert "round_settled" in {e["action"] for e in r.json()["items"]}


def test_per_party_round_with_replication_audit(client, operator_headers):
    market = make_market_with_parties(client, 3)
    rnd = run_round_to_completion(
        client,
        market.id,
        operator_headers,
        tasks="per_party",
        payment_rule="ohrimenko",
        learner={"name": "gaussian_nb", "params": {"standardize": True}},
        replication_party="party_0",
    )
    assert_ledger_balanced(client, rnd["id"], operator_headers)
    audit = client.get(f"{API}/rounds/{rnd['id']}/audit", headers=operator_headers).json()
    assert audit["replication"]["party"] == "party_0"
    assert audit["replication"]["rows"]
    # a party never sees another party's name
    bob = market.parties[1]
    seen = client.get(f"{API}/rounds/{rnd['id']}", headers=bob.headers).json()
    assert seen["config"]["replication_party"] == "(another party)"
    line = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=bob.headers).json()
    assert line["lines"][0]["members"] in ([], ["party_1"])
    assert line["lines"][0]["n_members"] >= 1
    everything = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=operator_headers)
    assert all(x["members"] for x in everything.json()["lines"])


def test_dataset_content_is_owner_only_and_audited(client, operator_headers):
    market = make_market_with_parties(client, 2, validation=False)
    alice, bob = market.parties
    dataset_id = market.datasets[alice.id][0]
    r = client.get(f"{API}/datasets/{dataset_id}/content", headers=alice.headers)
    assert r.status_code == 200 and r.content == breast_cancer_csvs(2)[0]["train"]
    assert (
        client.get(f"{API}/datasets/{dataset_id}/content", headers=bob.headers).status_code == 404
    )
    assert client.get(f"{API}/datasets/{dataset_id}", headers=bob.headers).status_code == 404
    r = client.get(f"{API}/datasets/{dataset_id}/content", headers=operator_headers)
    assert r.status_code == 403
    r = client.get(f"{API}/audit-log", params={"item_id": dataset_id}, headers=operator_headers)
    assert "dataset_downloaded" in {e["action"] for e in r.json()["items"]}


def test_round_preconditions(client, operator_headers):
    market = make_market_with_parties(client, 2, validation=False)
    body = {"learner": {"name": "gaussian_nb"}, "payment_rule": "shapley", "fee_price": 1.0}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=operator_headers)
    assert r.status_code == 409 and "validation" in r.json()["error"]["message"]
    bad = {**body, "learner": {"name": "knn", "params": {"n_neighbors": 0}}}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=bad, headers=operator_headers)
    assert r.status_code == 422 and "n_neighbors" in r.json()["error"]["message"]
    bad = {**body, "learner": {"name": "svm"}}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=bad, headers=operator_headers)
    assert r.status_code == 422 and "svm" in r.json()["error"]["message"]
    bad = {**body, "payment_rule": "auction"}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=bad, headers=operator_headers)
    assert r.status_code == 422 and "auction" in r.json()["error"]["message"]
    r = client.post(
        f"{API}/markets/{market.id}/rounds", json=body, headers=market.parties[0].headers
    )
    assert r.status_code == 403


def test_json_bodies_are_bounded(tmp_path, operator_headers):
    from fastapi.testclient import TestClient
    from tests.service.conftest import OPERATOR_TOKEN

    from coopml.service import Settings, create_app

    settings = Settings(tmp_path / "d", operator_token=OPERATOR_TOKEN, max_request_bytes=200)
    app = create_app(settings.with_(embedded_worker=False))
    with TestClient(app) as client:
        body = {"name": "x" * 150, "task": "regression", "description": "y" * 100}
        r = client.post(f"{API}/markets", json=body, headers=operator_headers)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert r.headers["x-request-id"] == r.json()["error"]["request_id"]

        def chunks():  # no Content-Length: cut off while streaming
            yield b'{"name": "' + b"x" * 150
            yield b'", "task": "regression", "description": "' + b"y" * 100 + b'"}'

        r = client.post(
            f"{API}/markets",
            content=chunks(),
            headers={**operator_headers, "content-type": "application/json"},
        )
        assert r.status_code == 413
        r = client.post(
            f"{API}/markets", json={"name": "m", "task": "regression"}, headers=operator_headers
        )
        assert r.status_code == 201
    app.state.service.db.dispose()


def _upload(client, market_id, headers, content, role):
    r = client.post(
        f"{API}/markets/{market_id}/datasets",
        files={"file": (f"{role}.csv", content, "text/csv")},
        data={"role": role, "target": "y"},
        headers=headers,
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("task", "learner"),
    [("regression", "ridge"), ("classification", "decision_tree")],
)
def test_regression_and_string_labels(client, operator_headers, task, learner):
    import pandas as pd

    rng = np.random.default_rng(0)
    m = client.post(f"{API}/markets", json={"name": "m", "task": task}, headers=operator_headers)
    market_id = m.json()["id"]
    for i in range(3):
        p = client.post(
            f"{API}/markets/{market_id}/parties", json={"name": f"p{i}"}, headers=operator_headers
        ).json()
        headers = {"Authorization": f"Bearer {p['token']}"}
        for role in ("train", "validation"):
            X = rng.normal(size=(40, 3))
            signal = X @ np.array([1.0, -2.0, 0.5])
            y = signal + 0.1 * rng.normal(size=40)
            if task == "classification":
                y = np.where(signal > 0, "yes", "no")
            frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
            _upload(client, market_id, headers, frame.to_csv(index=False).encode(), role)
    rnd = run_round_to_completion(
        client,
        market_id,
        operator_headers,
        learner={"name": learner, "params": {}},
        tasks="per_party",
    )
    assert_ledger_balanced(client, rnd["id"], operator_headers)
    r = client.post(
        f"{API}/rounds/{rnd['id']}/predict", json={"rows": [[1.0, 0.0, 0.0]]}, headers=headers
    )
    prediction = r.json()["predictions"][0]
    assert isinstance(prediction, float) if task == "regression" else prediction == "yes"
