"""``coopml sharing``: should competing firms share their data?

* ``analyze``: profits with and without sharing, who agrees, Nash bargaining, side
  payments and coalition structures, for given data sizes and similarity;
* ``phase-diagram``: phase diagram and sharing-fraction heat map (PNG + CSV);
* ``fit-curve``: measure learning curves on real data (TOML config) and analyse on them.

The model is the reconstruction of Tsoy & Konstantinov (NeurIPS 2023) in
:mod:`coopml.competition`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import console, fail

app = typer.Typer(
    name="sharing",
    help="Strategic data sharing between competitors (Cournot/Bertrand, reconstructed model).",
    no_args_is_help=True,
)

_VARIADIC = {"allow_extra_args": True, "ignore_unknown_options": True}

MarketOpt = Annotated[str, typer.Option(help="cournot or bertrand.")]
QualityOpt = Annotated[
    str, typer.Option(help="How model quality enters the market: cost or demand.")
]
KappaOpt = Annotated[
    float, typer.Option(help="Value of quality: cost (or price) change per unit of error.")
]
MarginOpt = Annotated[float, typer.Option(help="Demand intercept minus base cost, a - c0 > 0.")]


def _sizes(first: str | None, extra: list[str]) -> list[float] | None:
    if first is None:
        if extra:
            raise fail(f"unexpected arguments: {extra}")
        return None
    try:
        return [float(v) for v in [first, *extra]]
    except ValueError:
        raise fail(
            f"parameter 'sizes' must be numbers (--sizes N1 N2 ...); got {[first, *extra]}"
        ) from None


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def _print_analysis(result: Any, names: list[str] | None = None) -> None:
    full, bargain, tu = result.full, result.bargain, result.transferable
    table = Table(title="Data sharing between competitors", title_justify="left")
    columns = ("firm", "size", "profit alone", "profit shared", "agrees", "Nash fraction")
    for column in (*columns, "Nash profit", "TU payoff"):
        table.add_column(column, justify="right")
    for i in range(full.sizes.size):
        table.add_row(
            names[i] if names else str(i),
            f"{full.sizes[i]:g}",
            f"{full.profit_alone[i]:.6f}",
            f"{full.profit_shared[i]:.6f}",
            "yes" if full.agrees[i] else "no",
            f"{bargain.fractions[i]:.4g}",
            f"{bargain.profits[i]:.6f}",
            f"{tu.utilities[i]:.6f}",
        )
    print_table(table, console)
    console.print(
        f"full sharing: {'yes' if full.unanimous else 'no'}; Nash bargaining: "
        + ("agreement" if bargain.agreement else "no agreement (no sharing)")
        + f"; with side payments ({tu.method}): "
        + ("share" if tu.agreement else "no gain in joint profit")
    )
    alone, shared = result.alone, result.shared
    if hasattr(alone, "consumer_surplus"):
        console.print(
            f"consumer surplus {alone.consumer_surplus:.6f} -> {shared.consumer_surplus:.6f}, "
            f"welfare {alone.welfare:.6f} -> {shared.welfare:.6f} (no sharing -> full sharing)"
        )
    if result.structures is not None:
        for label, s in (("no transfers", result.structures), ("transfers", result.structures_tu)):
            core = ["; ".join(_fmt(p) for p in s.stable("core"))] or ["none"]
            console.print(f"core-stable sharing groups ({label}): {core[0] or 'none'}")
    if not result.verified:
        console.print(
            "[bold red]warning:[/] an equilibrium failed the deviation check "
            f"(gain {result.max_deviation_gain:.3g})"
        )
    console.print(f"[bold]decision:[/] {result.decision}")


def _fmt(partition: Any) -> str:
    return " ".join("{" + ",".join(map(str, g)) + "}" for g in partition)


@app.command("analyze", context_settings=_VARIADIC)
def analyze_command(
    ctx: typer.Context,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Data sizes of the firms: --sizes N1 N2 [...].")
    ],
    gamma: Annotated[float, typer.Option(help="Product similarity in [0, 1].")],
    beta: Annotated[float, typer.Option(help="Learning-curve exponent (> 0); small = hard.")],
    market: MarketOpt = "cournot",
    quality: QualityOpt = "cost",
    kappa: KappaOpt = 0.25,
    margin: MarginOpt = 1.0,
    rule: Annotated[
        str, typer.Option(help="Side-payment rule: nash, kalai_smorodinsky, egalitarian, ...")
    ] = "nash",
    plot: Annotated[
        Path | None, typer.Option(help="Write the profit-gain curves (PNG) here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Profits with and without sharing, who agrees, the Nash bargaining fractions, side
    payments and stable sharing groups."""
    from coopml.competition import analyze

    values = _sizes(sizes, ctx.args)
    assert values is not None  # --sizes is required
    try:
        result = analyze(
            values, gamma=gamma, beta=beta, market=market, quality=quality, kappa=kappa,
            margin=margin, rule=rule,
        )  # fmt: skip
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    if plot is not None:
        from coopml.competition import profit_gain_curves
        from coopml.plots.competition import plot_profit_gains

        top = 0.99 if market == "bertrand" else 1.0
        curves = profit_gain_curves(
            values, np.linspace(0, top, 101), beta, market, quality=quality, kappa=kappa,
            margin=margin, bargaining=len(values) == 2,
        )  # fmt: skip
        _save(plot_profit_gains(curves, gamma=gamma), plot)
    if as_json:
        print(json.dumps(result.to_dict()))
        return
    _print_analysis(result)
    if plot is not None:
        console.print(f"figure: {plot}")


@app.command("phase-diagram", context_settings=_VARIADIC)
def phase_diagram_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory for the PNG figures and the CSV.")],
    axis: Annotated[
        str, typer.Option(help="Second axis: beta (task hardness) or ratio (size ratio).")
    ] = "beta",
    sizes: Annotated[
        str | None,
        typer.Option("--sizes", help="Data sizes for --axis beta: --sizes N1 N2 [...]."),
    ] = None,
    beta: Annotated[float, typer.Option(help="Learning-curve exponent for --axis ratio.")] = 0.5,
    large: Annotated[float, typer.Option(help="Larger firm's size for --axis ratio.")] = 1000.0,
    n_gamma: Annotated[int, typer.Option(help="Grid points along gamma.")] = 200,
    n_y: Annotated[int, typer.Option(help="Grid points along the second axis.")] = 200,
    y_min: Annotated[
        float | None, typer.Option(help="Second axis from (default 0.05 for beta, 0.01 ratio).")
    ] = None,
    y_max: Annotated[
        float | None, typer.Option(help="Second axis to (default 2 for beta, 1 for ratio).")
    ] = None,
    market: MarketOpt = "cournot",
    quality: QualityOpt = "cost",
    kappa: KappaOpt = 0.25,
    margin: MarginOpt = 1.0,
) -> None:
    """Phase diagram of full / partial / no sharing and the sharing-fraction heat map."""
    from coopml.competition import sharing_phase_diagram, size_ratio_phase_diagram
    from coopml.plots.competition import plot_sharing_fractions, plot_sharing_phase_diagram

    values = _sizes(sizes, ctx.args)
    if axis not in ("beta", "ratio"):
        raise fail(f"parameter 'axis' must be 'beta' or 'ratio'; got {axis!r}")
    if n_gamma < 2 or n_y < 2:
        raise fail(f"parameters 'n_gamma' and 'n_y' must be >= 2; got {n_gamma}, {n_y}")
    top = 0.99 if market == "bertrand" else 1.0
    gammas = np.linspace(0.0, top, n_gamma)
    kw = {"market": market, "quality": quality, "kappa": kappa, "margin": margin}
    start = time.perf_counter()
    try:
        if axis == "beta":
            if values is None:
                raise ValueError("parameter 'sizes' is required with --axis beta")
            ys = np.linspace(0.05 if y_min is None else y_min, 2.0 if y_max is None else y_max, n_y)
            diagram = sharing_phase_diagram(values, gammas, ys, **kw)  # type: ignore[arg-type]
        else:
            ys = np.linspace(0.01 if y_min is None else y_min, 1.0 if y_max is None else y_max, n_y)
            diagram = size_ratio_phase_diagram(
                gammas,
                ys,
                beta,
                large=large,
                **kw,  # type: ignore[arg-type]
            )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    name = "beta" if axis == "beta" else "size_ratio"
    csv = out / f"phase_{name}.csv"
    diagram.to_dataframe().to_csv(csv, index=False)
    written = [csv, out / f"phase_{name}.png"]
    _save(plot_sharing_phase_diagram(diagram), written[1])
    if diagram.fractions is not None:
        written.append(out / f"fractions_{name}.png")
        _save(plot_sharing_fractions(diagram), written[2])
    counts = np.bincount(diagram.phase.ravel(), minlength=3)
    console.print(
        f"{n_gamma} x {n_y} diagram in {seconds:.2f} s: full sharing {counts[2]} cells, "
        f"partial {counts[1]}, none {counts[0]}"
    )
    for path in written:
        console.print(f"wrote {path}")


@app.command("fit-curve")
def fit_curve_command(
    config: Annotated[Path, typer.Argument(help="TOML file (see examples/sharing_*.toml).")],
    out: Annotated[
        Path | None, typer.Option(help="Directory for results.json and the figures.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Measure learning curves on the firms' data and analyse sharing on the fitted curves."""
    from coopml.competition.real_data import load_sharing_config, run_sharing_config
    from coopml.config import ConfigError

    try:
        cfg, base = load_sharing_config(config)
        results = run_sharing_config(cfg, base)
    except (ConfigError, ValueError, TypeError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    payload = {"gamma": cfg.market.gamma, "tasks": [r.to_dict() for r in results]}
    if out is not None:
        from coopml.competition import profit_gain_curves
        from coopml.plots.competition import plot_learning_curves, plot_profit_gains

        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
        _save(plot_learning_curves({r.name: r.fit for r in results}), out / "learning_curves.png")
        m = cfg.market
        top = 0.99 if m.market == "bertrand" else 1.0
        for k, r in enumerate(results):
            curves = profit_gain_curves(
                r.analysis.full.sizes, np.linspace(0, top, 101), r.fit.curve.beta, m.market,
                A=r.fit.curve.A, eps_inf=r.fit.curve.eps_inf, quality=m.quality,
                kappa=m.kappa, margin=m.margin, bargaining=len(r.firms) == 2,
            )  # fmt: skip
            _save(plot_profit_gains(curves, gamma=m.gamma), out / f"profit_gains_{k}.png")
    if as_json:
        print(json.dumps(payload))
        return
    for r in results:
        c, se = r.fit.curve, r.fit.stderr
        console.print(
            f"[bold]{r.name}[/]: ε(N) = {c.eps_inf:.3f} + {c.A:.3f}·N^-{c.beta:.3f} "
            f"(β ± {se[2]:.3f}); larger firm agrees to full sharing iff γ < "
            + ("n/a" if r.threshold is None else f"{r.threshold:.3f}")
        )
        _print_analysis(r.analysis, list(r.firms))
    if out is not None:
        console.print(f"wrote {out / 'results.json'}, {out / 'learning_curves.png'} and figures")
