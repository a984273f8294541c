"""``coopml value CONFIG.toml``: value every party's data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import (
    ExecutorOpt,
    NJobsOpt,
    QuietOpt,
    RayAddressOpt,
    app,
    coalition_progress,
    console,
    err_console,
    fail,
    print_warnings,
)
from coopml.config import ConfigError, ValueConfig, load_config
from coopml.reports.summary import sig
from coopml.valuation import SMALL_PARTY, ValueReport, run_value_job


@app.command("value")
def value_command(
    config: Annotated[Path, typer.Argument(help="TOML job file (see examples/).")],
    out: Annotated[Path | None, typer.Option(help="Write the full report as JSON here.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG bar chart of the values here.")
    ] = None,
    executor: ExecutorOpt = None,
    n_jobs: NJobsOpt = None,
    ray_address: RayAddressOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Value each party's data with the solution concepts named in the config."""
    try:
        cfg, base_dir = load_config(config, ValueConfig)
        if executor is not None or n_jobs is not None or ray_address is not None:
            from coopml.config import with_executor

            if ray_address is not None and executor is None:
                executor = "ray"
            cfg = with_executor(cfg, kind=executor, n_jobs=n_jobs, address=ray_address)
        try:
            with warnings.catch_warnings(record=True) as caught:  # printed below, once each
                warnings.simplefilter("always")
                with coalition_progress(quiet) as progress:
                    report = run_value_job(cfg, base_dir, progress=progress)
        except KeyboardInterrupt:  # Ctrl-C (SIGINT)
            _say(_interrupted(cfg, base_dir))
            raise typer.Exit(code=130) from None
        except SystemExit:  # SIGTERM, turned into SystemExit(143) by coalition_progress
            _say(_interrupted(cfg, base_dir))
            raise
    except (ConfigError, OSError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    listed = list(report.info.get("warnings", []))
    others = [str(w.message) for w in caught if not SMALL_PARTY.search(str(w.message))]
    print_warnings([*listed, *others])
    print_table(_table(report), console)
    for result in report.results.values():
        if result.stderr is not None:
            console.print(result.summary(), highlight=False)
    if report.game is not None:
        info = report.game.info
        console.print(
            f"{report.game.n_players} part{'y' if report.game.n_players == 1 else 'ies'}, "
            f"{report.game.table.size} coalitions, "
            f"cache {info.get('cache')}, {info.get('seconds', 0.0):.2f} s"
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2))
        console.print(f"report written to {out}")
    if plot is not None:
        from coopml.plots import plot_values

        plot.parent.mkdir(parents=True, exist_ok=True)
        unit = str(report.info.get("scorer", "score")).replace("_", " ")
        plot_values(list(report.results.values()), unit=unit).savefig(plot, dpi=120)
        console.print(f"chart written to {plot}")


def _table(report: ValueReport) -> Table:
    unit = str(report.info.get("scorer", "score")).replace("_", " ")
    table = Table(
        title=f"Value of each party's data (contribution to {unit}, on its 0-1 scale)",
        title_justify="left",
    )
    table.add_column("party", no_wrap=True)
    table.add_column("rows", justify="right", no_wrap=True)
    for method, result in report.results.items():
        label = method + (" ± se" if result.stderr is not None else "")
        table.add_column(label, justify="right", no_wrap=True)
    for i, (name, size) in enumerate(zip(report.names, report.n_samples, strict=True)):
        cells = []
        for result in report.results.values():
            cell = sig(float(result.values[i]), signed=True)
            if result.stderr is not None:
                cell += f" ± {sig(float(result.stderr[i]))}"
            cells.append(cell)
        table.add_row(escape(name), str(size), *cells)
    return table


def _interrupted(cfg: ValueConfig, base_dir: Path) -> str:
    """The line printed on an interrupt: what was kept, where, and how to resume."""
    v = cfg.valuation
    if v.cache_dir is None:
        return (
            "interrupted: nothing was kept (no cache_dir); set [valuation] cache_dir = "
            '"cache" in the job file to save progress, so that rerunning resumes'
        )
    kept = []
    if any(m != "monte_carlo" for m in v.methods):
        kept.append("the coalition values evaluated so far")
    if "monte_carlo" in v.methods:
        kept.append("the Monte Carlo estimator's state")
    return (
        f"interrupted: saved {' and '.join(kept)} in {base_dir / v.cache_dir}; "
        "rerun the same command to resume"
    )


def _say(line: str) -> None:
    """One unwrapped line on stderr, printed as it is (no markup)."""
    err_console.print(line, markup=False, highlight=False, soft_wrap=True)
