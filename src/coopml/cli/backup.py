"""``coopml backup`` and ``coopml restore``: one archive with a consistent snapshot of
the database, the encrypted blob store and (when it is a file) the key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, err_console, fail
from coopml.cli.ledger import DatabaseUrlOpt, DataDirOpt, service_settings


def backup(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The archive to write (.tar.gz; must not exist)."),
    ],
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
    exclude_key: Annotated[
        bool,
        typer.Option(
            "--exclude-key",
            help="Leave the key file out of the archive (keep the key elsewhere; restoring "
            "then needs --key-file or COOPML_SECRET_KEY).",
        ),
    ] = False,
) -> None:
    """Back up a deployment while it runs: database snapshot, blobs and key."""
    from coopml.service.storage.backup import BackupError, create_backup
    from coopml.service.storage.keys import KeyRotationError

    settings = service_settings(data_dir, database_url)
    try:
        report = create_backup(settings, out, include_key=not exclude_key)
    except (BackupError, KeyRotationError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"backup written to {report.path} ({report.size_bytes / 1e6:.1f} MB): "
        f"{report.database} database at revision {report.revision}, {report.n_blobs} blobs"
        + (
            f", files: {', '.join(f.removeprefix('files/') for f in report.files)}"
            if report.files
            else ""
        ),
        highlight=False,
        soft_wrap=True,
    )
    for head in report.chain_heads:
        console.print(f"chain head: {head}", highlight=False, soft_wrap=True)
    fp = report.key_fingerprint
    if report.key == "included":
        console.print(
            f"key: included (fingerprint {fp}); the archive decrypts the data: keep it as "
            "secret as the data itself",
            highlight=False,
            soft_wrap=True,
        )
    elif report.key == "excluded":
        console.print(
            f"key: NOT included (--exclude-key; fingerprint {fp}); restoring needs it "
            "(--key-file or COOPML_SECRET_KEY)",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"key: external (COOPML_SECRET_KEY, fingerprint {fp}), NOT in the archive; "
            "keep it safe: restoring needs it",
            highlight=False,
            soft_wrap=True,
        )


def restore(
    archive: Annotated[Path, typer.Argument(help="An archive written by `coopml backup`.")],
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="The new data directory (must not exist, or be empty)."),
    ],
    database_url: DatabaseUrlOpt = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="The key, for an archive made without it (it is written into the new data "
            "directory); or set COOPML_SECRET_KEY.",
        ),
    ] = None,
) -> None:
    """Restore a backup into a new data directory, migrate it and check it.

    A PostgreSQL backup goes into the empty database named by --database-url or
    COOPML_DATABASE_URL (pg_restore must be on PATH).
    """
    from coopml.service.storage.backup import BackupError, restore_backup

    if not archive.is_file():
        raise fail(f"no archive at {archive}")
    settings = service_settings(data_dir, database_url)
    try:
        report = restore_backup(archive, settings, key_file=key_file)
    except (BackupError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"restored into {report.data_dir}: {report.database} database, now at revision "
        f"{report.revision}; {report.n_blobs} blobs; key: "
        + ("secret.key in the data directory" if report.key == "file" else "COOPML_SECRET_KEY"),
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"checked: {report.n_entries_verified} ledger and audit-log entries, the chain heads "
        "recorded in the backup, and every blob the database names",
        highlight=False,
        soft_wrap=True,
    )
    if not report.ok:
        for problem in report.problems[:10]:
            err_console.print(f"[bold red]problem:[/] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    console.print("restore ok", highlight=False)
