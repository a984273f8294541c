"""The root typer application and the shared console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
    """Print an error for the user (no traceback) and return the exit to raise.

    ``message`` is printed as it is: square brackets (``[[parties]]``, ``[validation]``)
    are escaped, never read as Rich markup.
    """
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code=2)


@contextmanager
def coalition_progress() -> Iterator[Callable[[int, int], None]]:
    """A progress bar over coalition evaluations; yields the ``progress(done, total)``
    callback that the library's table computations accept."""
    columns = (TextColumn("[bold]coalitions"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("coalitions", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
