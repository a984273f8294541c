"""A self-contained HTML report of a market round (tables, checks and charts inline)."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from coopml.market.job import MarketJob

__all__ = ["figure_png", "market_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.ok { color: #1a7f37; } .bad { color: #cf222e; }
img { max-width: 100%; }
"""


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def market_report(job: MarketJob, charts: dict[str, bytes]) -> str:
    """HTML for a market job; ``charts`` maps a caption to PNG bytes shown inline."""
    s = job.result.settlement
    lines = s.to_dataframe().drop(columns=["payoff"])
    checks = s.checks
    verdict = s.verify()
    parts = [
        f"<h1>Market settlement: rule '{html.escape(s.rule)}', {s.mode} task, "
        f"price c = {s.price:g}</h1>",
        f"<p>Value of the empty coalition: {html.escape(str(s.empty_value))} "
        "(<code>empty_value</code>; shares are the rule's values normalised to sum to one, "
        "coopml's reading of the paper).</p>",
        "<h2>Parties</h2>",
        lines.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0),
    ]
    if s.flags:
        parts.append("<h2>Flags</h2><ul>")
        parts.extend(
            f"<li class='bad'><code>{html.escape(f.code)}</code> {html.escape(f.message)}</li>"
            for f in s.flags
        )
        parts.append("</ul>")
    parts += [
        "<h2>Checks</h2><ul>",
        _check(
            "balance: Σ payouts = Σ charges (c · Σ improvements unless refunded)",
            checks["balanced"],
            f"error {checks['balance_error']:.2e}",
        ),
        _check(
            "no payout is negative",
            bool(checks.get("nonnegative_payouts", True)),
            "",
        ),
        _check(
            "symmetry: identical data, identical payoffs",
            checks["symmetric"],
            ", ".join("=".join(g) for g in checks["asymmetric_groups"]),
        ),
        _check(
            "zero-element buyer gets its fee back",
            checks["zero_element"],
            ", ".join(checks["zero_element_violations"]),
        ),
        _check(
            "individually rational (nobody loses money)",
            checks["individually_rational"],
            "; ".join(f"{r['name']}: {r['reason']}" for r in checks["ir_report"]),
        ),
        _check(
            "record verifies (recomputed from the value tables)",
            verdict.ok,
            "; ".join(verdict.problems),
        ),
        "</ul>",
        "<h2>Payment rules side by side (net gain)</h2>",
        job.result.compare_rules().to_html(float_format=lambda v: f"{v:.4f}", border=0),
    ]
    dup = job.result.duplicates
    if dup is not None:
        parts.append("<h2>Replicated data found before settlement</h2>")
        pairs = dup.pairs()
        parts.append(_records(pairs) if pairs else "<p>None.</p>")
    if job.audit is not None:
        parts.append(f"<h2>Replication audit: party '{html.escape(job.audit.party)}'</h2>")
        parts.append(
            job.audit.table.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0)
        )
    for caption, png in charts.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
            f"src='data:image/png;base64,{data}'>"
        )
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>coopml market</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )


def _check(label: str, ok: bool, detail: str) -> str:
    mark = "<span class='ok'>✔</span>" if ok else "<span class='bad'>✘</span>"
    extra = f" — {html.escape(detail)}" if detail and not ok else ""
    return f"<li>{mark} {html.escape(label)}{extra}</li>"


def _records(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"
