"""Dataset uploads: CSV and Parquet, the streamed size limit, and rejections that write
nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN, SECRET, breast_cancer_csvs

from coopml.service import Settings, create_app


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs").rglob("*") if p.is_file())


@pytest.fixture
def party(client, operator_headers):
    market = client.post(
        f"{API}/markets", json={"name": "m", "task": "classification"}, headers=operator_headers
    ).json()
    body = client.post(
        f"{API}/markets/{market['id']}/parties", json={"name": "alice"}, headers=operator_headers
    ).json()
    return market["id"], {"Authorization": f"Bearer {body['token']}"}


def _upload(client, market_id, headers, content, filename="d.csv", **data):
    fields = {"role": "train", "target": "label", **data}
    return client.post(
        f"{API}/markets/{market_id}/datasets",
        files={"file": (filename, content, "application/octet-stream")},
        data=fields,
        headers=headers,
    )


def test_parquet_and_csv_share_the_schema(client, party, settings):
    market_id, headers = party
    csv = breast_cancer_csvs(2)[0]["train"]
    frame = pd.read_csv(io.BytesIO(csv))
    buf = io.BytesIO()
    frame[frame.columns[::-1]].to_parquet(buf)  # same columns, another order
    r = _upload(client, market_id, headers, buf.getvalue(), "d.parquet", role="validation")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "parquet" and r.json()["n_rows"] == len(frame)
    r = _upload(client, market_id, headers, csv)
    assert r.status_code == 201 and r.json()["format"] == "csv"
    r = client.get(f"{API}/datasets/{r.json()['id']}/content", headers=headers)
    assert r.content == csv


@pytest.mark.parametrize(
    ("content", "fields", "status", "words"),
    [
        (b"a,b,label\n1,2,0\n3,x,1\n", {}, 422, ["'b'", "numeric"]),
        (b"a,b,label\n1,2,0\n3,,1\n", {}, 422, ["'b'", "row 2"]),
        (b"a,b,label\n1,2,0\n", {}, 422, ["2 data rows"]),
        (b"a,a,label\n1,2,0\n3,4,1\n", {}, 422, ["unique", "'a'"]),
        (b"a,b,y\n1,2,0\n3,4,1\n", {}, 422, ["'label'", "not in the file"]),
        (b"a,b,label\n1,2,0\n3,4,1\n", {"role": "test"}, 422, ["role", "'test'"]),
        (b"\xff\xfe\x00a", {}, 422, ["utf-8"]),
        (b"", {}, 422, ["empty"]),
    ],
)
def test_bad_uploads_write_nothing(client, party, settings, content, fields, status, words):
    market_id, headers = party
    before = _files(settings.data_dir)
    r = _upload(client, market_id, headers, content, **fields)
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"].lower()
    assert all(w.lower() in message for w in words), message
    assert _files(settings.data_dir) == before
    listed = client.get(f"{API}/markets/{market_id}/datasets", headers=headers).json()
    assert listed["total"] == 0


def test_schema_is_fixed_by_the_first_upload(client, party):
    market_id, headers = party
    assert _upload(client, market_id, headers, b"a,b,label\n1,2,0\n3,4,1\n").status_code == 201
    r = _upload(client, market_id, headers, b"a,c,label\n1,2,0\n3,4,1\n")
    assert r.status_code == 422 and r.json()["error"]["code"] == "schema_mismatch"


def test_size_limit_is_enforced_while_streaming(tmp_path):
    settings = Settings(
        tmp_path / "d",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        max_upload_bytes=1000,
        embedded_worker=False,
    )
    app = create_app(settings)
    op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with TestClient(app) as client:
        m = client.post(f"{API}/markets", json={"name": "m", "task": "regression"}, headers=op)
        p = client.post(f"{API}/markets/{m.json()['id']}/parties", json={"name": "a"}, headers=op)
        headers = {"Authorization": f"Bearer {p.json()['token']}"}
        small = b"a,label\n" + b"1.5,2.5\n" * 100  # 808 bytes
        big = b"a,label\n" + b"1.5,2.5\n" * 200  # 1608 bytes: over the file limit
        huge = b"a,label\n" + b"1.5,2.5\n" * 20_000  # over the body limit: cut off mid-stream
        assert _upload(client, m.json()["id"], headers, small).status_code == 201
        for content in (big, huge):
            r = _upload(client, m.json()["id"], headers, content)
            assert r.status_code == 413, r.text
            assert r.json()["error"]["code"] == "payload_too_large"
            assert "1000 bytes" in r.json()["error"]["message"]
        assert len(_files(settings.data_dir)) == 1
    app.state.service.db.dispose()


def test_operator_cannot_upload_and_party_cannot_upload_elsewhere(client, party, operator_headers):
    market_id, headers = party
    csv = b"a,b,label\n1,2,0\n3,4,1\n"
    assert _upload(client, market_id, operator_headers, csv).status_code == 403
    other = client.post(
        f"{API}/markets", json={"name": "o", "task": "classification"}, headers=operator_headers
    ).json()
    assert _upload(client, other["id"], headers, csv).status_code == 404
    assert _upload(client, market_id, {}, csv).status_code == 401
    r = client.post(f"{API}/markets/{market_id}/datasets", json={"a": 1}, headers=headers)
    assert r.status_code == 415


def test_large_upload_never_touches_the_disk_in_plaintext(client, party, settings, monkeypatch):
    """A multi-megabyte upload is kept in memory until it is encrypted: no spooled
    temporary file is created, and the blob store holds only ciphertext."""
    import tempfile

    spooled: list[object] = []
    original = tempfile.SpooledTemporaryFile

    class Spy(original):
        def rollover(self) -> None:
            spooled.append(self)
            super().rollover()

    monkeypatch.setattr("starlette.formparsers.SpooledTemporaryFile", Spy)
    rows = "\n".join(f"{i},{i % 7},{i % 2}" for i in range(200_000))
    content = f"a,b,label\n{rows}\n".encode()
    assert len(content) > 1024 * 1024  # above the 1 MB at which uploads used to spool
    market_id, headers = party
    response = _upload(client, market_id, headers, content)
    assert response.status_code == 201, response.text
    assert spooled == []
    for path in _files(settings.data_dir):
        assert b"199999,2,1" not in path.read_bytes()
