"""``coopml keys rotate``: a new blob key, every blob re-encrypted, the old key retired."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, fail
from coopml.cli.ledger import DataDirOpt, service_settings

app = typer.Typer(help="The key that encrypts the blob store.", no_args_is_help=True)


@app.command()
def rotate(
    data_dir: DataDirOpt = None,
    new_key_file: Annotated[
        Path | None,
        typer.Option(
            "--new-key-file",
            help="Where to write the new key when the current one comes from "
            "COOPML_SECRET_KEY (required then); set the variable to its contents before "
            "restarting.",
        ),
    ] = None,
    abort: Annotated[
        bool,
        typer.Option(
            "--abort",
            help="Throw away an interrupted rotation that has not reached its switch point.",
        ),
    ] = False,
) -> None:
    """Re-encrypt every blob under a new key and retire the old one.

    Stop `coopml serve` and every `coopml worker` first. Interrupted, it is resumed by
    running it again (nothing is switched before every blob is re-encrypted).
    """
    from coopml.service.storage.keys import KeyRotationError, abort_rotation, rotate_key

    settings = service_settings(data_dir)
    if abort:
        try:
            had = abort_rotation(settings.data_dir)
        except KeyRotationError as exc:
            raise fail(str(exc)) from None
        console.print("staged rotation removed" if had else "no rotation in progress")
        return
    if not settings.data_dir.is_dir():
        raise fail(f"no data directory at {settings.data_dir}")
    try:
        report = rotate_key(settings, new_key_file=new_key_file)
    except (KeyRotationError, ValueError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"{'resumed and finished' if report.resumed else 'rotated'}: {report.n_blobs} blobs "
        f"re-encrypted; key {report.old_fingerprint} retired, new key {report.new_fingerprint} "
        f"in {report.key_file}",
        highlight=False,
        soft_wrap=True,
    )
    if new_key_file is not None and settings.secret_key is not None:
        console.print(
            f"set COOPML_SECRET_KEY to the contents of {report.key_file} before restarting",
            highlight=False,
            soft_wrap=True,
        )
