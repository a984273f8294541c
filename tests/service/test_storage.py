"""Encryption at rest, the blob store, the key file, migrations and append-only tables."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from tests.service.conftest import API, breast_cancer_csvs, make_market_with_parties

from coopml.service import Settings
from coopml.service.context import ServiceContext
from coopml.service.security import (
    Cipher,
    DecryptionError,
    hash_token,
    load_or_create_key,
    parse_secret_key,
)
from coopml.service.storage import BlobStore
from coopml.service.storage.models import Base


def test_encryption_round_trip_and_tamper_detection():
    cipher = Cipher(os.urandom(32))
    plaintext = b"patient_id,age\n17,54\n"
    box = cipher.encrypt(plaintext, b"addr")
    assert plaintext not in box and cipher.decrypt(box, b"addr") == plaintext
    assert cipher.encrypt(plaintext, b"addr") != box  # fresh nonce each time
    with pytest.raises(DecryptionError):
        cipher.decrypt(box, b"other-address")
    tampered = bytearray(box)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        cipher.decrypt(bytes(tampered), b"addr")
    with pytest.raises(DecryptionError):
        Cipher(os.urandom(32)).decrypt(box, b"addr")


def test_blob_store_is_content_addressed_atomic_and_encrypted(tmp_path: Path):
    store = BlobStore(tmp_path / "blobs", Cipher(bytes(32)))
    data = b"f0,f1,label\n" + b"0.125,0.25,1\n" * 1000
    address = store.put(data)
    assert store.put(data) == address  # idempotent
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert files == [store.path(address)]  # no temp files left behind
    raw = files[0].read_bytes()
    assert b"label" not in raw and b"0.125" not in raw
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert store.get(address) == data
    # the address does not reveal the plaintext's plain hash
    import hashlib

    assert address != hashlib.sha256(data).hexdigest()
    with pytest.raises(ValueError):
        store.path("../../etc/passwd")


def test_blob_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    store = BlobStore(tmp_path / "blobs", Cipher(bytes(32)))

    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.put(b"abc")
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]


def test_key_file_created_private_and_reused(tmp_path: Path):
    key = load_or_create_key(tmp_path)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(tmp_path) == key and len(key) == 32
    assert parse_secret_key(key.hex()) == key
    with pytest.raises(ValueError, match="32 bytes"):
        parse_secret_key("too-short")


def test_operator_token_created_once_and_stored_hashed(tmp_path: Path):
    settings = Settings(tmp_path / "d")
    ctx = ServiceContext.open(settings)
    token_file = settings.data_dir / "operator.token"
    assert ctx.operator_token_path == token_file
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    with ctx.db.engine.connect() as conn:
        hashes = [r[0] for r in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert hashes == [hash_token(token)] and token not in hashes
    again = ServiceContext.open(settings)  # a restart keeps the same token
    assert token_file.read_text().strip() == token
    for c in (ctx, again):
        c.db.dispose()


def test_uploaded_rows_are_encrypted_on_disk(client, settings):
    make_market_with_parties(client, 2, validation=False)
    csv = breast_cancer_csvs(2)[0]["train"]
    needle = csv.splitlines()[1][:40]  # the first data row
    blobs = [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2
    for blob in blobs:
        raw = blob.read_bytes()
        assert needle not in raw and b"label" not in raw
    db_bytes = (settings.data_dir / "coopml.db").read_bytes()
    wal = settings.data_dir / "coopml.db-wal"
    db_bytes += wal.read_bytes() if wal.exists() else b""
    assert needle not in db_bytes


def test_migrations_match_the_models(settings):
    ctx = ServiceContext.open(settings)
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with ctx.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    assert diff == []
    assert {"ledger_entries", "audit_log", "jobs", "settlements", "alembic_version"} <= tables
    ctx.db.dispose()


def test_sqlite_runs_in_wal_mode(app):
    with app.state.service.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


@pytest.mark.parametrize("table", ["ledger_entries", "audit_log"])
def test_ledger_and_audit_log_are_append_only(client, operator_headers, table):
    client.post(
        f"{API}/markets", json={"name": "m", "task": "regression"}, headers=operator_headers
    )
    db = client.app.state.service.db
    if table == "ledger_entries":
        from tests.service.conftest import assert_ledger_balanced, run_round_to_completion

        market = make_market_with_parties(client, 2)
        rnd = run_round_to_completion(client, market.id, operator_headers)
        assert_ledger_balanced(client, rnd["id"], operator_headers)
    with db.engine.connect() as conn:
        assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0
        for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(statement))
            conn.rollback()


def test_no_code_path_updates_or_deletes_ledger_or_audit_entries():
    import coopml.service

    root = Path(coopml.service.__file__).parent
    forbidden = [
        f"{verb}({model}"
        for verb in ("update", "delete")
        for model in ("LedgerEntry", "AuditEntry")
    ]
    for source in root.rglob("*.py"):
        text_ = source.read_text()
        for pattern in forbidden:
            assert pattern not in text_, f"{source} contains {pattern}"


def test_settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    key = os.urandom(32)
    monkeypatch.setenv("COOPML_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("COOPML_SECRET_KEY", key.hex())
    monkeypatch.setenv("COOPML_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("COOPML_MAX_UPLOAD_BYTES", "1234")
    monkeypatch.setenv("COOPML_LEASE_SECONDS", "2.5")
    s = Settings.from_env()
    assert s.data_dir == (tmp_path / "env-data").resolve() and s.secret_key == key
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert (s.max_upload_bytes, s.lease_seconds) == (1234, 2.5)
    assert Settings.from_env(tmp_path / "cli").data_dir == (tmp_path / "cli").resolve()
    monkeypatch.setenv("COOPML_LEASE_SECONDS", "soon")
    with pytest.raises(ValueError, match="COOPML_LEASE_SECONDS"):
        Settings.from_env()
    with pytest.raises(ValueError, match="executor"):
        Settings(tmp_path, executor="dask")  # type: ignore[arg-type]


def test_an_existing_world_readable_data_directory_is_tightened(tmp_path: Path):
    data = tmp_path / "d"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # whatever the umask: group and others may read it
    ServiceContext.open(Settings(data))
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
