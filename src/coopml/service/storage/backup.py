"""Backups and restores of a deployment: the database, the blob store and the key.

:func:`create_backup` writes one ``.tar.gz`` archive (mode 0600) holding

* ``database/coopml.db``: a consistent copy of the SQLite database made with SQLite's
  online backup API while the service runs; or ``database/postgresql.dump``, a
  ``pg_dump --format=custom`` taken in an exported snapshot (PostgreSQL backups need
  the ``pg_dump`` client on ``PATH``, of the server's major version or newer; without
  it they are refused);
* ``blobs/``: the encrypted blob files. The snapshot is taken, and every blob file
  hard-linked aside, under the blob store's lock (:meth:`BlobStore.lock`, which uploads
  and blob erasures also take), so the blobs match the snapshot: every blob it names is
  there (checked), and none is erased under the backup's feet;
* ``files/``: the data directory's other files (``operator.token``, ...), and
  ``files/secret.key`` when the key is a file and is not left out (``include_key``). A
  key given by ``COOPML_SECRET_KEY`` is never in the archive: the manifest records only
  its fingerprint, and restoring needs the key;
* ``manifest.json``: format, dates, database kind and Alembic revision, the key's
  fingerprint and whether the key is included, the chain heads of the ledger and the
  audit log at the snapshot, and the SHA-256 of every other member.

:func:`restore_backup` checks the archive (checksums, member names), restores into a new
data directory (and, for PostgreSQL, into an empty database with ``pg_restore``),
migrates it to the newest schema and checks it: both hash chains verify and every blob
the database names decrypts with the key.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, inspect, select, table, text
from sqlalchemy import column as sa_column

from coopml.service.security import Cipher, DecryptionError, parse_secret_key, write_private_file
from coopml.service.settings import Settings
from coopml.service.storage.blobs import BlobStore
from coopml.service.storage.keys import (
    assert_no_pending_rotation,
    blob_files,
    current_key,
    key_fingerprint,
    key_is_external,
)

__all__ = [
    "FORMAT",
    "BackupError",
    "BackupReport",
    "RestoreReport",
    "blob_references",
    "create_backup",
    "restore_backup",
]

FORMAT = "coopml-backup"
VERSION = 1
_DB_FILES = {"coopml.db", "coopml.db-wal", "coopml.db-shm", "coopml.db-journal"}
_NOT_COPIED = _DB_FILES | {"secret.key"}

#: (Alembic revision, chain heads, blob references) of a database snapshot
_Facts = tuple[str | None, list[str], dict[str, set[str]]]


class BackupError(RuntimeError):
    """A backup or restore that cannot be done (the message says why)."""


@dataclass(frozen=True)
class BackupReport:
    """What :func:`create_backup` wrote."""

    path: Path
    database: str
    revision: str | None
    n_blobs: int
    key: str  # "included", "excluded" or "external"
    key_fingerprint: str
    chain_heads: tuple[str, ...]
    files: tuple[str, ...]
    size_bytes: int


@dataclass(frozen=True)
class RestoreReport:
    """What :func:`restore_backup` restored and how its checks went."""

    data_dir: Path
    database: str
    revision: str | None
    n_blobs: int
    key: str  # where the restored deployment's key is: "file" or "external"
    n_entries_verified: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


# ----------------------------------------------------------------------------- helpers
def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def blob_references(conn: Connection) -> dict[str, set[str]]:
    """Blob addresses named by the database: ``{address: {"table.column", ...}}``, from
    every column called ``blob`` or ending in ``_blob``."""
    refs: dict[str, set[str]] = {}
    insp = inspect(conn)
    for name in insp.get_table_names():
        for col in insp.get_columns(name):
            cname = str(col["name"])
            if cname != "blob" and not cname.endswith("_blob"):
                continue
            t = table(name, sa_column(cname))
            for (address,) in conn.execute(select(t.c[cname]).where(t.c[cname].is_not(None))):
                refs.setdefault(str(address), set()).add(f"{name}.{cname}")
    return refs


def _snapshot_facts(conn: Connection) -> _Facts:
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    revision = None
    if "alembic_version" in tables:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    heads = []
    if "chain_heads" in tables:
        heads = [
            f"{n}:{s}:{h}"
            for n, s, h in conn.execute(
                text("SELECT name, seq, entry_hash FROM chain_heads ORDER BY name")
            )
        ]
    return revision, heads, blob_references(conn)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    env = dict(os.environ)
    if u.password is not None:
        env["PGPASSWORD"] = str(u.password)
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise BackupError(
            f"PostgreSQL backups and restores need the `{tool}` client (of the server's "
            f"major version or newer) on PATH, and it is not there. Install the PostgreSQL "
            "client tools, or back the database up with your own PostgreSQL tooling "
            "(pg_dump, pg_basebackup, managed snapshots) and keep the blob directory and "
            "the key with it."
        )
    return path


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed: {' / '.join(detail[-5:]) or done.returncode}")


def _freeze_blobs(store: BlobStore, into: Path) -> list[tuple[str, Path]]:
    """Hard links (copies where the file system has none) of every blob, so that the
    blobs of the snapshot survive a deletion once the store's lock is released."""
    into.mkdir(mode=0o700, exist_ok=True)
    frozen = []
    for address, path in blob_files(store.root):
        target = into / address
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
        frozen.append((address, target))
    return frozen


def _snapshot_sqlite(
    settings: Settings, dest: Path, store: BlobStore, links: Path
) -> tuple[_Facts, list[tuple[str, Path]]]:
    source = settings.data_dir / "coopml.db"
    if not source.exists():
        raise BackupError(f"no database at {source}")
    src = sqlite3.connect(str(source), timeout=30)
    try:
        dst = sqlite3.connect(str(dest))
        try:
            # Under the store's lock no blob is stored-and-referenced or erased: the
            # snapshot and the frozen blobs match (writers of other rows go on: WAL).
            with store.lock():
                src.backup(dst)
                blobs = _freeze_blobs(store, links)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    engine = create_engine(f"sqlite:///{dest}")
    try:
        with engine.connect() as conn:
            return _snapshot_facts(conn), blobs
    finally:
        engine.dispose()


def _snapshot_postgres(
    settings: Settings, dest: Path, store: BlobStore, links: Path
) -> tuple[_Facts, list[tuple[str, Path]]]:
    pg_dump = _require("pg_dump")
    url = settings.resolved_database_url
    engine = create_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            # pg_dump reads in this transaction's snapshot: the facts below and the dump
            # describe the same instant
            with store.lock():  # as for SQLite; the snapshot is taken by its first query
                snapshot: str = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
                blobs = _freeze_blobs(store, links)
            facts = _snapshot_facts(conn)
            libpq, env = _libpq(url)
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    f"--file={dest}",
                    f"--dbname={libpq}",
                ],
                env,
                "pg_dump",
            )
            conn.rollback()
        return facts, blobs
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- backup
def create_backup(settings: Settings, out: Path, *, include_key: bool = True) -> BackupReport:
    """Write a backup archive of the deployment to ``out`` (which must not exist)."""
    out = Path(out).expanduser().resolve()
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file name (backups are never overwritten)")
    data_dir = settings.data_dir
    if not data_dir.is_dir():
        raise BackupError(f"no data directory at {data_dir}")
    assert_no_pending_rotation(data_dir)
    key = current_key(settings)
    if key_is_external(settings):
        key_state = "external"
    else:
        key_state = "included" if include_key else "excluded"
    dialect = "postgresql" if settings.resolved_database_url.startswith("postgresql") else "sqlite"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".coopml-backup-", dir=out.parent))
    # the blobs' links live next to the store (hard links need the same file system)
    links = Path(tempfile.mkdtemp(prefix=".backup-", dir=data_dir))
    store = BlobStore(data_dir / "blobs", Cipher(key))
    try:
        if dialect == "sqlite":
            db_member, db_file = "database/coopml.db", work / "coopml.db"
            (revision, heads, refs), blobs = _snapshot_sqlite(settings, db_file, store, links)
        else:
            db_member, db_file = "database/postgresql.dump", work / "postgresql.dump"
            (revision, heads, refs), blobs = _snapshot_postgres(settings, db_file, store, links)
        members: list[tuple[str, Path]] = [(db_member, db_file)]
        present = {address for address, _ in blobs}
        missing = sorted(set(refs) - present)
        if missing:
            where = ", ".join(sorted(refs[missing[0]]))
            raise BackupError(
                f"{len(missing)} blob(s) named by the database are not in the blob store "
                f"(first: {missing[0]}, named by {where}): the store is damaged; nothing "
                "was written"
            )
        members += [(f"blobs/{a[:2]}/{a}", p) for a, p in blobs]
        others = sorted(
            p
            for p in data_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name not in _NOT_COPIED
        )
        if key_state == "included":
            others.append(data_dir / "secret.key")
        members += [(f"files/{p.name}", p) for p in others]
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "coopml_version": _version(),
            "database": dialect,
            "database_member": db_member,
            "alembic_revision": revision,
            "key": key_state,
            "key_fingerprint": key_fingerprint(key),
            "chain_heads": heads,
            "n_blobs": len(blobs),
            "checksums": {},
        }
        tmp_archive = work / "archive.tar.gz"
        with tarfile.open(tmp_archive, "w:gz") as tar:
            for arcname, path in members:
                manifest["checksums"][arcname] = _sha256_file(path)
                info = tar.gettarinfo(str(path), arcname)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            raw = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode = len(raw), 0o600
            info.mtime = int(datetime.datetime.now(datetime.UTC).timestamp())
            tar.addfile(info, io.BytesIO(raw))
        os.chmod(tmp_archive, 0o600)
        with open(tmp_archive, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_archive, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(links, ignore_errors=True)
    return BackupReport(
        path=out,
        database=dialect,
        revision=revision,
        n_blobs=len(blobs),
        key=key_state,
        key_fingerprint=key_fingerprint(key),
        chain_heads=tuple(heads),
        files=tuple(name for name, _ in members if name.startswith("files/")),
        size_bytes=out.stat().st_size,
    )


def _version() -> str:
    from coopml import __version__

    return str(__version__)


# ----------------------------------------------------------------------------- restore
def _read_archive(archive: Path, into: Path) -> dict[str, Any]:
    try:
        tar = tarfile.open(archive, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive}: not a coopml backup archive ({exc})") from None
    with tar:
        names = set()
        for m in tar.getmembers():
            parts = Path(m.name).parts
            if (
                not (m.isfile() or m.isdir())
                or m.name.startswith("/")
                or ".." in parts
                or not parts
                or parts[0] not in {"manifest.json", "database", "blobs", "files"}
            ):
                raise BackupError(f"{archive}: unexpected member {m.name!r}; refusing it")
            if m.isfile():
                names.add(m.name)
        if "manifest.json" not in names:
            raise BackupError(f"{archive}: no manifest.json: not a coopml backup archive")
        tar.extractall(into, filter="data")
    manifest: dict[str, Any] = json.loads((into / "manifest.json").read_text())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(
            f"{archive}: format {manifest.get('format')!r} version "
            f"{manifest.get('version')!r}; this coopml reads {FORMAT!r} version {VERSION}"
        )
    listed = set(manifest["checksums"])
    if listed != names - {"manifest.json"}:
        extra = sorted((names - {"manifest.json"}) ^ listed)
        raise BackupError(f"{archive}: members and manifest disagree (e.g. {extra[:3]})")
    for name, digest in manifest["checksums"].items():
        if _sha256_file(into / name) != digest:
            raise BackupError(f"{archive}: {name} does not match its checksum (damaged)")
    return manifest


def _restore_key(
    manifest: dict[str, Any], stage: Path, settings: Settings, key_file: Path | None
) -> tuple[bytes, bool]:
    """The key and whether it is to be written to the new data directory."""
    expected = manifest["key_fingerprint"]
    candidates: list[tuple[str, bytes, bool]] = []
    included = stage / "files" / "secret.key"
    if included.exists():
        candidates.append(
            ("the archive's secret.key", parse_secret_key(included.read_text()), True)
        )
    if key_file is not None:
        candidates.append((str(key_file), parse_secret_key(Path(key_file).read_text()), True))
    if settings.secret_key is not None:
        candidates.append(("COOPML_SECRET_KEY", settings.secret_key, False))
    if not candidates:
        raise BackupError(
            f"this backup does not hold its key (key: {manifest['key']}, fingerprint "
            f"{expected}): set COOPML_SECRET_KEY to it, or pass --key-file"
        )
    for source, key, _ in candidates:
        if key_fingerprint(key) != expected:
            raise BackupError(
                f"{source} is not the backup's key (fingerprint {key_fingerprint(key)}, the "
                f"backup's is {expected})"
            )
    return candidates[0][1], candidates[0][2]


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
    finally:
        engine.dispose()
    if tables:
        raise BackupError(
            f"the target database is not empty ({len(tables)} tables, e.g. {tables[0]}); "
            "restore into a new, empty database"
        )


def restore_backup(
    archive: Path, settings: Settings, *, key_file: Path | None = None
) -> RestoreReport:
    """Restore ``archive`` into ``settings.data_dir`` (new or empty) and, for a
    PostgreSQL backup, into the empty database ``settings.database_url``; then migrate
    and check it."""
    archive = Path(archive).expanduser().resolve()
    data_dir = settings.data_dir
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"{data_dir} exists and is not empty; restore into a new directory")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.restoring-", dir=data_dir.parent))
    try:
        manifest = _read_archive(archive, stage / "archive")
        unpacked = stage / "archive"
        dialect = manifest["database"]
        if dialect == "sqlite" and settings.database_url:
            raise BackupError(
                "this backup holds an SQLite database; restore it without "
                "--database-url / COOPML_DATABASE_URL (restoring into another kind of "
                "database is not supported)"
            )
        if dialect == "postgresql" and not settings.resolved_database_url.startswith("postgresql"):
            raise BackupError(
                "this backup holds a PostgreSQL dump; name an empty PostgreSQL database "
                "to restore it into with --database-url or COOPML_DATABASE_URL"
            )
        key, write_key = _restore_key(manifest, unpacked, settings, key_file)
        target = stage / "data"
        target.mkdir(mode=0o700)
        (unpacked / "blobs").mkdir(exist_ok=True)
        (unpacked / "blobs").replace(target / "blobs")
        for sub in [target / "blobs", *(target / "blobs").rglob("*")]:
            if sub.is_dir():
                sub.chmod(0o700)
        files = unpacked / "files"
        for path in sorted(files.iterdir()) if files.exists() else []:
            if path.name != "secret.key":
                write_private_file(target / path.name, path.read_bytes())
        if write_key:
            write_private_file(target / "secret.key", key.hex().encode() + b"\n")
        if dialect == "sqlite":
            (unpacked / manifest["database_member"]).replace(target / "coopml.db")
        else:
            pg_restore = _require("pg_restore")
            _empty_postgres(settings.resolved_database_url)
            libpq, env = _libpq(settings.resolved_database_url)
            _run(
                [
                    pg_restore,
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    "--single-transaction",
                    f"--dbname={libpq}",
                    str(unpacked / manifest["database_member"]),
                ],
                env,
                "pg_restore",
            )
        if data_dir.exists():
            data_dir.rmdir()
        target.replace(data_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    restored = settings.with_(secret_key=None if write_key else key)
    return _check_restored(restored, manifest, "file" if write_key else "external")


def _check_restored(settings: Settings, manifest: dict[str, Any], key: str) -> RestoreReport:
    from coopml.service.context import ServiceContext
    from coopml.service.domain.ledger import parse_anchors, verify_chains

    problems: list[str] = []
    ctx = ServiceContext.open(settings, bootstrap=False)  # migrates to the newest schema
    try:
        with ctx.db.session() as s:
            result = verify_chains(s, parse_anchors(manifest.get("chain_heads", [])))
            refs = blob_references(s.connection())
            revision = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
        problems += [str(b) for b in result.breaks]
        problems += _undecryptable(ctx.blobs.cipher, ctx.blobs.root, refs)
    finally:
        ctx.db.dispose()
    return RestoreReport(
        data_dir=settings.data_dir,
        database=manifest["database"],
        revision=revision,
        n_blobs=manifest["n_blobs"],
        key=key,
        n_entries_verified=result.n_entries,
        problems=tuple(problems),
    )


def _undecryptable(cipher: Cipher, root: Path, refs: dict[str, set[str]]) -> Iterable[str]:
    problems = []
    for address in sorted(refs):
        path = root / address[:2] / address
        try:
            cipher.decrypt(path.read_bytes(), address.encode())
        except FileNotFoundError:
            problems.append(
                f"blob {address} (named by {', '.join(sorted(refs[address]))}) is missing"
            )
        except DecryptionError:
            problems.append(f"blob {address} does not decrypt with the key")
    return problems
