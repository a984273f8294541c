"""Printing Rich tables whole: at the terminal's width on a terminal, and at the table's
own width when the output is a file or a pipe (never truncated to 80 columns)."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def print_table(table: Table, console: Console) -> None:
    """Print ``table`` on ``console``; when the output is not a terminal, as wide as the
    table needs so that no cell is cut or folded."""
    if console.is_terminal:
        console.print(table)
        return
    needed = Measurement.get(console, console.options.update_width(100_000), table).maximum
    if needed <= console.width:
        console.print(table)
        return
    wide = Console(
        file=console.file,
        width=needed,
        color_system=console.color_system,  # type: ignore[arg-type]
        force_terminal=False,
        quiet=console.quiet,
    )
    wide.print(table)
