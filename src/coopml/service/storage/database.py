"""Engine, sessions and migrations.

SQLite (the default, a file under the data directory) runs in WAL mode with a busy
timeout and foreign keys on; PostgreSQL is used when ``database_url`` names it. The
schema is created and upgraded by the Alembic scripts shipped in
``coopml/service/storage/migrations``, applied programmatically at start
(:func:`migrate`), under a file lock (SQLite) or an advisory lock (PostgreSQL) so that a
server and a worker starting together do not race.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from coopml.service.security import private_directory
from coopml.service.settings import Settings

__all__ = ["Database", "migrate"]

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x636F6F706D6C  # "coopml"


class Database:
    """An engine and a session factory for one deployment."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.resolved_database_url
        self.dialect = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.dialect == "sqlite":
            private_directory(settings.data_dir)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def ping(self) -> None:
        """Run a trivial query (raises when the database cannot be reached)."""
        with self.sessions() as s:
            s.execute(text("SELECT 1"))

    def migrate(self) -> None:
        """Bring the schema to the newest revision."""
        migrate(self.engine, self.settings.data_dir)

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config() -> Config:
    """An Alembic config built in code (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, lock_dir: Path) -> None:
    """Apply the shipped migrations up to ``head``."""
    cfg = alembic_config()
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_ID})
            conn.commit()
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_ID})
                conn.commit()
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with engine.connect() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
