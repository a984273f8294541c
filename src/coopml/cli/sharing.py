"""``coopml sharing``: should competing firms share their data?"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from coopml.cli.app import console, fail

app = typer.Typer(
    name="sharing",
    help="Strategic data sharing between competitors (Cournot/Bertrand, reconstructed model).",
    no_args_is_help=True,
)


@app.command("analyze", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def analyze_command(
    ctx: typer.Context,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Data sizes of the firms: --sizes N1 N2 [...].")
    ],
    gamma: Annotated[float, typer.Option(help="Product similarity in [0, 1].")],
    beta: Annotated[float, typer.Option(help="Learning-curve exponent (> 0); small = hard.")],
    market: Annotated[str, typer.Option(help="cournot or bertrand.")] = "cournot",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Profits with and without sharing, who agrees, and the Nash bargaining fractions."""
    from coopml.competition import analyze

    try:
        values = [float(v) for v in [sizes, *ctx.args]]
    except ValueError:
        raise fail(
            f"parameter 'sizes' must be numbers (--sizes N1 N2 ...); got {[sizes, *ctx.args]}"
        ) from None
    try:
        result = analyze(values, gamma=gamma, beta=beta, market=market)
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    table = Table(title="Data sharing between competitors", title_justify="left")
    for column in ("firm", "size", "profit alone", "profit shared", "agrees", "Nash fraction"):
        table.add_column(column, justify="right")
    full, bargain = result.full, result.bargain
    for i in range(full.sizes.size):
        table.add_row(
            str(i),
            f"{full.sizes[i]:g}",
            f"{full.profit_alone[i]:.6f}",
            f"{full.profit_shared[i]:.6f}",
            "yes" if full.agrees[i] else "no",
            f"{bargain.fractions[i]:.4f}",
        )
    console.print(table)
    console.print(
        f"full sharing: {'yes' if full.unanimous else 'no'}; Nash bargaining: "
        + ("agreement" if bargain.agreement else "no agreement (no sharing)")
    )
