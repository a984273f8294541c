"""View-models of the dashboard pages: plain dicts built from the API's JSON shapes.

The functions here take the dicts the HTTP API returns (see the service contract:
Market, Party, Dataset, Round, Settlement with PartyLines, Audit, audit-log entries)
and normalise them for the templates, so the templates never meet a missing key. They
also apply the visibility rule once more as a second line of defence: a party's view
keeps only rows that belong to that party, whatever the data layer handed over.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from markupsafe import Markup

from coopml.service.web import svg

__all__ = [
    "Viewer",
    "dataset_row",
    "market_row",
    "party_rows",
    "privacy_cells",
    "round_row",
    "settlement_charts",
    "settlement_view",
]


class Viewer(dict[str, Any]):
    """Who looks at the page: ``role`` (``operator``/``party``), ``name``,
    ``party_id`` and ``market_id`` (``None`` for the operator)."""

    @property
    def is_operator(self) -> bool:
        return self.get("role") == "operator"

    def owns(self, party_id: Any) -> bool:
        """Whether a row with this ``party_id`` may be shown to the viewer."""
        return self.is_operator or (party_id is not None and party_id == self.get("party_id"))


def _text(value: Any, default: str = "") -> str:
    return default if value is None else str(value)


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x


def market_row(market: Mapping[str, Any]) -> dict[str, Any]:
    """A market for the tables."""
    return {
        "id": _text(market.get("id")),
        "name": _text(market.get("name")),
        "task": _text(market.get("task")),
        "description": _text(market.get("description")),
        "created_at": market.get("created_at"),
        "n_parties": market.get("n_parties", 0),
        "release_policy": _text(market.get("release_policy")),
        "release_note": RELEASE_NOTES.get(_text(market.get("release_policy")), ""),
        "custody": _text(market.get("custody") or "operator"),
        "agents_connected": [str(p) for p in market.get("agents_connected") or []],
        "predict_quota": market.get("predict_quota"),
        "predict_window_seconds": market.get("predict_window_seconds"),
    }


def party_rows(
    parties: Iterable[Mapping[str, Any]], market: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The parties for the market page; in parties custody each with ``agent``:
    ``"agent connected"`` when its agent checked in within the last minute (the API's
    ``agents_connected``, matched by party name), else ``"no agent"``; ``None`` in
    operator custody.

    Examples
    --------
    >>> market = {"custody": "parties", "agents_connected": ["alice"]}
    >>> [p["agent"] for p in party_rows([{"name": "alice"}, {"name": "bob"}], market)]
    ['agent connected', 'no agent']
    >>> party_rows([{"name": "alice"}], {"custody": "operator"})[0]["agent"] is None
    True
    """
    parties_custody = market.get("custody") == "parties"
    connected = {str(p) for p in market.get("agents_connected") or []}
    rows = []
    for p in parties:
        name = _text(p.get("name"))
        agent = None
        if parties_custody:
            agent = "agent connected" if name in connected else "no agent"
        rows.append(
            {"id": p.get("id"), "name": name, "created_at": p.get("created_at"), "agent": agent}
        )
    return rows


#: What each model release policy means (coopml.service.domain.release), for the pages.
RELEASE_NOTES = {
    "query_only": "predictions only: no model file is released",
    "aggregate_only": "a party downloads its model file only when it holds no training "
    "row of another party",
    "full": "every model file is released, even one holding other parties' training rows "
    "(opted in by the operator)",
}


def dataset_row(dataset: Mapping[str, Any], party_names: Mapping[str, str]) -> dict[str, Any]:
    """A dataset for the market page (``party_names`` maps party id to name)."""
    party_id = dataset.get("party_id")
    return {
        "id": _text(dataset.get("id")),
        "party_id": party_id,
        "party_name": party_names.get(_text(party_id), _text(party_id)),
        "name": _text(dataset.get("name")),
        "role": _text(dataset.get("role")),
        "n_rows": dataset.get("n_rows"),
        "n_features": dataset.get("n_features"),
        "target": _text(dataset.get("target")),
        "sha256": _text(dataset.get("sha256")),
        "created_at": dataset.get("created_at"),
    }


def round_row(round_: Mapping[str, Any], *, progress_width: float = 160.0) -> dict[str, Any]:
    """A round with its configuration flattened and an SVG progress bar."""
    config = round_.get("config") or {}
    learner = config.get("learner") or {}
    if isinstance(learner, str):
        learner = {"name": learner}
    params = learner.get("params") or {}
    status = _text(round_.get("status"), "unknown")
    progress = _float(round_.get("progress"))
    if progress is None or not math.isfinite(progress):
        progress = 1.0 if status == "completed" else 0.0
    color = {"failed": svg.NEGATIVE, "stalled": svg.NEGATIVE, "completed": "#1a7f37"}.get(
        status, svg.POSITIVE
    )
    return {
        "id": _text(round_.get("id")),
        "market_id": _text(round_.get("market_id")),
        "status": status,
        "progress": progress,
        "progress_svg": Markup(svg.progress_bar(progress, width=progress_width, color=color)),
        "message": _text(round_.get("message")),
        "rule": _text(config.get("payment_rule"), "–"),
        "learner": _text(learner.get("name"), "–"),
        "learner_params": ", ".join(f"{k}={v}" for k, v in sorted(params.items())),
        "price": config.get("fee_price", "–"),
        "tasks": _text(config.get("tasks"), "–"),
        # rounds opened before the option existed used the measured value
        "empty_value": _text(config.get("empty_value", "majority"), "–"),
        "created_at": round_.get("created_at"),
        "started_at": round_.get("started_at"),
        "finished_at": round_.get("finished_at"),
    }


def _line(line: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "party_id": line.get("party_id"),
        "name": _text(line.get("name")),
        "fee": _float(line.get("fee")),
        "fee_returned": _float(line.get("fee_returned")),
        "payout": _float(line.get("payout")),
        "payout_stderr": _float(line.get("payout_stderr", 0.0)),
        "net_gain": _float(line.get("net_gain")),
        "own_gain": _float(line.get("own_gain")),
        "model_gain": _float(line.get("model_gain")),
        "privacy": privacy_cells(line.get("privacy")),
    }


def privacy_cells(privacy: Any) -> dict[str, str] | None:
    """A settlement line's ``privacy`` as the round page's privacy table shows it (None:
    the party's statistics were exact).

    Examples
    --------
    >>> privacy_cells({"noise": True, "epsilon": 1.0, "delta": 1e-05, "clip": 4.0,
    ...                "target_clip": None, "releases": 4, "mu": 0.26805, "rho_zcdp": 0.0359})
    {'epsilon': '1', 'delta': '1e-05', 'clip': '4', 'releases': '4', 'mu': '0.268', 'rho_zcdp': '0.0359'}
    >>> privacy_cells({"noise": False, "epsilon": None, "delta": 1e-05, "clip": 4.0})["epsilon"]
    '∞ (no noise)'
    """  # noqa: E501
    if not isinstance(privacy, Mapping):
        return None

    def g(key: str) -> str:
        value = privacy.get(key)
        return f"{value:.3g}" if isinstance(value, int | float) else "–"

    clip = g("clip")
    if isinstance(privacy.get("target_clip"), int | float):
        clip += f" (targets {g('target_clip')})"
    return {
        "epsilon": g("epsilon") if privacy.get("noise") else "∞ (no noise)",
        "delta": g("delta"),
        "clip": clip,
        "releases": _text(privacy.get("releases"), "–"),
        "mu": g("mu") if privacy.get("noise") else "∞",
        "rho_zcdp": g("rho_zcdp") if privacy.get("noise") else "∞",
    }


def _sum(values: Iterable[float | None]) -> float | None:
    total = 0.0
    for v in values:
        if v is None:
            return None
        total += v
    return total


def settlement_view(settlement: Mapping[str, Any], viewer: Viewer) -> dict[str, Any]:
    """The settlement table for ``viewer``: all lines and totals for the operator; for a
    party only its own line, no totals (totals would reveal the others' sums)."""
    lines = [_line(x) for x in settlement.get("lines") or []]
    if not viewer.is_operator:
        lines = [x for x in lines if viewer.owns(x["party_id"])]
    totals = None
    if viewer.is_operator and lines:
        keys = ("fee", "fee_returned", "payout", "net_gain")
        totals = {k: _sum(x[k] for x in lines) for k in keys}
    verified = settlement.get("verified")
    flags = [
        {"code": _text(f.get("code")), "message": _text(f.get("message"))}
        for f in settlement.get("flags") or []
        if isinstance(f, Mapping)
    ]
    return {
        "lines": lines,
        "totals": totals,
        "verified": verified if isinstance(verified, bool) else None,
        "flags": flags,
    }


def settlement_charts(lines: Sequence[Mapping[str, Any]]) -> list[Markup]:
    """SVG charts of a settlement's lines: fees, payouts, net gains (negative in red)
    and each party's own score and model score (the gains of a model trained on its own
    data and of the one the market trained for it)."""
    if not lines:
        return []
    names = [str(x["name"]) for x in lines]

    def col(key: str) -> list[float]:
        return [math.nan if x[key] is None else float(x[key]) for x in lines]

    width = max(320.0, min(720.0, 140.0 + 90.0 * len(names)))
    charts = [
        svg.bar_chart(names, col("fee"), title="Fees paid", width=width, color="#8c959f"),
        svg.bar_chart(names, col("payout"), title="Payouts received", width=width),
        svg.bar_chart(names, col("net_gain"), title="Net gain", width=width, color="#1a7f37"),
        svg.grouped_bar_chart(
            names,
            [("own score", col("own_gain")), ("model score", col("model_gain"))],
            title="Own score and model score",
            width=width,
            height=260.0,
            colors=("#8c959f", "#1f6feb"),
        ),
    ]
    return [Markup(c) for c in charts]
