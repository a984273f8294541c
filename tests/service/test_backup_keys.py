"""Backups, restores and key rotation (issue 13, item 7).

``coopml backup`` takes a consistent snapshot of a running deployment (database, blobs,
key); ``coopml restore`` brings it back in a new data directory where a new round
settles. ``coopml keys rotate`` re-encrypts every blob under a new key, the old key no
longer decrypts them, a round still settles, and an interrupted rotation either leaves
the store as it was or is finished by running the command again.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    SECRET,
    MarketHandle,
    assert_ledger_balanced,
    make_market_with_parties,
    postgres_database,
    run_round_to_completion,
)
from typer.testing import CliRunner

from coopml.cli import app as cli
from coopml.service import Settings, create_app
from coopml.service.context import ServiceContext, record_audit
from coopml.service.security import Cipher, DecryptionError
from coopml.service.storage.keys import ROTATION_DIR, KeyRotationError, blob_files

runner = CliRunner()
NO_ENV = {"COOPML_DATABASE_URL": "", "COOPML_SECRET_KEY": "", "COOPML_DATA_DIR": ""}


def _settings(data_dir: Path, *, url: str | None = None, key: bytes | None = None) -> Settings:
    return Settings(
        data_dir,
        database_url=url,
        secret_key=key,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        lease_seconds=5.0,
    )


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Exit code and output (whitespace normalised: the console wraps long lines)."""
    result = runner.invoke(cli, list(args), env={**NO_ENV, **(env or {})})
    return result.exit_code, " ".join(result.output.split())


def _deployment(settings: Settings) -> tuple[MarketHandle, str]:
    """A market with three parties and one settled round."""
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            market = make_market_with_parties(client, 3)
            rnd = run_round_to_completion(client, market.id)
    finally:
        app.state.service.db.dispose()
    return market, rnd["id"]


def _settle_again(settings: Settings, market: MarketHandle) -> None:
    """On the (restored or re-keyed) deployment: the parties' data decrypts, a new round
    settles and balances, and the first party reads its dataset back."""
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            rnd = run_round_to_completion(client, market.id)
            assert_ledger_balanced(client, rnd["id"])
            party = market.parties[0]
            dataset_id = market.datasets[party.id][0]
            r = client.get(f"{API}/datasets/{dataset_id}/content", headers=party.headers)
            assert r.status_code == 200 and r.content.startswith(b"f0,f1,"), r.text[:200]
    finally:
        app.state.service.db.dispose()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MarketHandle]:
    """A SQLite deployment whose key is the file ``secret.key`` (copied per test)."""
    data = tmp_path_factory.mktemp("deployment") / "data"
    market, _ = _deployment(_settings(data))
    return data, market


@pytest.fixture
def live(deployment: tuple[Path, MarketHandle], tmp_path: Path) -> tuple[Path, MarketHandle]:
    data, market = deployment
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    return copy, market


# ----------------------------------------------------------------------------- backup
def test_backup_restore_settle(live: tuple[Path, MarketHandle], tmp_path: Path) -> None:
    """A backup taken while another thread writes restores into a deployment whose
    chains verify (against the heads the backup recorded) and where a round settles."""
    data, market = live
    ctx = ServiceContext.open(_settings(data), bootstrap=False)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            with ctx.db.session() as s:
                record_audit(s, "writer", "probe", "test", str(i))
            i += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        code, output = _invoke("backup", "--data-dir", str(data), "--out", str(tmp_path / "b.tgz"))
    finally:
        stop.set()
        writer.join(30)
        ctx.db.dispose()
    assert code == 0, output
    assert "key: included" in output and "sqlite database" in output
    with tarfile.open(tmp_path / "b.tgz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert (tmp_path / "b.tgz").stat().st_mode & 0o077 == 0
    assert "database/coopml.db" in names and "files/secret.key" in names
    assert manifest["n_blobs"] == len(list(blob_files(data / "blobs"))) >= 6
    assert manifest["key"] == "included" and len(manifest["chain_heads"]) == 2

    restored = tmp_path / "restored"
    code, output = _invoke("restore", str(tmp_path / "b.tgz"), "--data-dir", str(restored))
    assert code == 0, output
    assert "restore ok" in output
    assert (restored / "secret.key").read_text().strip() == (
        data / "secret.key"
    ).read_text().strip()
    code, output = _invoke(
        "ledger",
        "verify",
        "--data-dir",
        str(restored),
        "--expect-head",
        " ".join(manifest["chain_heads"]),
    )
    assert code == 0, output
    _settle_again(_settings(restored), market)
    code, output = _invoke("ledger", "verify", "--data-dir", str(restored))
    assert code == 0 and "ledger_entries: 18 entries" in output, output

    # a restore never overwrites
    code, output = _invoke("restore", str(tmp_path / "b.tgz"), "--data-dir", str(restored))
    assert code == 2 and "not empty" in output
    code, output = _invoke("backup", "--data-dir", str(data), "--out", str(tmp_path / "b.tgz"))
    assert code == 2 and "exists" in output


def test_backup_without_the_key(live: tuple[Path, MarketHandle], tmp_path: Path) -> None:
    data, market = live
    archive = tmp_path / "nokey.tgz"
    code, output = _invoke(
        "backup", "--data-dir", str(data), "--out", str(archive), "--exclude-key"
    )
    assert code == 0 and "key: NOT included" in output, output
    with tarfile.open(archive) as tar:
        assert "files/secret.key" not in tar.getnames()
    code, output = _invoke("restore", str(archive), "--data-dir", str(tmp_path / "r1"))
    assert code == 2 and "does not hold its key" in output, output
    wrong = tmp_path / "wrong.key"
    wrong.write_text(bytes(32).hex())
    code, output = _invoke(
        "restore", str(archive), "--data-dir", str(tmp_path / "r1"), "--key-file", str(wrong)
    )
    assert code == 2 and "is not the backup's key" in output, output
    assert not (tmp_path / "r1").exists() or not any((tmp_path / "r1").iterdir())
    code, output = _invoke(
        "restore",
        str(archive),
        "--data-dir",
        str(tmp_path / "r1"),
        "--key-file",
        str(data / "secret.key"),
    )
    assert code == 0, output
    _settle_again(_settings(tmp_path / "r1"), market)


def test_external_key_is_not_in_the_backup(tmp_path: Path) -> None:
    data = tmp_path / "data"
    market, _ = _deployment(_settings(data, key=SECRET))
    env = {"COOPML_SECRET_KEY": SECRET.hex()}
    archive = tmp_path / "b.tgz"
    code, output = _invoke("backup", "--data-dir", str(data), "--out", str(archive), env=env)
    assert code == 0 and "key: external (COOPML_SECRET_KEY" in output, output
    with tarfile.open(archive) as tar:
        assert not any(n.endswith("secret.key") for n in tar.getnames())
    restored = tmp_path / "restored"
    code, output = _invoke("restore", str(archive), "--data-dir", str(restored))
    assert code == 2 and "COOPML_SECRET_KEY" in output
    code, output = _invoke("restore", str(archive), "--data-dir", str(restored), env=env)
    assert code == 0 and "key: COOPML_SECRET_KEY" in output, output
    assert not (restored / "secret.key").exists()  # it stays external
    _settle_again(_settings(restored, key=SECRET), market)


def test_a_damaged_archive_is_refused(live: tuple[Path, MarketHandle], tmp_path: Path) -> None:
    data, _ = live
    archive = tmp_path / "b.tgz"
    assert _invoke("backup", "--data-dir", str(data), "--out", str(archive))[0] == 0
    damaged = tmp_path / "damaged.tgz"
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            content = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "database/coopml.db":
                content = content[:-1] + bytes([content[-1] ^ 1])
            import io

            dst.addfile(member, io.BytesIO(content))
    code, output = _invoke("restore", str(damaged), "--data-dir", str(tmp_path / "r"))
    assert code == 2 and "does not match its checksum" in output, output


@pytest.fixture
def pg_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    first, second = postgres_database(), postgres_database()
    urls = (next(first), next(second))
    yield urls
    for gen in (first, second):
        with pytest.raises(StopIteration):
            next(gen)


def test_postgresql_backup_restore_settle(pg_pair: tuple[str, str], tmp_path: Path) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump / pg_restore are not installed")
    source, target = pg_pair
    data = tmp_path / "pg"
    market, _ = _deployment(_settings(data, url=source, key=SECRET))
    env = {"COOPML_SECRET_KEY": SECRET.hex(), "COOPML_DATABASE_URL": source}
    archive = tmp_path / "pg.tgz"
    code, output = _invoke("backup", "--data-dir", str(data), "--out", str(archive), env=env)
    assert code == 0 and "postgresql database" in output, output
    with tarfile.open(archive) as tar:
        assert "database/postgresql.dump" in tar.getnames()
    restored = tmp_path / "restored"
    env["COOPML_DATABASE_URL"] = target
    code, output = _invoke("restore", str(archive), "--data-dir", str(restored), env=env)
    assert code == 0 and "restore ok" in output, output
    _settle_again(_settings(restored, url=target, key=SECRET), market)
    code, output = _invoke("ledger", "verify", "--database-url", target)
    assert code == 0 and "ledger_entries: 18 entries" in output, output
    # the target must be empty
    code, output = _invoke("restore", str(archive), "--data-dir", str(tmp_path / "r2"), env=env)
    assert code == 2 and "not empty" in output, output


# ----------------------------------------------------------------------------- rotation
def _ciphertexts(data: Path) -> dict[str, bytes]:
    return {address: path.read_bytes() for address, path in blob_files(data / "blobs")}


def test_rotation_reencrypts_every_blob(live: tuple[Path, MarketHandle]) -> None:
    data, market = live
    old_key = bytes.fromhex((data / "secret.key").read_text().strip())
    before = _ciphertexts(data)
    plain = {a: Cipher(old_key).decrypt(c, a.encode()) for a, c in before.items()}
    code, output = _invoke("keys", "rotate", "--data-dir", str(data))
    assert code == 0 and f"{len(before)} blobs re-encrypted" in output, output
    new_key = bytes.fromhex((data / "secret.key").read_text().strip())
    assert new_key != old_key
    assert not (data / ROTATION_DIR).exists()
    after = _ciphertexts(data)
    assert set(after) == set(before)  # same addresses
    for address, box in after.items():
        assert box != before[address]
        assert Cipher(new_key).decrypt(box, address.encode()) == plain[address]
        with pytest.raises(DecryptionError):
            Cipher(old_key).decrypt(box, address.encode())
    assert old_key.hex() not in "".join(p.read_text() for p in data.glob("*.key"))
    _settle_again(_settings(data), market)


def test_rotation_interrupted_before_the_switch_leaves_the_store_as_it_was(
    live: tuple[Path, MarketHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    import coopml.service.storage.keys as keys

    data, market = live
    before = _ciphertexts(data)
    old_key = (data / "secret.key").read_text()
    real, calls = keys.write_private_file, []

    def crash_after_three(path: Path, content: bytes) -> None:
        calls.append(path)
        if len(calls) > 4:  # new.key, then three blobs
            raise OSError("power cut")
        real(path, content)

    monkeypatch.setattr(keys, "write_private_file", crash_after_three)
    code, output = _invoke("keys", "rotate", "--data-dir", str(data))
    assert code == 2 and "power cut" in output
    monkeypatch.setattr(keys, "write_private_file", real)
    assert _ciphertexts(data) == before and (data / "secret.key").read_text() == old_key
    assert (data / ROTATION_DIR / "new.key").exists()
    ctx = ServiceContext.open(_settings(data), bootstrap=False)  # the service still starts
    ctx.db.dispose()
    code, output = _invoke("keys", "rotate", "--data-dir", str(data))
    assert code == 0 and "resumed and finished" in output, output
    _settle_again(_settings(data), market)


def test_rotation_interrupted_after_the_switch_is_finished_by_a_rerun(
    live: tuple[Path, MarketHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, market = live
    old_key = bytes.fromhex((data / "secret.key").read_text().strip())
    real, calls = Path.replace, []

    def crash_after_two(self: Path, target: Path) -> Path:
        if "blobs" in str(target) and ROTATION_DIR in str(self):
            calls.append(self)
            if len(calls) > 2:
                raise OSError("power cut")
        return real(self, target)

    monkeypatch.setattr(Path, "replace", crash_after_two)
    code, output = _invoke("keys", "rotate", "--data-dir", str(data))
    monkeypatch.setattr(Path, "replace", real)
    assert code == 2 and "power cut" in output
    assert (data / ROTATION_DIR / "COMMITTED").exists()
    with pytest.raises(KeyRotationError, match="interrupted after its switch point"):
        ServiceContext.open(_settings(data), bootstrap=False)
    code, output = _invoke("backup", "--data-dir", str(data), "--out", str(data.parent / "x.tgz"))
    assert code == 2 and "interrupted" in output
    code, output = _invoke("keys", "rotate", "--data-dir", str(data))
    assert code == 0, output
    new_key = bytes.fromhex((data / "secret.key").read_text().strip())
    for address, box in _ciphertexts(data).items():
        Cipher(new_key).decrypt(box, address.encode())
        with pytest.raises(DecryptionError):
            Cipher(old_key).decrypt(box, address.encode())
    _settle_again(_settings(data), market)


def test_rotating_an_external_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    market, _ = _deployment(_settings(data, key=SECRET))
    env = {"COOPML_SECRET_KEY": SECRET.hex()}
    code, output = _invoke("keys", "rotate", "--data-dir", str(data), env=env)
    assert code == 2 and "--new-key-file" in output
    new_file = tmp_path / "new.key"
    code, output = _invoke(
        "keys", "rotate", "--data-dir", str(data), "--new-key-file", str(new_file), env=env
    )
    assert code == 0 and "set COOPML_SECRET_KEY" in output, output
    assert new_file.stat().st_mode & 0o077 == 0
    new_key = bytes.fromhex(new_file.read_text().strip())
    assert not (data / "secret.key").exists()
    for address, box in _ciphertexts(data).items():
        with pytest.raises(DecryptionError):
            Cipher(SECRET).decrypt(box, address.encode())
    _settle_again(_settings(data, key=new_key), market)
