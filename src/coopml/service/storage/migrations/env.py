"""Alembic environment: runs on the connection handed over by
:func:`coopml.service.storage.database.migrate` (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from coopml.service.storage.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Run the migrations Alembic asked for."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # e.g. `alembic revision --autogenerate` during development
    url = config.get_main_option("sqlalchemy.url") or "sqlite://"
    with create_engine(url).connect() as conn:
        _run(conn)


try:
    context.config  # noqa: B018 - only present when Alembic runs this file
except AttributeError:  # imported outside Alembic (e.g. pytest's doctest collection)
    pass
else:
    main()
