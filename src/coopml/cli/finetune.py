"""``coopml finetune``: the generalist / specialist fine-tuning game (seed 002).

``solve`` prints the Pareto-optimal revenue shares and every bargaining solution
(``--json`` for the machine-readable interface); ``plot`` writes the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import console, fail

app = typer.Typer(
    name="finetune",
    help="Fine-tuning games: bargain over the revenue share between a generalist and specialists.",
    no_args_is_help=True,
)


@app.command("solve")
def solve_command(
    c0: Annotated[float, typer.Option(help="Generalist's quadratic cost coefficient c0 > 0.")],
    c1: Annotated[
        float | None, typer.Option(help="Specialist's quadratic cost coefficient c1 > 0.")
    ] = None,
    revenue: Annotated[
        float | None, typer.Option(help="Revenue per unit of performance r > 0.")
    ] = None,
    specialists: Annotated[
        Path | None,
        typer.Option(
            help="JSON/TOML file listing specialists (name, quadratic, linear, fixed, higher, "
            "revenue); missing quadratic/revenue default to --c1/--revenue."
        ),
    ] = None,
    shares: Annotated[
        str, typer.Option(help="'common' (one share for all domains) or 'per_domain'.")
    ] = "common",
    n_grid: Annotated[
        int | None,
        typer.Option(help="Shares searched (default 2001 common, 21 per axis per domain)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Solve the game: subgame-perfect equilibria, Pareto-optimal shares, bargaining solutions."""
    from coopml.finetuning import bargain, load_game

    try:
        game = load_game(c0, c1=c1, revenue=revenue, specialists=specialists)
        result = bargain(game, shares=shares, n_grid=n_grid)  # type: ignore[arg-type]
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
        return
    table = Table(
        title="Bargaining over the revenue share δ (to the generalist)", title_justify="left"
    )
    for column in (
        "solution",
        "δ",
        "U generalist",
        "U specialists",
        "α0",
        "α specialists",
        "regimes",
    ):
        table.add_column(column, justify="left" if column in ("solution", "regimes") else "right")
    for name, sol in result.solutions.items():
        eq = sol.equilibrium
        table.add_row(
            name + ("" if sol.pareto_optimal else " (dominated)"),
            ", ".join(f"{d:.4f}" for d in (eq.delta[:1] if sol.common else eq.delta)),
            f"{eq.u_generalist:.4f}",
            ", ".join(f"{u:.4f}" for u in eq.u_specialists),
            f"{eq.alpha0:.4f}",
            ", ".join(f"{a:.4f}" for a in eq.alpha),
            ", ".join(eq.regimes),
        )
    print_table(table, console)
    if result.shares == "common":
        console.print(f"Pareto-optimal shares: {result.pareto_set.format(4)}")
    vi = result.integrated
    console.print(
        f"vertically integrated benchmark: welfare {vi.welfare:.4f}, α0 {vi.alpha0:.4f}; "
        f"recommended split (Nash): δ = {result.recommended.delta}"
    )


@app.command("plot")
def plot_command(
    out: Annotated[Path, typer.Option(help="Directory for the finetuning_*.png figures.")],
    c0: Annotated[float, typer.Option(help="c0 of the utility-curve figure.")] = 1.0,
    c1: Annotated[float, typer.Option(help="c1 of the utility-curve figure.")] = 2.0,
    revenue: Annotated[float, typer.Option(help="r of the utility-curve figure.")] = 1.0,
    n_regime: Annotated[int, typer.Option(help="Grid points per axis of the regime map.")] = 25,
    n_grid: Annotated[int, typer.Option(help="Shares searched on the utility curves.")] = 2001,
) -> None:
    """Write the utility-possibility curve, shares against c1/c0, regime map and the
    disconnected-Pareto example as PNG files."""
    from coopml.plots.finetuning import write_finetuning_figures

    try:
        paths = write_finetuning_figures(
            out, c0=c0, c1=c1, revenue=revenue, n_regime=n_regime, n_grid=n_grid
        )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    for path in paths:
        console.print(f"figure written to {path}")
