"""``coopml fl``: coopetitive federated learning with strategic synthetic data."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import console, fail
from coopml.config import ConfigError

app = typer.Typer(
    name="fl",
    help="Coopetitive federated learning: synthetic-data games, FedAvg, redistribution.",
    no_args_is_help=True,
)

ConfigArg = Annotated[
    Path,
    typer.Argument(
        help="TOML job: a bundled dataset split ([data]) or one CSV/Parquet file per "
        "organisation ([[parties]] + [validation]); see examples/fl_digits.toml and "
        "examples/fl_parties.toml."
    ),
]
OutOpt = Annotated[Path, typer.Option(help="Output folder.")]


@contextmanager
def _bar(label: str) -> Iterator[Callable[[int, int], None]]:
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _png(fig: object, path: Path) -> None:
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    fig.savefig(path, format="png", dpi=110)


@app.command("simulate")
def simulate_command(config: ConfigArg, out: OutOpt = Path("out/fl")) -> None:
    """Run every strategy: writes results.json, accuracy.png and utilities.png to OUT."""
    from coopml.federated.config import load_fl_config
    from coopml.federated.simulation import prepare, simulate
    from coopml.plots.federated import plot_accuracy_per_round, plot_utilities_transfers

    try:
        cfg = load_fl_config(config)
        with console.status("preparing") as status:
            setup = prepare(cfg, progress=lambda msg: status.update(msg))
        with _bar("rounds") as progress:
            result = simulate(cfg, setup=setup, progress=progress)
    except (ConfigError, ValueError, TypeError, ImportError) as exc:
        raise fail(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.to_dict(), indent=2))
    _png(plot_accuracy_per_round(result), out / "accuracy.png")
    if "mechanism" in result.strategies:
        _png(plot_utilities_transfers(result), out / "utilities.png")
    table = Table(title="Strategies", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = ["strategy", "welfare", "measured", "final acc", "synthetic/round", "in (min)"]
    certified = any(s.max_deviation_gain is not None for s in result.strategies.values())
    if certified:
        columns += ["max dev. gain", "converged"]
    for column in columns:
        table.add_column(column, justify="right" if column != "strategy" else "left")
    for name, s in result.strategies.items():
        taking_part = s.participants.sum(axis=1)
        sampled = s.sampled.sum(axis=1) if s.sampled is not None else taking_part
        worst = int(s.participation_per_round.argmin())
        row = [
            escape(name),
            f"{s.social_welfare:.4g}",
            f"{s.social_welfare_measured:.4g}",
            f"{s.final_accuracy:.3f}",
            f"{s.synthetic_per_round.mean():.0f}",
            f"{taking_part[worst]}/{sampled[worst]}",
        ]
        if certified:
            gain, converged = s.max_deviation_gain, s.converged
            row.append("-" if gain is None else f"{gain:.2g}")
            row.append("-" if converged is None else ("yes" if converged else "NO"))
        table.add_row(*row)
    print_table(table, console)
    if result.config.get("game", {}).get("outside_option", "none") != "none":
        console.print(
            "in (min): organisations taking part of those sampled, in the round with the "
            "fewest; the others left for their outside option"
        )
    console.print(
        f"kappa {result.kappa:.3f}   transfers sum {result.transfers_sum:.1e}   "
        f"individually rational: {result.individually_rational}   "
        f"runtime {result.runtime_s:.1f} s"
    )
    console.print(f"results written to {out}/results.json")


@app.command("sweep")
def sweep_command(config: ConfigArg, out: OutOpt = Path("out/fl_sweep")) -> None:
    """Sweep competition intensity and label skew: writes sweep.json and PNGs to OUT."""
    from coopml.federated.config import load_fl_config
    from coopml.federated.sweep import run_sweeps
    from coopml.plots.federated import plot_sweep

    try:
        cfg = load_fl_config(config)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
            tasks: dict[str, object] = {}

            def progress(parameter: str, done: int, total: int) -> None:
                if parameter not in tasks:
                    tasks[parameter] = bar.add_task(f"sweep {parameter}", total=total)
                bar.update(tasks[parameter], completed=done, total=total)  # type: ignore[arg-type]

            results = run_sweeps(cfg, progress=progress)
    except (ConfigError, ValueError, TypeError, ImportError) as exc:
        raise fail(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    doc = {name: r.to_dict() for name, r in results.items()}
    (out / "sweep.json").write_text(json.dumps(doc, indent=2))
    for name, r in results.items():
        _png(plot_sweep(r), out / f"sweep_{name}.png")
        table = Table(
            title=f"Sweep over {name}", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False
        )
        table.add_column("strategy")
        for v in r.values:
            table.add_column(f"{name}={v:g}", justify="right")
        for k, strategy in enumerate(r.strategies):
            table.add_row(strategy, *(f"{w:.3f}" for w in r.social_welfare[k]))
        print_table(table, console)
    console.print(f"sweeps written to {out}/sweep.json")
