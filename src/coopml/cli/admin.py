"""``coopml admin``: maintenance of a deployment, run where its data directory lives.

``coopml admin rotate-operator-token`` issues a new operator token, revokes the old one
at once (a running server looks tokens up in the database on every request, so it needs
no restart) and writes the new one to ``DATA_DIR/operator.token`` (0600).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, fail

app = typer.Typer(
    name="admin",
    help="Maintain a deployment from the machine that holds its data directory.",
    no_args_is_help=True,
)

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory of the deployment. Default: $COOPML_DATA_DIR or ./coopml-data.",
    ),
]


@app.command("rotate-operator-token")
def rotate_operator_token_command(
    data_dir: DataDirOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the new token (for scripts).")
    ] = False,
) -> None:
    """Give the operator a new API token and revoke the old one at once.

    The new token is written to DATA_DIR/operator.token (0600); a running server needs
    no restart. When the token comes from COOPML_OPERATOR_TOKEN, set that variable to a
    new value and restart the server instead (the old token is revoked at start).
    """
    from coopml.service.context import ServiceContext
    from coopml.service.settings import Settings

    try:
        settings = Settings.from_env(data_dir)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if settings.operator_token:
        raise fail(
            "the operator token comes from COOPML_OPERATOR_TOKEN: set it to a new value and "
            "restart 'coopml serve' (the old token is revoked at start)"
        )
    if settings.database_url is None and not (settings.data_dir / "coopml.db").exists():
        raise fail(f"no coopml deployment in {settings.data_dir} (no coopml.db)")
    try:
        ctx = ServiceContext.open(settings, bootstrap=False)
    except Exception as exc:  # database unreachable, bad key, rotation pending, ...
        raise fail(f"cannot open the deployment: {exc}") from None
    try:
        token, path = ctx.rotate_operator_token()
    finally:
        ctx.db.dispose()
    if quiet:
        typer.echo(token)
        return
    console.print(
        f"new operator token written to {path} (0600); the old token no longer works",
        soft_wrap=True,
        highlight=False,
    )
    console.print(f"use it: export COOPML_TOKEN=$(cat {path})", soft_wrap=True, highlight=False)
