"""``coopml contract``: design optimal contract menus paid with models.

``coopml contract solve CONFIG.toml [--json] [--out DIR]`` solves the first-moment
program of Wang, Wu, Liu & Low (AAAI 2025) for the config's cost types; ``coopml
contract sweep CONFIG.toml --n 2:40:2 --p1 0.1:0.9:9`` solves the two-type program over
a grid of ``(N, p_1)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import console, err_console, fail
from coopml.contracts import ContractError, ContractResult
from coopml.contracts.config import ContractConfigError, load_contract_config, solve_config

app = typer.Typer(
    name="contract",
    help="Optimal contract menus paid with models (Wang, Wu, Liu & Low, AAAI 2025).",
    no_args_is_help=True,
)


@app.command("solve")
def solve_command(
    config: Annotated[Path, typer.Argument(help="TOML contract file (see examples/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[
        Path | None, typer.Option(help="Write result.json, menu.csv and PNG figures here.")
    ] = None,
) -> None:
    """Solve for the optimal menu of contracts and verify it."""
    try:
        cfg = load_contract_config(config)
        result = solve_config(cfg)
    except (ContractConfigError, ContractError, FileNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        print(json.dumps(result.to_dict()))
    else:
        print_table(_menu(result), console)
        console.print(
            f"expected model value {result.expected_model_value:.4f}, expected accuracy "
            f"{result.expected_accuracy:.6f}; {result.info.get('n_outcomes')} outcomes "
            f"({result.info.get('outcomes')}), {result.info.get('seconds', 0.0):.2f} s"
        )
        console.print("binding: " + "; ".join(f"{k} {v}" for k, v in result.binding.items() if v))
    if out is not None:
        _write(cfg.build_problem(), result, out)
        if not as_json:
            console.print(f"results written to {out}")
    if not result.verified:
        err_console.print(f"[bold red]not verified:[/] {result.verification.to_dict()}")
        raise typer.Exit(code=1)


@app.command("sweep")
def sweep_command(
    config: Annotated[Path, typer.Argument(help="TOML contract file with two costs.")],
    n: Annotated[str, typer.Option(help="Participants as START:STOP:STEP (inclusive).")] = "2:20:2",
    p1: Annotated[str, typer.Option(help="p_1 grid as START:STOP:COUNT.")] = "0.1:0.9:9",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write sweep.csv and surfaces here.")] = None,
) -> None:
    """Two-type surfaces over (N, p_1)."""
    from coopml.contracts.sweep import two_type_sweep

    try:
        cfg = load_contract_config(config)
        n_values = _int_range(n)
        p_values = _float_grid(p1)
        sweep = two_type_sweep(
            cfg.costs,
            n_values,
            p_values,
            curve=cfg.build_curve(),
            valuation=cfg.build_problem().valuation,
        )
    except (ContractConfigError, ContractError, FileNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    frame = sweep.to_dataframe()
    if as_json:
        print(json.dumps(sweep.to_dict()))
    else:
        console.print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if out is not None:
        from coopml.plots.contracts import plot_two_type_surface

        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "sweep.csv", index=False)
        for quantity in ("contributions", "rewards", "utilities"):
            plot_two_type_surface(sweep, quantity).savefig(out / f"surface_{quantity}.png", dpi=90)


def _int_range(text: str) -> list[int]:
    try:
        start, stop, step = (int(x) for x in text.split(":"))
    except ValueError:
        raise ValueError(f"option '--n' must be START:STOP:STEP integers; got {text!r}") from None
    if start < 1 or step < 1 or stop < start:
        raise ValueError(f"option '--n' must have 1 <= START <= STOP and STEP >= 1; got {text!r}")
    return list(range(start, stop + 1, step))


def _float_grid(text: str) -> list[float]:
    try:
        a, b, k = text.split(":")
        grid = np.linspace(float(a), float(b), int(k))
    except ValueError:
        raise ValueError(f"option '--p1' must be START:STOP:COUNT; got {text!r}") from None
    return grid.tolist()


def _menu(result: ContractResult) -> Table:
    table = Table(title="Optimal contract menu", title_justify="left")
    for col in ("type", "cost", "prior", "m", "t", "t̄", "u", "f", "rent"):
        table.add_column(col, justify="right")
    for i in range(result.costs.size):
        table.add_row(
            str(i + 1) + ("" if result.served[i] else " (out)"),
            f"{result.costs[i]:g}",
            f"{result.prior[i]:.3f}",
            f"{result.contributions[i]:.2f}",
            f"{result.rewards[i]:.3f}",
            f"{result.max_rewards[i]:.3f}",
            f"{result.utilities[i]:.3f}",
            f"{result.reservation_utilities[i]:.3f}",
            f"{result.information_rents[i]:.3f}",
        )
    table.caption = "verified" if result.verified else "NOT verified"
    return table


def _write(problem: object, result: ContractResult, out: Path) -> None:
    from coopml.contracts import ContractProblem
    from coopml.plots.contracts import (
        plot_contract_menu,
        plot_contribution_bars,
        plot_reward_distributions,
    )

    assert isinstance(problem, ContractProblem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    result.to_dataframe().to_csv(out / "menu.csv", index=False)
    plot_contract_menu(result).savefig(out / "menu.png", dpi=90)
    plot_contribution_bars(result).savefig(out / "contributions.png", dpi=90)
    if problem.n_outcomes <= 200_000:
        plot_reward_distributions(problem, result).savefig(out / "rewards.png", dpi=90)
