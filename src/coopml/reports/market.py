"""A self-contained HTML report of a market round (tables, checks and charts inline)."""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

from coopml.reports.summary import (
    COLUMNS,
    RULES,
    members_note,
    payout_text,
    settlement_summary,
    sig,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from coopml.market.job import MarketJob
    from coopml.market.settlement import Settlement

__all__ = ["figure_png", "market_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
dt { font-weight: 600; } dd { margin: 0 0 0.3rem 1.5rem; }
.ok { color: #1a7f37; } .bad { color: #cf222e; }
img { max-width: 100%; }
"""


def figure_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _lines(settlement: Settlement) -> pd.DataFrame:
    """The settlement's lines as a reader sees them: units in the headers, 4 significant
    figures, the ``members`` column only when the models' training sets differ."""
    import pandas as pd

    rows = [
        {
            "party": p.name,
            "fee": p.fee,
            "own score": p.own_gain,
            "model score": p.model_gain,
            "improvement (points)": 100 * p.improvement,
            "charge": p.charge,
            "share": p.share,
            "payout": payout_text(p),
            "net": p.net_gain,
            "members": ", ".join(p.members),
        }
        for p in settlement.parties
    ]
    frame = pd.DataFrame(rows)
    if members_note(settlement) is not None:
        frame = frame.drop(columns=["members"])
    return frame


def market_report(job: MarketJob, charts: dict[str, bytes]) -> str:
    """HTML for a market job; ``charts`` maps a caption to PNG bytes shown inline.

    It opens with the plain-language summary of
    :func:`~coopml.reports.summary.settlement_summary`, names the units in every header,
    explains each column and each payment rule in one line, and rounds to four
    significant figures.
    """
    s = job.result.settlement
    checks = s.checks
    verdict = s.verify()
    summary = settlement_summary(s)
    table = _lines(s).to_html(index=False, float_format=sig, border=0)
    parts = [
        f"<h1>Market settlement: rule '{html.escape(s.rule)}', {s.mode} task, "
        f"price c = {sig(s.price)}</h1>",
        "<h2>In short</h2>",
        *(f"<p>{html.escape(sentence)}</p>" for sentence in summary),
        *(f"<p class='bad'>Warning: {html.escape(w)}</p>" for w in job.warnings),
        "<h2>Parties</h2>",
        "<p>Money is in units of the price c; scores are between 0 and 1; improvements are "
        "in points (1 point = 0.01 of the score).</p>",
        table,
    ]
    note = members_note(s)
    if note:
        parts.append(f"<p>{html.escape(note)}</p>")
    parts.append("<dl>")
    parts.extend(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in COLUMNS.items())
    parts.append("</dl>")
    parts.append(
        f"<p>Value of the empty coalition: {html.escape(str(s.empty_value))} "
        "(<code>empty_value</code>: the score credited to no data at all, which the rules "
        "subtract; shares are the rule's values normalised to sum to one, coopml's reading "
        "of the paper).</p>"
    )
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
    ]
    compared = job.result.compare_rules()
    parts += [
        "<h2>Payment rules side by side (net gain, in units of c)</h2>",
        compared.to_html(float_format=sig, border=0),
        "<ul>",
        *(
            f"<li><code>{html.escape(rule)}</code>: {html.escape(RULES.get(rule, rule))}</li>"
            for rule in compared.columns
        ),
        "</ul>",
    ]
    dup = job.result.duplicates
    if dup is not None:
        parts.append("<h2>Replicated data found before settlement</h2>")
        pairs = dup.pairs()
        parts.append(_records(pairs) if pairs else "<p>None.</p>")
    if job.audit is not None:
        parts.append(f"<h2>Replication audit: party '{html.escape(job.audit.party)}'</h2>")
        parts.append(
            "<p>What the party gains in total (units of c) by joining again under extra "
            "names, against joining once; above zero, replication paid.</p>"
        )
        parts.append(job.audit.table.to_html(index=False, float_format=sig, border=0))
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


def _cell(value: Any) -> str:
    return sig(value) if isinstance(value, float) else str(value)
