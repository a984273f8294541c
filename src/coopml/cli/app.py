"""The root typer application and the shared console."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from coopml import __version__

app = typer.Typer(
    name="coopml",
    help="coopml: value data, run collaborative ML markets and analyse data-sharing games.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"coopml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """coopml: value data, run collaborative ML markets and analyse data-sharing games."""


def fail(message: str) -> typer.Exit:
    """Print an error for the user (no traceback) and return the exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code=2)


def main() -> None:
    """Console-script entry point."""
    app()
