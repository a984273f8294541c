"""``coopml market``: run a market round, audit replication, verify a settlement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from coopml.cli._root import coalition_progress, console, err_console, fail
from coopml.config import ConfigError, MarketConfig, load_config

app = typer.Typer(
    name="market",
    help="Collaborative ML market: fees, customised models, payouts, replication audit.",
    no_args_is_help=True,
)

ConfigArg = Annotated[Path, typer.Argument(help="TOML market job (see examples/hospitals.toml).")]
OutOpt = Annotated[Path, typer.Option(help="Output folder.")]


def _load(config: Path) -> tuple[MarketConfig, Path]:
    try:
        return load_config(config, MarketConfig)
    except ConfigError as exc:
        raise fail(str(exc)) from None


@app.command("run")
def run_command(config: ConfigArg, out: OutOpt = Path("out/market")) -> None:
    """Settle a market round: writes settlement.json, report.html and charts to OUT."""
    from coopml.market.job import run_market_job
    from coopml.plots.market import plot_replication_audit, plot_settlement
    from coopml.reports.market import figure_png, market_report

    cfg, base = _load(config)
    try:
        with coalition_progress() as progress:
            job = run_market_job(cfg, base, progress=progress)
    except (ConfigError, FileNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    s = job.result.settlement
    out.mkdir(parents=True, exist_ok=True)
    s.save(out / "settlement.json")
    charts = {"Settlement": figure_png(plot_settlement(s))}
    if job.audit is not None:
        charts["Replication audit"] = figure_png(plot_replication_audit(job.audit))
        (out / "audit.json").write_text(json.dumps(job.audit.to_dict(), indent=2))
    for caption, png in charts.items():
        (out / f"{caption.lower().replace(' ', '_')}.png").write_bytes(png)
    (out / "report.html").write_text(market_report(job, charts), encoding="utf-8")
    _print_settlement(job)
    console.print(f"settlement, report and charts written to {out}/")


@app.command("audit")
def audit_command(
    config: ConfigArg,
    party: Annotated[str, typer.Option(help="The party that replicates its data.")],
    out: OutOpt = Path("out/audit"),
) -> None:
    """Measure what PARTY gains by joining with 1-3 replicas, under every payment rule."""
    from coopml.config import AuditSettings
    from coopml.market.job import run_market_job
    from coopml.plots.market import plot_replication_audit
    from coopml.reports.market import figure_png

    cfg, base = _load(config)
    settings = cfg.audit or AuditSettings(party=party)
    cfg = cfg.model_copy(update={"audit": settings.model_copy(update={"party": party})})
    try:
        with coalition_progress() as progress:
            job = run_market_job(cfg, base, progress=progress)
    except (ConfigError, FileNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    assert job.audit is not None
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit.json").write_text(json.dumps(job.audit.to_dict(), indent=2))
    (out / "audit.png").write_bytes(figure_png(plot_replication_audit(job.audit)))
    _print_audit(job.audit)
    console.print(f"audit written to {out}/audit.json and {out}/audit.png")


@app.command("verify")
def verify_command(
    settlement: Annotated[Path, typer.Argument(help="A settlement.json written by `market run`.")],
) -> None:
    """Recompute a settlement from its value tables; exit 0 if consistent, 1 if not."""
    from coopml.market import Settlement

    try:
        verdict = Settlement.load(settlement).verify()
    except ValueError as exc:
        err_console.print(f"[bold red]invalid:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from None
    if verdict.ok:
        console.print(
            f"[green]✔[/] {settlement}: consistent (every figure recomputed from the value tables)"
        )
        return
    for problem in verdict.problems:
        err_console.print(f"[bold red]✘[/] {problem}", highlight=False)
    raise typer.Exit(code=1)


def _print_settlement(job: object) -> None:
    from coopml.market.job import MarketJob

    assert isinstance(job, MarketJob)
    s = job.result.settlement
    table = Table(
        title=(
            f"Settlement ({s.rule} rule, {s.mode} task, price {s.price:g}, "
            f"empty coalition {s.empty_value})"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("party", no_wrap=True)
    for column in ("fee A", "own G", "model G", "gain a", "share", "payout b", "net"):
        table.add_column(column, justify="right", no_wrap=True)
    for p in s.parties:
        net = f"[green]{p.net_gain:+.4f}[/]" if p.net_gain >= 0 else f"[red]{p.net_gain:+.4f}[/]"
        table.add_row(
            p.name,
            f"{p.fee:.4f}",
            f"{p.own_gain:.3f}",
            f"{p.model_gain:.3f}",
            f"{p.improvement:+.4f}",
            f"{p.share:.3f}",
            f"{p.payout:.4f}",
            net,
        )
    console.print(table)
    c = s.checks
    console.print(
        f"balanced: {c['balanced']} (error {c['balance_error']:.1e})   "
        f"symmetric: {c['symmetric']}   zero-element: {c['zero_element']}   "
        f"individually rational: {c['individually_rational']}"
    )
    for r in c["ir_report"]:
        console.print(f"  [red]loses money[/] {r['name']}: {r['reason']}")
    for flag in s.flags:
        console.print(f"  [yellow]flag[/] {flag.code}: {flag.message}", highlight=False)
    dup = job.result.duplicates
    if dup is not None and dup.flagged:
        for pair in dup.pairs():
            console.print(
                f"  [yellow]replicated data[/] {pair['fraction']:.0%} of {pair['party']}'s rows "
                f"appear in {pair['duplicated_in']} ({pair['exact_rows']} exact)"
            )
    if job.audit is not None:
        _print_audit(job.audit)


def _print_audit(audit: object) -> None:
    from coopml.market import ReplicationAudit

    assert isinstance(audit, ReplicationAudit)
    table = Table(
        title=f"Replication audit: what '{audit.party}' gains with replicas",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    rules = list(dict.fromkeys(audit.table["rule"]))
    table.add_column("copies", no_wrap=True)
    for rule in rules:
        table.add_column(rule.replace("similarity_shapley", "similarity"), justify="right")
    for (kind, r), rows in audit.table.groupby(["kind", "replicas"], sort=False):
        gains = dict(zip(rows["rule"], rows["gain"], strict=True))
        table.add_row(
            f"{r} {kind}",
            *(f"[red]{g:+.4f}[/]" if g > 1e-9 else f"{g:+.4f}" for g in (gains[x] for x in rules)),
        )
    console.print(table)
    console.print("  [red]red[/]: replication paid under that rule")
