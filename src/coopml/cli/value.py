"""``coopml value CONFIG.toml``: value every party's data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from coopml.cli._root import app, coalition_progress, console, fail
from coopml.config import ConfigError, ValueConfig, load_config
from coopml.valuation import ValueReport, run_value_job


@app.command("value")
def value_command(
    config: Annotated[Path, typer.Argument(help="TOML job file (see examples/).")],
    out: Annotated[Path | None, typer.Option(help="Write the full report as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG bar chart of the values here.")
    ] = None,
    executor: Annotated[
        str | None, typer.Option(help="Override the executor: serial, joblib or ray.")
    ] = None,
    n_jobs: Annotated[int | None, typer.Option(help="Override the worker count.")] = None,
) -> None:
    """Value each party's data with the solution concepts named in the config."""
    try:
        cfg, base_dir = load_config(config, ValueConfig)
        overrides = {k: v for k, v in {"executor": executor, "n_jobs": n_jobs}.items() if v}
        if overrides:
            from coopml.config import parse_config

            raw = cfg.model_dump()
            raw["valuation"].update(overrides)
            cfg = parse_config(raw, source=str(config))
        with coalition_progress() as progress:
            report = run_value_job(cfg, base_dir, progress=progress)
    except (ConfigError, FileNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    console.print(_table(report))
    if report.game is not None:
        info = report.game.info
        console.print(
            f"{report.game.n_players} parties, {report.game.table.size} coalitions, "
            f"cache {info.get('cache')}, {info.get('seconds', 0.0):.2f} s"
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {out}")
    if plot is not None:
        from coopml.plots import plot_values

        plot.parent.mkdir(parents=True, exist_ok=True)
        plot_values(list(report.results.values())).savefig(plot, dpi=120)
        console.print(f"chart written to {plot}")


def _table(report: ValueReport) -> Table:
    table = Table(title="Value of each party's data", title_justify="left")
    table.add_column("party")
    table.add_column("rows", justify="right")
    for method, result in report.results.items():
        table.add_column(method + (" ± se" if result.stderr is not None else ""), justify="right")
    for i, (name, size) in enumerate(zip(report.names, report.n_samples, strict=True)):
        cells = []
        for result in report.results.values():
            cell = f"{result.values[i]:+.4f}"
            if result.stderr is not None:
                cell += f" ± {result.stderr[i]:.4f}"
            cells.append(cell)
        table.add_row(name, str(size), *cells)
    for method, result in report.results.items():
        if not result.converged:
            table.caption = f"{method} did not converge: {dict(result.info)}"
    return table
