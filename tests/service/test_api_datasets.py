"""Datasets under the market's rules (issue 13): the schema (declared or fixed by the
first upload, checked value by value), deletion and replacement, identical re-uploads,
duplicate rows within a party, rounds failing on one party's data, quotas, the request
rate limit, hostile file names, strict numeric fields and clear messages."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    SECRET,
    breast_cancer_csvs,
    make_market_with_parties,
    run_jobs,
    run_round_to_completion,
)

from coopml.service import Settings, create_app

OP = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
GOOD = b"a,b,label\n1,0.5,0\n2,1.5,1\n3,2.5,0\n"


def _market(client, **body: Any) -> str:
    r = client.post(
        f"{API}/markets", json={"name": "m", "task": "classification", **body}, headers=OP
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _party(client, market_id: str, name: str) -> dict[str, str]:
    r = client.post(f"{API}/markets/{market_id}/parties", json={"name": name}, headers=OP)
    assert r.status_code == 201, r.text
    return {"id": r.json()["id"], "Authorization": f"Bearer {r.json()['token']}"}


def _auth(party: dict[str, str]) -> dict[str, str]:
    return {"Authorization": party["Authorization"]}


def _upload(client, market_id, party, content, filename="d.csv", params=None, **data):
    fields = {"role": "train", "target": "label", **data}
    return client.post(
        f"{API}/markets/{market_id}/datasets",
        files={"file": (filename, content, "text/csv")},
        data=fields,
        params=params,
        headers=_auth(party),
    )


def _error(response) -> dict[str, Any]:
    return dict(response.json()["error"])


def _blob_path(client, dataset_id: str) -> Path:
    from coopml.service.storage.models import Dataset

    ctx = client.app.state.service
    with ctx.db.session() as s:
        ds = s.get(Dataset, dataset_id)
        assert ds is not None
        return Path(ctx.blobs.path(ds.blob))


def _app(tmp_path: Path, **settings: Any):
    return create_app(
        Settings(
            tmp_path / "svc",
            secret_key=SECRET,
            operator_token=OPERATOR_TOKEN,
            embedded_worker=False,
            **settings,
        )
    )


# ----------------------------------------------------------------------------- schema
def test_mixed_label_types_are_refused_naming_row_and_column(client):
    market = _market(client)
    alice = _party(client, market, "alice")
    r = _upload(client, market, alice, b"a,b,label\n1,2,0\n3,4,1\n5,6,yes\n7,8,0\n")
    assert r.status_code == 422, r.text
    message = _error(r)["message"]
    assert "'label'" in message and "data row 3" in message and "'yes'" in message
    # once the market's labels are integers, a later file with one 'yes' is refused too
    assert _upload(client, market, alice, GOOD).status_code == 201
    bob = _party(client, market, "bob")
    r = _upload(client, market, bob, b"a,b,label\n1,2.5,0\n3,4.5,1\n5,6.5,yes\n")
    assert r.status_code == 422 and _error(r)["code"] == "schema_mismatch", r.text
    message = _error(r)["message"]
    assert "'label'" in message and "data row 3" in message and "'yes'" in message
    assert "integers" in message
    listed = client.get(f"{API}/markets/{market}/datasets", headers=OP).json()
    assert listed["total"] == 1


def test_first_upload_fixes_feature_names_and_types(client):
    market = _market(client)
    alice = _party(client, market, "alice")
    assert _upload(client, market, alice, GOOD).status_code == 201
    schema = client.get(f"{API}/markets/{market}", headers=OP).json()["schema"]
    assert schema["origin"] == "first_upload" and schema["classes"] is None
    assert schema["label_type"] == "integer"
    assert schema["features"] == [
        {"name": "a", "type": "integer"},
        {"name": "b", "type": "number"},
    ]
    # a non-integer value in the integer column: row, column and value named
    r = _upload(client, market, alice, b"a,b,label\n1,0.5,0\n2,1.5,1\n2.5,0.1,1\n")
    assert r.status_code == 422 and _error(r)["code"] == "schema_mismatch"
    message = _error(r)["message"]
    assert "'a'" in message and "data row 3" in message and "2.5" in message
    # a missing and an unexpected column
    r = _upload(client, market, alice, b"a,c,label\n1,0.5,0\n2,1.5,1\n")
    assert r.status_code == 422 and _error(r)["code"] == "schema_mismatch"
    assert "missing feature columns ['b']" in _error(r)["message"]
    assert "unexpected columns ['c']" in _error(r)["message"]
    # columns in another order, integers in the number column: fine
    assert _upload(client, market, alice, b"b,label,a\n1,0,4\n2,1,5\n").status_code == 201


def test_operator_declares_the_schema(client):
    schema = {
        "target": "label",
        "label_type": "integer",
        "classes": [0, 1],
        "features": [{"name": "a", "type": "integer"}, {"name": "b", "type": "number"}],
    }
    market = _market(client, schema=schema)
    shown = client.get(f"{API}/markets/{market}", headers=OP).json()["schema"]
    assert shown["origin"] == "declared" and shown["classes"] == [0, 1]
    alice = _party(client, market, "alice")
    r = _upload(client, market, alice, b"a,b,label\n1,0.5,0\n2,1.5,2\n")
    assert r.status_code == 422 and _error(r)["code"] == "schema_mismatch"
    message = _error(r)["message"]
    assert "data row 2" in message and "classes [0, 1]" in message
    assert "declared by the operator" in message
    r = _upload(client, market, alice, b"a,b,label\n1.5,0.5,0\n2,1.5,1\n")
    assert r.status_code == 422 and "'a'" in _error(r)["message"]
    assert _upload(client, market, alice, b"b,a,label\n0.5,1,0\n1.5,2,1\n").status_code == 201
    # a declared schema stays when the market's datasets are all deleted
    (dataset,) = client.get(f"{API}/markets/{market}/datasets", headers=OP).json()["items"]
    assert client.delete(f"{API}/datasets/{dataset['id']}", headers=OP).status_code == 204
    assert client.get(f"{API}/markets/{market}", headers=OP).json()["schema"] == shown


@pytest.mark.parametrize(
    ("task", "schema", "words"),
    [
        (
            "classification",
            {"target": "y", "label_type": "integer", "features": [{"name": "y"}]},
            ["target", "feature"],
        ),
        (
            "classification",
            {
                "target": "y",
                "label_type": "string",
                "classes": ["a", 1],
                "features": [{"name": "x"}],
            },
            ["classes", "string"],
        ),
        (
            "regression",
            {"target": "y", "label_type": "number", "classes": [1, 2], "features": [{"name": "x"}]},
            ["regression", "classes"],
        ),
        (
            "classification",
            {"target": "y", "label_type": "integer", "features": [{"name": "x\u202e"}]},
            ["bidirectional"],
        ),
    ],
)
def test_bad_schema_declarations_are_refused(client, task, schema, words):
    r = client.post(
        f"{API}/markets", json={"name": "m", "task": task, "schema": schema}, headers=OP
    )
    assert r.status_code == 422 and _error(r)["code"] == "invalid_schema", r.text
    message = _error(r)["message"].lower()
    assert all(w in message for w in words), message


# ----------------------------------------------------------------------------- delete
def test_delete_dataset_owner_operator_not_others_blob_erased_and_audited(client):
    market = _market(client)
    alice, bob = _party(client, market, "alice"), _party(client, market, "bob")
    mine = _upload(client, market, alice, GOOD).json()
    other = _upload(client, market, alice, GOOD + b"4,3.5,1\n").json()
    path = _blob_path(client, mine["id"])
    assert path.exists()
    r = client.delete(f"{API}/datasets/{mine['id']}", headers=_auth(bob))
    assert r.status_code == 404  # another party: its existence is not revealed
    assert path.exists()
    r = client.delete(f"{API}/datasets/{mine['id']}", headers=_auth(alice))
    assert r.status_code == 204 and r.content == b""
    assert not path.exists()
    assert client.get(f"{API}/datasets/{mine['id']}", headers=_auth(alice)).status_code == 404
    assert client.delete(f"{API}/datasets/{mine['id']}", headers=_auth(alice)).status_code == 404
    # the operator may delete any dataset
    other_path = _blob_path(client, other["id"])
    assert client.delete(f"{API}/datasets/{other['id']}", headers=OP).status_code == 204
    assert not other_path.exists()
    log = client.get(f"{API}/audit-log", params={"limit": 500}, headers=_auth(alice)).json()
    deleted = [e for e in log["items"] if e["action"] == "dataset_deleted"]
    assert {e["item_id"] for e in deleted} == {mine["id"], other["id"]}
    assert {e["actor"] for e in deleted} == {"operator", f"party:{alice['id']}"}
    assert client.get(f"{API}/markets/{market}/datasets", headers=OP).json()["total"] == 0
    # the inferred schema went with the last dataset: another one may be uploaded now
    assert client.get(f"{API}/markets/{market}", headers=OP).json()["schema"] is None
    assert _upload(client, market, bob, b"x,label\n1.5,a\n2.5,b\n").status_code == 201


def test_a_shared_blob_is_erased_with_its_last_reference(client):
    market = _market(client)
    alice, bob = _party(client, market, "alice"), _party(client, market, "bob")
    a = _upload(client, market, alice, GOOD).json()
    b = _upload(client, market, bob, GOOD).json()  # same bytes, another party: allowed
    path = _blob_path(client, a["id"])
    assert path == _blob_path(client, b["id"])
    assert client.delete(f"{API}/datasets/{a['id']}", headers=_auth(alice)).status_code == 204
    assert path.exists()
    assert client.get(f"{API}/datasets/{b['id']}/content", headers=_auth(bob)).content == GOOD
    assert client.delete(f"{API}/datasets/{b['id']}", headers=_auth(bob)).status_code == 204
    assert not path.exists()


def test_a_dataset_read_by_a_queued_round_cannot_be_deleted_yet(client, market):
    party = market.parties[0]
    dataset_id = market.datasets[party.id][0]
    body = {"learner": {"name": "gaussian_nb", "params": {}}, "payment_rule": "shapley"}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=OP)
    assert r.status_code == 202, r.text
    r = client.delete(f"{API}/datasets/{dataset_id}", headers=party.headers)
    assert r.status_code == 409 and _error(r)["code"] == "dataset_in_use"
    assert int(r.headers["Retry-After"]) > 0
    run_jobs(client)
    assert client.delete(f"{API}/datasets/{dataset_id}", headers=party.headers).status_code == 204


def test_replace_a_dataset(client):
    market = _market(client)
    alice = _party(client, market, "alice")
    old = _upload(client, market, alice, GOOD).json()
    old_path = _blob_path(client, old["id"])
    new_bytes = GOOD + b"4,3.5,1\n"
    r = _upload(client, market, alice, new_bytes, params={"replaces": old["id"]})
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] != old["id"] and new["n_rows"] == 4
    items = client.get(f"{API}/markets/{market}/datasets", headers=_auth(alice)).json()["items"]
    assert [d["id"] for d in items] == [new["id"]]
    assert not old_path.exists()
    log = client.get(f"{API}/audit-log", params={"limit": 500}, headers=_auth(alice)).json()
    assert any(
        e["action"] == "dataset_replaced" and e["item_id"] == old["id"] for e in log["items"]
    )
    # only one's own datasets can be replaced
    bob = _party(client, market, "bob")
    r = _upload(client, market, bob, GOOD, params={"replaces": new["id"]})
    assert r.status_code == 404


def test_cli_delete_dataset(client, monkeypatch):
    from typer.testing import CliRunner

    import coopml.cli.client as cli_client
    from coopml.cli import app
    from coopml.service.client import CoopmlClient

    market = _market(client)
    alice = _party(client, market, "alice")
    dataset = _upload(client, market, alice, GOOD).json()
    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    token = alice["Authorization"].split()[1]
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": token}
    result = CliRunner().invoke(app, ["client", "delete-dataset", dataset["id"]], env=env)
    assert result.exit_code == 0, result.output
    assert f"dataset {dataset['id']} deleted" in result.output
    result = CliRunner().invoke(app, ["client", "delete-dataset", dataset["id"]], env=env)
    assert result.exit_code == 1 and "not found" in result.output


# ----------------------------------------------------------------------------- duplicates
def test_identical_reupload_is_refused(client):
    market = _market(client)
    carol = _party(client, market, "carol")
    first = _upload(client, market, carol, GOOD).json()
    r = _upload(client, market, carol, GOOD, filename="again.csv")
    assert r.status_code == 409, r.text
    error = _error(r)
    assert error["code"] == "duplicate_dataset" and first["id"] in error["message"]
    # the same file in the other role (e.g. validating on it) is a different use
    assert _upload(client, market, carol, GOOD, role="validation").status_code == 201
    assert client.get(f"{API}/markets/{market}/datasets", headers=OP).json()["total"] == 2


def _reversed_rows(csv: bytes) -> bytes:
    frame = pd.read_csv(io.BytesIO(csv))
    return frame.iloc[::-1].to_csv(index=False).encode()


def test_duplicate_rows_within_a_party_do_not_raise_its_payout(client):
    """A party that uploads its training rows twice (in two different files) is paid as
    if it had uploaded them once; the audit reports the dropped rows."""
    names = ["party_0", "party_1", "party_2"]
    once = make_market_with_parties(client, 3, names=names)
    twice = make_market_with_parties(client, 3, names=names)
    carol = twice.parties[2]
    copy = _reversed_rows(breast_cancer_csvs(3)[2]["train"])
    r = client.post(
        f"{API}/markets/{twice.id}/datasets",
        files={"file": ("copy.csv", copy, "text/csv")},
        data={"role": "train", "target": "label"},
        headers=carol.headers,
    )
    assert r.status_code == 201, r.text
    n_copied = r.json()["n_rows"]
    payouts = []
    for market in (once, twice):
        rnd = run_round_to_completion(client, market.id, duplicates="report")
        lines = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OP).json()["lines"]
        payouts.append({line["name"]: line["payout"] for line in lines})
        audit = client.get(f"{API}/rounds/{rnd['id']}/audit", headers=OP).json()
    assert payouts[1] == pytest.approx(payouts[0], abs=1e-12)
    duplicates = audit["duplicates"]
    assert duplicates["flagged"] is True
    assert duplicates["dropped_within_party"] == [
        {
            "party": "party_2",
            "action": "dropped_own_duplicates",
            "rows_dropped": n_copied,
            "rows_kept": n_copied,
        }
    ]


# ----------------------------------------------------------------------------- failures
def _legacy_dataset(client, market_id: str, party_id: str, content: bytes) -> str:
    """A dataset stored as uploads were before the market's rules (no checks)."""
    from coopml.service.storage.models import Dataset

    ctx = client.app.state.service
    with ctx.db.session() as s:
        ds = Dataset(
            market_id=market_id,
            party_id=party_id,
            name="old_upload.csv",
            role="train",
            format="csv",
            n_rows=content.count(b"\n") - 1,
            n_features=30,
            columns=pd.read_csv(io.BytesIO(content)).columns.tolist(),
            target="label",
            sha256=hashlib.sha256(content).hexdigest(),
            blob=ctx.blobs.put(content),
            size_bytes=len(content),
        )
        s.add(ds)
        s.flush()
        return str(ds.id)


def _forget_schema(client, market_id: str) -> None:
    """As if the market predated stored schemas (revision 0005)."""
    from coopml.service.storage.models import Market

    with client.app.state.service.db.session() as s:
        market = s.get(Market, market_id)
        assert market is not None
        market.data_schema = None


@pytest.mark.parametrize("stored_schema", [True, False])
def test_a_failing_round_tells_only_the_responsible_party(client, market, stored_schema):
    alice, bob, _ = market.parties
    frame = pd.read_csv(io.BytesIO(breast_cancer_csvs(3)[1]["train"]))
    frame["label"] = frame["label"].astype(object)
    frame.loc[5, "label"] = "yes"
    bad = _legacy_dataset(client, market.id, bob.id, frame.to_csv(index=False).encode())
    if not stored_schema:
        _forget_schema(client, market.id)
    body = {"learner": {"name": "gaussian_nb", "params": {}}, "payment_rule": "shapley"}
    rnd = client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=OP).json()
    run_jobs(client)
    seen = {}
    for who, headers in (("operator", OP), ("alice", alice.headers), ("bob", bob.headers)):
        state = client.get(f"{API}/rounds/{rnd['id']}", headers=headers).json()
        assert state["status"] == "failed"
        seen[who] = state["message"]
        listed = client.get(f"{API}/markets/{market.id}/rounds", headers=headers).json()
        assert listed["items"][0]["message"] == state["message"]
    assert bad in seen["bob"] and "data row 6" in seen["bob"] and "'yes'" in seen["bob"]
    assert "your dataset" in seen["bob"] and "Mix of label" not in seen["bob"]
    assert seen["alice"] == "failed (the operator sees the details)"
    assert bad not in seen["alice"] and bob.name not in seen["alice"]
    assert bad in seen["operator"] and bob.id in seen["operator"]
    # the dashboard shows each viewer the same as the API
    for who, token in (("alice", alice.token), ("bob", bob.token)):
        client.cookies.clear()
        assert client.post("/login", data={"token": token}, follow_redirects=False).is_redirect
        pages = client.get(f"/ui/rounds/{rnd['id']}").text
        pages += client.get(f"/ui/markets/{market.id}").text
        assert (bad in pages) is (who == "bob"), who
        assert bob.id not in pages
    client.cookies.clear()
    # bob deletes it; the market works again
    assert client.delete(f"{API}/datasets/{bad}", headers=bob.headers).status_code == 204
    run_round_to_completion(client, market.id)


def test_a_market_from_before_schemas_takes_its_first_datasets(client):
    market = _market(client)
    alice = _party(client, market, "alice")
    assert _upload(client, market, alice, GOOD).status_code == 201
    _forget_schema(client, market)
    r = _upload(client, market, alice, b"a,b,label\n1,0.5,0\n2,1.5,yes\n")
    assert r.status_code == 422 and _error(r)["code"] == "schema_mismatch", r.text
    assert "'yes'" in _error(r)["message"]
    assert client.get(f"{API}/markets/{market}", headers=OP).json()["schema"] is None
    assert _upload(client, market, alice, GOOD + b"4,3.5,1\n").status_code == 201
    schema = client.get(f"{API}/markets/{market}", headers=OP).json()["schema"]
    assert schema["label_type"] == "integer" and schema["origin"] == "first_upload"


# ----------------------------------------------------------------------------- quotas
def test_dataset_and_byte_quotas(client):
    market = _market(client, quotas={"max_datasets_per_party": 2, "max_bytes_per_party": 200})
    assert client.get(f"{API}/markets/{market}", headers=OP).json()["quotas"] == {
        "max_datasets_per_party": 2,
        "max_bytes_per_party": 200,
    }
    alice = _party(client, market, "alice")
    assert _upload(client, market, alice, GOOD).status_code == 201  # 34 bytes
    big = b"a,b,label\n" + b"".join(f"{i},{i}.5,{i % 2}\n".encode() for i in range(30))
    r = _upload(client, market, alice, big)
    assert r.status_code == 413 and _error(r)["code"] == "payload_too_large"
    assert "200 bytes" in _error(r)["message"]
    fits = b"a,b,label\n" + b"".join(f"{i},{i}.5,{i % 2}\n".encode() for i in range(20))
    assert len(fits) <= 200 < len(fits) + len(GOOD)  # fits alone, not beside GOOD
    r = _upload(client, market, alice, fits)
    assert r.status_code == 429 and _error(r)["code"] == "quota_exceeded", r.text
    assert "Retry-After" not in r.headers  # waiting does not help: delete data first
    assert "max_bytes_per_party" in _error(r)["message"]
    assert _upload(client, market, alice, GOOD + b"4,3.5,1\n").status_code == 201
    r = _upload(client, market, alice, GOOD + b"5,4.5,0\n")
    assert r.status_code == 429 and "max_datasets_per_party=2" in _error(r)["message"]
    assert "Retry-After" not in r.headers
    # at the limit, a replacement still works
    first = client.get(f"{API}/markets/{market}/datasets", headers=OP).json()["items"][0]
    r = _upload(client, market, alice, GOOD + b"5,4.5,0\n", params={"replaces": first["id"]})
    assert r.status_code == 201, r.text
    # another party has its own quota
    bob = _party(client, market, "bob")
    assert _upload(client, market, bob, GOOD).status_code == 201


def test_service_default_quotas(tmp_path):
    app = _app(tmp_path, max_datasets_per_party=1)
    with TestClient(app) as client:
        market = _market(client)
        alice = _party(client, market, "alice")
        assert _upload(client, market, alice, GOOD).status_code == 201
        r = _upload(client, market, alice, GOOD + b"4,3.5,1\n")
        assert r.status_code == 429 and "max_datasets_per_party=1" in _error(r)["message"]
    app.state.service.db.dispose()


def test_rate_limit_per_token(tmp_path):
    app = _app(tmp_path, rate_limit_per_second=0.5, rate_limit_burst=3)
    with TestClient(app) as client:
        for _ in range(3):
            assert client.get(f"{API}/me", headers=OP).status_code == 200
        r = client.get(f"{API}/me", headers=OP)
        assert r.status_code == 429, r.text
        assert _error(r)["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["x-request-id"] == _error(r)["request_id"]
        other = {"Authorization": "Bearer another-token"}
        assert client.get(f"{API}/me", headers=other).status_code == 401  # its own bucket
    app.state.service.db.dispose()


def test_uploads_wait_for_a_slot_then_429(client, monkeypatch):
    from coopml.service.api.routes import datasets as routes

    market = _market(client)
    alice = _party(client, market, "alice")
    monkeypatch.setattr(routes, "SLOT_WAIT_SECONDS", 0.2)
    slots = routes._Slots(1)
    slots.used = 1  # one upload is being received
    client.app.state.upload_slots = slots
    r = _upload(client, market, alice, GOOD)
    assert r.status_code == 429 and _error(r)["code"] == "too_many_uploads"
    assert r.headers["Retry-After"] == "2"
    slots.release()
    assert _upload(client, market, alice, GOOD).status_code == 201


# ----------------------------------------------------------------------------- names
@pytest.mark.parametrize(
    ("filename", "name"),
    [("invoice\u202egnp.csv", None), ("data.csv", "report\u2067.png"), ("a\u200f.csv", None)],
)
def test_bidi_controls_in_names_are_refused(client, filename, name):
    market = _market(client)
    alice = _party(client, market, "alice")
    extra = {} if name is None else {"name": name}
    r = _upload(client, market, alice, GOOD, filename=filename, **extra)
    assert r.status_code == 422, r.text
    message = _error(r)["message"]
    assert "bidirectional" in message
    shown = ascii(name if name is not None else filename)
    assert shown in message  # the name, escaped: the message itself cannot be disguised
    assert client.get(f"{API}/markets/{market}/datasets", headers=OP).json()["total"] == 0


# ----------------------------------------------------------------------------- strictness
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("rounds", {"learner": {"name": "gaussian_nb"}, "fee_price": "1"}, "fee_price"),
        ("rounds", {"learner": {"name": "gaussian_nb"}, "random_state": "3"}, "random_state"),
        ("rounds", {"learner": {"name": "gaussian_nb"}, "random_state": 3.0}, "random_state"),
        ("rounds", {"learner": {"name": "gaussian_nb"}, "fee_price": True}, "fee_price"),
    ],
)
def test_numeric_fields_are_strict(client, market, path, body, field):
    url = f"{API}/markets/{market.id}/{path}" if path else f"{API}/markets"
    r = client.post(url, json=body, headers=OP)
    assert r.status_code == 422, r.text
    assert field in _error(r)["message"]


def test_quotas_are_strict_integers(client):
    body = {"name": "m", "task": "classification"}
    r = client.post(
        f"{API}/markets", json={**body, "quotas": {"max_bytes_per_party": 9}}, headers=OP
    )
    assert r.status_code == 201 and r.json()["quotas"]["max_bytes_per_party"] == 9
    for bad in ("9", 9.0, True):
        quotas = {"max_bytes_per_party": bad}
        r = client.post(f"{API}/markets", json={**body, "quotas": quotas}, headers=OP)
        assert r.status_code == 422 and "max_bytes_per_party" in _error(r)["message"]


def test_predict_rows_are_strict_numbers(client, market):
    rnd = run_round_to_completion(client, market.id)
    party = market.parties[0]
    r = client.post(
        f"{API}/rounds/{rnd['id']}/predict", json={"rows": [["1"] * 30]}, headers=party.headers
    )
    assert r.status_code == 422 and "rows" in _error(r)["message"]


def test_text_in_a_numeric_column_cites_the_offending_value(client):
    market = _market(client)
    alice = _party(client, market, "alice")
    r = _upload(client, market, alice, b"a,b,label\n1,2,0\n3.5,4,1\n5,oops,0\n")
    assert r.status_code == 422
    message = _error(r)["message"]
    assert "'b'" in message and "'oops'" in message and "data row 3" in message
    assert "'2'" not in message and "'4'" not in message


def test_malformed_json_names_line_and_column(client):
    r = client.post(
        f"{API}/markets",
        content=b'{"name": "m",\n "task": }',
        headers={**OP, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    message = _error(r)["message"]
    assert "malformed JSON at line 2, column 10" in message, message
    assert "body field" not in message and "'13'" not in message


def test_an_upload_creates_no_temporary_file(client, monkeypatch):
    """The plaintext stays in memory until it is encrypted: no temporary file of any
    kind is created while an upload is received, checked and stored."""
    import tempfile

    made: list[str] = []
    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        original = getattr(tempfile, name)

        def spy(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any):
            made.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, spy)
    monkeypatch.setattr("starlette.formparsers.SpooledTemporaryFile", tempfile.SpooledTemporaryFile)
    market = _market(client)
    alice = _party(client, market, "alice")
    rows = "".join(f"{i},{i % 7}.25,{i % 2}\n" for i in range(200_000))
    content = f"a,b,label\n{rows}".encode()
    assert _upload(client, market, alice, content).status_code == 201
    assert made == []
    data_dir = Path(client.app.state.service.settings.data_dir)
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert b"199999,5.25,1" not in path.read_bytes(), path
