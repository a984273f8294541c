"""The hash chains of the ledger and the audit log (issue 13, item 6).

Someone with database access drops the append-only triggers (raw SQL) and edits an
amount, deletes, inserts or reorders entries: ``coopml ledger verify`` names the first
broken entry and exits 1, on SQLite and on PostgreSQL. An untouched store exits 0;
concurrent writers (threads and processes) keep one valid chain; the migration
backfills the chains of existing entries; a recorded head (``coopml ledger head``)
catches even a chain rewritten with recomputed hashes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from tests.service.conftest import (
    OPERATOR_TOKEN,
    PG_ADMIN_URL,
    SECRET,
    make_market_with_parties,
    postgres_database,
    run_round_to_completion,
)
from typer.testing import CliRunner

from coopml.cli import app as cli
from coopml.service import Settings, create_app
from coopml.service.context import ServiceContext, record_audit
from coopml.service.domain.ledger import (
    CHAINED_FIELDS,
    GENESIS,
    append_ledger_entries,
    entry_hash,
)
from coopml.service.storage.models import AuditEntry, LedgerEntry

TABLES = ("ledger_entries", "audit_log")
runner = CliRunner()


# ----------------------------------------------------------------------------- stores
@dataclass
class Store:
    """A deployment with a settled round, reachable by the CLI (``args``) and raw SQL."""

    dialect: str
    settings: Settings
    args: list[str]
    env: dict[str, str]

    def engine(self) -> Engine:
        return create_engine(self.settings.resolved_database_url)

    def sql(self, *statements: str) -> None:
        engine = self.engine()
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()

    def drop_triggers(self) -> None:
        if self.dialect == "postgresql":
            self.sql(*(f"DROP TRIGGER IF EXISTS {t}_append_only ON {t}" for t in TABLES))
        else:
            self.sql(
                *(
                    f"DROP TRIGGER IF EXISTS {t}_no_{w}"
                    for t in TABLES
                    for w in ("update", "delete")
                )
            )

    def rows(self, table: str) -> list[dict[str, Any]]:
        model = LedgerEntry if table == "ledger_entries" else AuditEntry
        engine = self.engine()
        try:
            with engine.connect() as conn:
                result = conn.execute(select(model.__table__).order_by(text("chain_seq")))
                return [dict(r._mapping) for r in result]
        finally:
            engine.dispose()

    def verify(self, *extra: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["ledger", "verify", *self.args, *extra], env=self.env)
        return result.exit_code, result.output

    def head(self) -> str:
        result = runner.invoke(cli, ["ledger", "head", *self.args], env=self.env)
        assert result.exit_code == 0, result.output
        return result.output


def _settle_a_round(settings: Settings) -> None:
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            market = make_market_with_parties(client, 3)
            run_round_to_completion(client, market.id)
    finally:
        app.state.service.db.dispose()


def _settings(data_dir: Path, url: str | None = None) -> Settings:
    return Settings(
        data_dir,
        database_url=url,
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        lease_seconds=5.0,
    )


@pytest.fixture(scope="module")
def pristine_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("pristine") / "data"
    _settle_a_round(_settings(data))
    return data


@pytest.fixture(scope="module")
def pristine_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Name of a PostgreSQL database with a settled round (a template for clones)."""
    gen = postgres_database()
    url = next(gen)
    _settle_a_round(_settings(tmp_path_factory.mktemp("pgpristine") / "data", url))
    yield url.rsplit("/", 1)[1]
    with pytest.raises(StopIteration):
        next(gen)


def _clone_postgres(template: str) -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"coopml_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh copy of a deployment with one settled round (3 parties, 9 ledger entries)."""
    env = {"COOPML_DATABASE_URL": "", "COOPML_SECRET_KEY": ""}
    if request.param == "sqlite":
        data = tmp_path / "data"
        shutil.copytree(request.getfixturevalue("pristine_sqlite"), data)
        yield Store("sqlite", _settings(data), ["--data-dir", str(data)], env)
        return
    template = request.getfixturevalue("pristine_postgres")
    clone = _clone_postgres(template)
    url = next(clone)
    yield Store("postgresql", _settings(tmp_path / "pg", url), ["--database-url", url], env)
    with pytest.raises(StopIteration):
        next(clone)


# ----------------------------------------------------------------------------- intact
def test_untouched_store_verifies(store: Store) -> None:
    code, output = store.verify()
    assert code == 0, output
    assert "ledger_entries: 9 entries, chain intact" in output
    n_audit = len(store.rows("audit_log"))
    assert n_audit >= 8 and f"audit_log: {n_audit} entries, chain intact" in output
    assert f"verified {9 + n_audit} entries: ok" in output
    heads = store.head().split()
    assert [h.split(":")[0] for h in heads] == list(TABLES)
    assert heads[0].split(":")[1] == "9"
    code, output = store.verify("--expect-head", " ".join(heads))
    assert code == 0 and "recorded heads matched: 2 of 2" in output, output
    code, output = store.verify("--expect-head", heads[0].split(":")[2], "--json")
    assert code == 0 and json.loads(output)["ok"] is True


def test_entries_link_to_their_predecessors(store: Store) -> None:
    for table in TABLES:
        rows = store.rows(table)
        assert [r["chain_seq"] for r in rows] == list(range(1, len(rows) + 1))
        prev = GENESIS
        for r in rows:
            assert r["prev_hash"] == prev
            values = {name: r[name] for name in CHAINED_FIELDS[table]}
            assert entry_hash(table, int(r["chain_seq"]), prev, values) == r["entry_hash"]
            prev = str(r["entry_hash"])


def test_every_column_is_hashed() -> None:
    """A column added to either table must be added to the hash (a new format)."""
    chain = {"chain_seq", "prev_hash", "entry_hash"}
    for model in (LedgerEntry, AuditEntry):
        columns = {c.name for c in model.__table__.columns}
        assert columns - chain == set(CHAINED_FIELDS[model.__tablename__]), model


# ----------------------------------------------------------------------------- tampering
def _middle(store: Store, table: str) -> int:
    return len(store.rows(table)) // 2


def _break_line(output: str) -> str:
    lines = [line for line in output.splitlines() if "first broken entry" in line]
    assert lines, output
    return lines[0]


@pytest.mark.parametrize("table", TABLES)
def test_an_edited_entry_is_named(store: Store, table: str) -> None:
    store.drop_triggers()
    n = _middle(store, table)
    row = next(r for r in store.rows(table) if r["chain_seq"] == n)
    change = "amount = amount + 0.5" if table == "ledger_entries" else "actor = 'someone-else'"
    store.sql(f"UPDATE {table} SET {change} WHERE chain_seq = {n}")
    code, output = store.verify()
    assert code == 1, output
    line = _break_line(output)
    assert f"{table} entry #{n} (id {row['id']})" in line
    assert "do not match its hash" in line


@pytest.mark.parametrize("table", TABLES)
def test_a_deleted_entry_is_named(store: Store, table: str) -> None:
    store.drop_triggers()
    n = _middle(store, table)
    store.sql(f"DELETE FROM {table} WHERE chain_seq = {n}")
    code, output = store.verify()
    assert code == 1, output
    line = _break_line(output)
    assert f"{table} entry #{n}" in line and "missing" in line


@pytest.mark.parametrize("table", TABLES)
def test_a_deleted_last_entry_is_named(store: Store, table: str) -> None:
    store.drop_triggers()
    last = len(store.rows(table))
    store.sql(f"DELETE FROM {table} WHERE chain_seq = {last}")
    code, output = store.verify()
    assert code == 1, output
    line = _break_line(output)
    assert f"{table} entry #{last}" in line and "deleted" in line


def _insert(store: Store, table: str, row: dict[str, Any]) -> None:
    model = LedgerEntry if table == "ledger_entries" else AuditEntry
    engine = store.engine()
    try:
        with engine.begin() as conn:
            conn.execute(insert(model).values(**row))
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", TABLES)
def test_an_entry_appended_outside_the_service_is_named(store: Store, table: str) -> None:
    rows = store.rows(table)
    last = rows[-1]
    forged = {**rows[len(rows) // 2], "id": uuid.uuid4().hex, "chain_seq": len(rows) + 1}
    forged["prev_hash"] = last["entry_hash"]  # entry_hash: copied from the original
    store.drop_triggers()
    _insert(store, table, forged)
    code, output = store.verify()
    assert code == 1, output
    line = _break_line(output)
    assert f"{table} entry #{len(rows) + 1} (id {forged['id']})" in line


@pytest.mark.parametrize("table", TABLES)
def test_an_entry_inserted_in_the_middle_is_named(store: Store, table: str) -> None:
    """Even with later entries renumbered and the inserted entry's own hash computed
    correctly, the next entry no longer links to its predecessor."""
    rows = store.rows(table)
    n = len(rows) // 2
    store.drop_triggers()
    store.sql(
        f"UPDATE {table} SET chain_seq = chain_seq + 100000 WHERE chain_seq >= {n}",
        f"UPDATE {table} SET chain_seq = chain_seq - 99999 WHERE chain_seq >= 100000",
    )
    forged = {**rows[n - 1], "id": uuid.uuid4().hex, "chain_seq": n}
    if table == "ledger_entries":
        forged["amount"] = 1000.0
    else:
        forged["action"] = "dataset_downloaded"
    values = {name: forged[name] for name in CHAINED_FIELDS[table]}
    forged["prev_hash"] = rows[n - 2]["entry_hash"]
    forged["entry_hash"] = entry_hash(table, n, str(forged["prev_hash"]), values)
    _insert(store, table, forged)
    code, output = store.verify()
    assert code == 1, output
    line = _break_line(output)
    assert f"{table} entry #{n + 1}" in line and "inserted, deleted or reordered" in line


@pytest.mark.parametrize("table", TABLES)
def test_reordered_entries_are_named(store: Store, table: str) -> None:
    n = _middle(store, table)
    store.drop_triggers()
    store.sql(
        f"UPDATE {table} SET chain_seq = -1 WHERE chain_seq = {n}",
        f"UPDATE {table} SET chain_seq = {n} WHERE chain_seq = {n + 1}",
        f"UPDATE {table} SET chain_seq = {n + 1} WHERE chain_seq = -1",
    )
    code, output = store.verify()
    assert code == 1, output
    assert f"{table} entry #{n} " in _break_line(output)


def test_a_rewritten_chain_is_caught_only_by_a_recorded_head(store: Store) -> None:
    """The honest limit: whoever recomputes every later hash (and the head) passes
    ``verify``; a head recorded outside the database does not let it through."""
    recorded = store.head()
    table = "ledger_entries"
    store.drop_triggers()
    store.sql(f"UPDATE {table} SET amount = amount + 0.5 WHERE chain_seq = 2")
    prev = GENESIS
    statements = []
    for r in store.rows(table):
        values = {name: r[name] for name in CHAINED_FIELDS[table]}
        digest = entry_hash(table, int(r["chain_seq"]), prev, values)
        statements.append(
            f"UPDATE {table} SET prev_hash = '{prev}', entry_hash = '{digest}' "
            f"WHERE id = '{r['id']}'"
        )
        prev = digest
    statements.append(f"UPDATE chain_heads SET entry_hash = '{prev}' WHERE name = '{table}'")
    store.sql(*statements)
    code, output = store.verify()
    assert code == 0, output  # undetectable without an anchor
    code, output = store.verify("--expect-head", recorded)
    assert code == 1, output
    line = _break_line(output)
    assert "ledger_entries entry #9" in line and "rewritten" in line


def test_bad_anchor_and_missing_database_are_usage_errors(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["ledger", "verify", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no database" in result.output
    result = runner.invoke(
        cli, ["ledger", "verify", "--data-dir", str(tmp_path), "--expect-head", "ledger:1:xyz"]
    )
    assert result.exit_code == 2 and "TABLE:SEQ:HASH" in result.output


# ----------------------------------------------------------------------------- writers
def test_concurrent_writers_keep_one_chain(store: Store) -> None:
    """Threads appending audit and ledger entries, and two other processes appending
    audit entries, all at once: one gap-free chain per table."""
    ctx = ServiceContext.open(store.settings, bootstrap=False)
    rows = store.rows("ledger_entries")
    round_id, party_id = str(rows[0]["round_id"]), str(rows[0]["party_id"])
    n_before = {t: len(store.rows(t)) for t in TABLES}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def audit(name: str) -> None:
        try:
            start.wait()
            for i in range(25):
                with ctx.db.session() as s:
                    record_audit(s, name, "probe", "test", f"{name}-{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def ledger() -> None:
        try:
            start.wait()
            for _ in range(10):
                with ctx.db.session() as s:
                    append_ledger_entries(s, round_id, [(party_id, "payout", 0.0)] * 3)
                    record_audit(s, "ledger-writer", "probe", "test", "x")
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    script = textwrap.dedent(
        f"""
        from coopml.service import Settings
        from coopml.service.context import ServiceContext, record_audit
        settings = Settings({str(store.settings.data_dir)!r},
                            database_url={store.settings.database_url!r},
                            secret_key=bytes(range(32)), operator_token="x" * 20)
        ctx = ServiceContext.open(settings, bootstrap=False)
        for i in range(20):
            with ctx.db.session() as s:
                record_audit(s, "process", "probe", "test", str(i))
        ctx.db.dispose()
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPML_")}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=audit, args=(f"t{i}",)) for i in range(3)]
    threads.append(threading.Thread(target=ledger))
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    ctx.db.dispose()
    assert not errors, errors
    assert len(store.rows("ledger_entries")) == n_before["ledger_entries"] + 30
    assert len(store.rows("audit_log")) == n_before["audit_log"] + 3 * 25 + 10 + 2 * 20
    code, output = store.verify()
    assert code == 0, output


# ----------------------------------------------------------------------------- migration
def _upgrade(url: str, data_dir: Path, revision: str) -> None:
    from alembic import command

    from coopml.service.storage.database import alembic_config

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_migration_backfills_existing_entries_in_order(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = request.getfixturevalue("pg_url") if dialect == "postgresql" else None
    settings = _settings(data, url)
    url = settings.resolved_database_url
    _upgrade(url, data, "0002")
    old = "2026-01-0{} 10:00:00"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO markets (id, name, task, description, created_at) "
                "VALUES ('m1', 'm', 'classification', '', :t)"
            ),
            {"t": old.format(1)},
        )
        conn.execute(
            text("INSERT INTO parties (id, market_id, name, created_at) VALUES ('p1','m1','a',:t)"),
            {"t": old.format(1)},
        )
        conn.execute(
            text(
                "INSERT INTO rounds (id, market_id, status, progress, message, config, "
                "created_at) VALUES ('r1', 'm1', 'completed', 1, '', '{}', :t)"
            ),
            {"t": old.format(1)},
        )
        for i, (day, kind, amount) in enumerate([(3, "payout", 0.25), (2, "fee_collected", 1.0)]):
            conn.execute(
                text(
                    "INSERT INTO ledger_entries (id, seq, round_id, party_id, kind, amount, "
                    "created_at) VALUES (:id, :seq, 'r1', 'p1', :kind, :amount, :t)"
                ),
                {"id": f"l{i}", "seq": i, "kind": kind, "amount": amount, "t": old.format(day)},
            )
        for i, day in enumerate([5, 4, 6]):
            conn.execute(
                text(
                    "INSERT INTO audit_log (id, at, actor, action, item_type, item_id, "
                    "request_id) VALUES (:id, :t, 'operator', 'x', 'market', 'm1', '')"
                ),
                {"id": f"a{i}", "t": old.format(day)},
            )
    engine.dispose()
    ctx = ServiceContext.open(settings, bootstrap=False)  # migrates to head
    ctx.db.dispose()
    store = Store(dialect, settings, ["--database-url", url], {"COOPML_DATABASE_URL": ""})
    assert [r["id"] for r in store.rows("ledger_entries")] == ["l1", "l0"]  # oldest first
    assert [r["id"] for r in store.rows("audit_log")] == ["a1", "a0", "a2"]
    code, output = store.verify()
    assert code == 0 and "verified 5 entries: ok" in output, output
    engine = create_engine(url)
    try:
        with engine.connect() as conn:  # the append-only triggers are back
            for table in TABLES:
                with pytest.raises(DBAPIError, match="append-only"):
                    conn.execute(text(f"UPDATE {table} SET id = id"))
                conn.rollback()
            names = {c["name"] for c in inspect(conn).get_unique_constraints("audit_log")}
            assert "uq_audit_log_chain_seq" in names
    finally:
        engine.dispose()


def test_verify_while_writers_append(store: Store) -> None:
    """No false alarm from entries committed while ``verify`` reads."""
    from coopml.service.domain.ledger import verify_chains

    ctx = ServiceContext.open(store.settings, bootstrap=False)
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
        for _ in range(5):
            with ctx.db.session() as s:
                result = verify_chains(s)
            assert result.ok, [str(b) for b in result.breaks]
    finally:
        stop.set()
        writer.join(30)
        ctx.db.dispose()
