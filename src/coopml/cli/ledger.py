"""``coopml ledger verify`` and ``coopml ledger head``: check the hash chains of the
ledger and the audit log straight in the database (no server needed), and print their
heads to record outside it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coopml.cli._root import console, err_console, fail

if TYPE_CHECKING:
    from coopml.service.settings import Settings
    from coopml.service.storage.database import Database

app = typer.Typer(
    help="Verify the hash chains of the ledger and the audit log; print their heads.",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the deployment (its SQLite database). Default: "
        "$COOPML_DATA_DIR or ./coopml-data.",
    ),
]
DatabaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the database (e.g. postgresql+psycopg://...). Default: "
        "$COOPML_DATABASE_URL, else the SQLite file in the data directory.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def service_settings(data_dir: Path | None, database_url: str | None = None) -> Settings:
    """Settings from ``--data-dir``/``--database-url`` and ``COOPML_*`` (exit 2 on errors)."""
    from coopml.service.settings import Settings

    try:
        return Settings.from_env(data_dir, database_url=database_url)
    except ValueError as exc:
        raise fail(str(exc)) from None


@contextmanager
def open_database(settings: Settings) -> Iterator[Database]:
    """The deployment's database, not migrated (read it as it is); exit 2 when missing."""
    from coopml.service.storage.database import Database

    if settings.database_url is None and not (settings.data_dir / "coopml.db").exists():
        raise fail(
            f"no database in {settings.data_dir} (no coopml.db; pass --data-dir, or "
            "--database-url / COOPML_DATABASE_URL for PostgreSQL)"
        )
    db = Database(settings)
    try:
        yield db
    finally:
        db.dispose()


def _schema_error(exc: Exception) -> typer.Exit:
    first = str(exc).splitlines()[0]
    return fail(
        "cannot read the hash chains (a database older than revision 0003? start "
        f"`coopml serve` or `coopml worker` once to migrate it): {first}"
    )


@app.command()
def verify(
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    expect_head: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-head",
            help="A head recorded earlier (TABLE:SEQ:HASH as `coopml ledger head` prints "
            "it, or a bare HASH; repeatable, or several separated by spaces or commas): the "
            "chain must still contain it.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every hash of the ledger's and the audit log's chains.

    Exit 0 when both are intact (and contain every --expect-head); exit 1 naming the
    first broken entry (table, sequence number, id, what is wrong) otherwise.
    """
    from sqlalchemy.exc import DBAPIError

    from coopml.service.domain.ledger import parse_anchors, verify_chains

    try:
        anchors = parse_anchors(expect_head or [])
    except ValueError as exc:
        raise fail(f"--expect-head: {exc}") from None
    settings = service_settings(data_dir, database_url)
    with open_database(settings) as db:
        try:
            with db.session() as s:
                result = verify_chains(s, anchors)
        except DBAPIError as exc:
            raise _schema_error(exc) from None
    if as_json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "n_entries": result.n_entries,
                    "chains": [
                        {
                            "table": r.table,
                            "n_entries": r.n_entries,
                            "head": f"{r.table}:{r.head_seq}:{r.head_hash}",
                            "ok": r.ok,
                        }
                        for r in result.reports
                    ],
                    "anchors_checked": result.anchors_checked,
                    "breaks": [
                        {
                            "table": b.table,
                            "chain_seq": b.chain_seq,
                            "id": b.entry_id,
                            "problem": b.problem,
                        }
                        for b in result.breaks
                    ],
                },
                indent=2,
            )
        )
    else:
        for r in result.reports:
            state = "intact" if r.ok else f"BROKEN ({len(r.breaks)} problem(s))"
            console.print(
                f"{r.table}: {r.n_entries} entries, chain {state}, head #{r.head_seq} "
                f"{r.head_hash}",
                highlight=False,
                soft_wrap=True,
            )
        if anchors:
            good = result.anchors_checked - len(result.anchor_breaks)
            console.print(f"recorded heads matched: {good} of {result.anchors_checked}")
        if result.ok:
            console.print(f"verified {result.n_entries} entries: ok", highlight=False)
        else:
            err_console.print(
                f"[bold red]first broken entry:[/] {result.breaks[0]}",
                highlight=False,
                soft_wrap=True,
            )
            for extra in result.breaks[1:10]:
                err_console.print(f"  also: {extra}", highlight=False, soft_wrap=True)
            if len(result.breaks) > 10:
                err_console.print(f"  ... and {len(result.breaks) - 10} more")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def head(
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print each chain's head as TABLE:SEQ:HASH, one a line: record them outside the
    database (the parties, a notary, a log) and check later with `verify --expect-head`."""
    from sqlalchemy.exc import DBAPIError

    from coopml.service.domain.ledger import ChainError, chain_heads

    settings = service_settings(data_dir, database_url)
    with open_database(settings) as db:
        try:
            with db.session() as s:
                heads = chain_heads(s)
        except DBAPIError as exc:
            raise _schema_error(exc) from None
        except ChainError as exc:
            raise fail(str(exc)) from None
    if as_json:
        print(json.dumps([{"table": h.table, "seq": h.seq, "hash": h.entry_hash} for h in heads]))
    else:
        for h in heads:
            print(h)
