"""``coopml market``: run a market round, audit replication, verify a settlement."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from coopml.cli._render import print_table
from coopml.cli._root import (
    ExecutorOpt,
    NJobsOpt,
    QuietOpt,
    RayAddressOpt,
    coalition_progress,
    console,
    err_console,
    fail,
    print_warnings,
)
from coopml.config import ConfigError, MarketConfig, load_config
from coopml.valuation import SMALL_PARTY

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
def run_command(
    config: ConfigArg,
    out: OutOpt = Path("out/market"),
    export_models: Annotated[
        Path | None,
        typer.Option(
            "--export-models",
            help="Also write each party's customised model here: skops, ONNX where the "
            "learner converts, and models.json (needs the 'export' extra).",
        ),
    ] = None,
    quiet: QuietOpt = False,
    executor: ExecutorOpt = None,
    n_jobs: NJobsOpt = None,
    ray_address: RayAddressOpt = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help="Keep the gain tables and the gains an estimate measures here, so that "
            "rerunning an interrupted market measures only what is missing (the settlement "
            "is identical).",
        ),
    ] = None,
) -> None:
    """Settle a market round: writes settlement.json, report.html and charts to OUT."""
    from coopml.market.job import run_market_job
    from coopml.plots.market import plot_replication_audit, plot_settlement
    from coopml.reports.market import figure_png, market_report

    cfg, base = _load(config)
    if executor is not None or n_jobs is not None or ray_address is not None:
        from coopml.config import with_executor

        if ray_address is not None and executor is None:
            executor = "ray"
        try:
            cfg = with_executor(cfg, kind=executor, n_jobs=n_jobs, address=ray_address)
        except ConfigError as exc:
            raise fail(str(exc)) from None
    if export_models is not None:
        from coopml.market.export import require_skops

        try:
            require_skops()
        except ImportError as exc:
            raise fail(str(exc)) from None
    try:
        with warnings.catch_warnings(record=True) as caught:  # printed below, once each
            warnings.simplefilter("always")
            with coalition_progress(quiet) as progress:
                job = run_market_job(cfg, base, progress=progress, cache_dir=cache_dir)
    except KeyboardInterrupt:  # Ctrl-C (SIGINT)
        err_console.print(_interrupted(cache_dir), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=130) from None
    except SystemExit:  # SIGTERM, turned into SystemExit(143) by coalition_progress
        err_console.print(_interrupted(cache_dir), markup=False, highlight=False, soft_wrap=True)
        raise
    except (ConfigError, OSError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    # small parties are in job.warnings, printed with the settlement
    print_warnings(str(w.message) for w in caught if not SMALL_PARTY.search(str(w.message)))
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
    if export_models is not None:
        _export(job, export_models)


def _interrupted(cache_dir: Path | None) -> str:
    """The line printed on an interrupt: what was kept, where, and how to resume."""
    if cache_dir is None:
        return (
            "interrupted: nothing was kept (no --cache-dir); run with --cache-dir DIR to keep "
            "the gains measured, so that rerunning resumes"
        )
    return (
        f"interrupted: saved the gains measured so far in {cache_dir}; rerun the same "
        "command to resume"
    )


def _export(job: object, folder: Path) -> None:
    """Write every party's model (the CLI's user is the operator, who holds all data)."""
    from coopml.market.export import MANIFEST, describe_export, export_models
    from coopml.market.job import MarketJob

    assert isinstance(job, MarketJob)
    manifest = export_models(
        job.result, list(job.parties), folder, schema=job.schema, targets=job.targets
    )
    for line in describe_export(manifest):
        console.print(f"  {escape(line)}", highlight=False)
    console.print(f"models written to {folder}/ (manifest {MANIFEST})")


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
    """Recompute a settlement from its value tables (or, for estimated shares, by
    replaying the estimator on its stored samples); exit 0 if consistent, 1 if not."""
    from coopml.market import Settlement

    try:
        record = Settlement.load(settlement)
        verdict = record.verify()
    except ValueError as exc:
        err_console.print(
            f"[bold red]invalid:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=1) from None
    if verdict.ok:
        v = record.valuation
        source = (
            f"the shares replayed by {v.get('estimator')} from {v.get('evaluations')} stored "
            "coalition values"
            if record.estimated
            else "the value tables"
        )
        console.print(
            f"[green]✔[/] {escape(str(settlement))}: consistent (every figure recomputed "
            f"from {source})",
            highlight=False,
            soft_wrap=True,
        )
        return
    for problem in verdict.problems:
        err_console.print(f"[bold red]✘[/] {escape(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _print_settlement(job: object) -> None:
    from coopml.market.job import MarketJob
    from coopml.reports.summary import members_note, payout_text, settlement_summary, sig

    assert isinstance(job, MarketJob)
    s = job.result.settlement
    for sentence in settlement_summary(s):
        console.print(escape(sentence), highlight=False)
    for warning in job.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    note = members_note(s)
    table = Table(
        title=(
            f"Settlement ({s.rule} rule, {s.mode} task, price c = {sig(s.price)}, "
            f"empty coalition {s.empty_value}); money in units of c, scores 0-1, "
            "improvement in points"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("party", no_wrap=True)
    headers = ("fee", "own score", "model score", "improvement", "charge", "share", "payout")
    for column in (*headers, "net"):
        table.add_column(column, justify="right", no_wrap=True)
    if note is None:
        table.add_column("trained on", no_wrap=True)
    for p in s.parties:
        colour = "green" if p.net_gain >= 0 else "red"
        cells = [
            escape(p.name),
            sig(p.fee),
            sig(p.own_gain),
            sig(p.model_gain),
            sig(100 * p.improvement, signed=True),
            sig(p.charge),
            sig(p.share),
            payout_text(p),
            f"[{colour}]{sig(p.net_gain, signed=True)}[/]",
        ]
        if note is None:
            cells.append(escape(", ".join(p.members)))
        table.add_row(*cells)
    print_table(table, console)
    if note is not None:
        console.print(note, highlight=False)
    c = s.checks
    console.print(
        f"balanced: {c['balanced']} (error {c['balance_error']:.1e})   "
        f"symmetric: {c['symmetric']}   zero-element: {c['zero_element']}   "
        f"individually rational: {c['individually_rational']}"
    )
    for r in c["ir_report"]:
        console.print(f"  [red]loses money[/] {escape(r['name'])}: {escape(r['reason'])}")
    for flag in s.flags:
        console.print(f"  [yellow]flag[/] {flag.code}: {escape(flag.message)}", highlight=False)
    dup = job.result.duplicates
    if dup is not None and dup.flagged:
        for pair in dup.pairs():
            console.print(
                f"  [yellow]replicated data[/] {pair['fraction']:.0%} of "
                f"{escape(str(pair['party']))}'s rows appear in "
                f"{escape(str(pair['duplicated_in']))} ({pair['exact_rows']} exact)"
            )
    if job.audit is not None:
        _print_audit(job.audit)


def _print_audit(audit: object) -> None:
    from coopml.market import ReplicationAudit
    from coopml.reports.summary import sig

    assert isinstance(audit, ReplicationAudit)
    table = Table(
        title=(
            f"Replication audit: what '{escape(audit.party)}' gains in total by joining "
            "again under extra names (units of c), per payment rule"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    rules = list(dict.fromkeys(audit.table["rule"]))
    table.add_column("copies", no_wrap=True)
    for rule in rules:
        table.add_column(rule, justify="right", no_wrap=True)
    for (kind, r), rows in audit.table.groupby(["kind", "replicas"], sort=False):
        gains = dict(zip(rows["rule"], rows["gain"], strict=True))
        table.add_row(
            f"{r} {kind}",
            *(
                f"[red]{sig(g, signed=True)}[/]" if g > 1e-9 else sig(g, signed=True)
                for g in (gains[x] for x in rules)
            ),
        )
    print_table(table, console)
    console.print("  [red]red[/]: replication paid under that rule (the gain is above zero)")
