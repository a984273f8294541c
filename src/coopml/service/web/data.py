"""Read access of the dashboard: who is logged in, and the items they may see.

Every function returns the dicts the HTTP API returns for the same item (the service
contract's shapes), already filtered for the viewer, or ``None`` where the API would
answer 404. Backend modules are imported inside the functions: the backend's app
factory imports this package, so importing it back at module level would be circular.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from coopml.service.web.views import Viewer

__all__ = [
    "audit_log",
    "authenticate",
    "get_audit",
    "get_market",
    "get_round",
    "get_settlement",
    "list_datasets",
    "list_markets",
    "list_parties",
    "list_rounds",
]


def _db(request: Request) -> Any:
    state = request.app.state
    for name in ("db", "database"):
        if hasattr(state, name):
            return getattr(state, name)
    raise RuntimeError("the app has no database in app.state (db or database)")


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def authenticate(request: Request, token: str) -> Viewer | None:
    """The viewer a token belongs to, or ``None`` for an unknown token."""
    from sqlalchemy import select

    from coopml.service.security import hash_token
    from coopml.service.storage.models import ApiToken, Party

    with _db(request).session() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
        if row is None:
            return None
        if row.role == "operator":
            return Viewer(role="operator", name="operator", party_id=None, market_id=None)
        party = s.get(Party, row.party_id) if row.party_id else None
        if party is None:
            return None
        return Viewer(role="party", name=party.name, party_id=party.id, market_id=party.market_id)


def _market(s: Any, market: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from coopml.service.storage.models import Party

    n = s.scalar(select(func.count()).select_from(Party).where(Party.market_id == market.id))
    return {
        "id": market.id,
        "name": market.name,
        "task": market.task,
        "description": market.description,
        "created_at": _iso(market.created_at),
        "n_parties": int(n or 0),
    }


def list_markets(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    """All markets (operator) or the party's own market."""
    from sqlalchemy import select

    from coopml.service.storage.models import Market

    with _db(request).session() as s:
        query = select(Market).order_by(Market.created_at.desc())
        if not viewer.is_operator:
            query = query.where(Market.id == viewer["market_id"])
        return [_market(s, m) for m in s.scalars(query)]


def get_market(request: Request, viewer: Viewer, market_id: str) -> dict[str, Any] | None:
    """One market, if the viewer may see it."""
    from coopml.service.storage.models import Market

    if not viewer.is_operator and market_id != viewer["market_id"]:
        return None
    with _db(request).session() as s:
        market = s.get(Market, market_id)
        return None if market is None else _market(s, market)


def list_parties(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's parties (operator) or the party itself."""
    from sqlalchemy import select

    from coopml.service.storage.models import Party

    with _db(request).session() as s:
        query = select(Party).where(Party.market_id == market_id).order_by(Party.name)
        if not viewer.is_operator:
            query = query.where(Party.id == viewer["party_id"])
        return [
            {
                "id": p.id,
                "name": p.name,
                "market_id": p.market_id,
                "created_at": _iso(p.created_at),
            }
            for p in s.scalars(query)
        ]


def list_datasets(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's datasets (operator) or the party's own."""
    from sqlalchemy import select

    from coopml.service.storage.models import Dataset

    with _db(request).session() as s:
        query = select(Dataset).where(Dataset.market_id == market_id)
        if not viewer.is_operator:
            query = query.where(Dataset.party_id == viewer["party_id"])
        query = query.order_by(Dataset.created_at)
        return [
            {
                "id": d.id,
                "party_id": d.party_id,
                "market_id": d.market_id,
                "name": d.name,
                "role": d.role,
                "n_rows": d.n_rows,
                "n_features": d.n_features,
                "columns": d.columns,
                "target": d.target,
                "sha256": d.sha256,
                "created_at": _iso(d.created_at),
            }
            for d in s.scalars(query)
        ]


def _round(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "market_id": r.market_id,
        "status": r.status,
        "progress": r.progress,
        "message": r.message,
        "created_at": _iso(r.created_at),
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "config": r.config,
    }


def list_rounds(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's rounds, newest first (parties of the market may read them)."""
    from sqlalchemy import select

    from coopml.service.storage.models import Round

    if not viewer.is_operator and market_id != viewer["market_id"]:
        return []
    with _db(request).session() as s:
        query = select(Round).where(Round.market_id == market_id).order_by(Round.created_at.desc())
        return [_round(r) for r in s.scalars(query)]


def get_round(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """One round, if the viewer may see it."""
    from coopml.service.storage.models import Round

    with _db(request).session() as s:
        r = s.get(Round, round_id)
        if r is None or (not viewer.is_operator and r.market_id != viewer["market_id"]):
            return None
        return _round(r)


def get_settlement(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The settlement: every line for the operator, the party's own line for a party."""
    from sqlalchemy import select

    from coopml.service.storage.models import Round, SettlementLineRow, SettlementRow

    with _db(request).session() as s:
        r = s.get(Round, round_id)
        if r is None or (not viewer.is_operator and r.market_id != viewer["market_id"]):
            return None
        row = s.scalars(select(SettlementRow).where(SettlementRow.round_id == round_id)).first()
        if row is None:
            return None
        query = select(SettlementLineRow).where(SettlementLineRow.round_id == round_id)
        if not viewer.is_operator:
            query = query.where(SettlementLineRow.party_id == viewer["party_id"])
        lines = [
            {
                "party_id": x.party_id,
                "name": x.name,
                "fee": x.fee,
                "payout": x.payout,
                "net": x.net,
                "value_before": x.value_before,
                "value_after": x.value_after,
            }
            for x in s.scalars(query.order_by(SettlementLineRow.name))
        ]
        return {"round_id": round_id, "lines": lines, "verified": bool(row.verified)}


def get_audit(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The round's audit (operator only)."""
    from sqlalchemy import select

    from coopml.service.storage.models import SettlementRow

    if not viewer.is_operator:
        return None
    with _db(request).session() as s:
        row = s.scalars(select(SettlementRow).where(SettlementRow.round_id == round_id)).first()
        return None if row is None else dict(row.audit or {})


def audit_log(
    request: Request, viewer: Viewer, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Audit entries, newest first: all (operator) or those about the party's items."""
    from sqlalchemy import func, select

    from coopml.service.storage.models import AuditEntry

    with _db(request).session() as s:
        where = [] if viewer.is_operator else [AuditEntry.party_id == viewer["party_id"]]
        total = s.scalar(select(func.count()).select_from(AuditEntry).where(*where))
        query = (
            select(AuditEntry)
            .where(*where)
            .order_by(AuditEntry.at.desc(), AuditEntry.id)
            .limit(limit)
            .offset(offset)
        )
        entries = [
            {
                "id": e.id,
                "at": _iso(e.at),
                "actor": e.actor,
                "action": e.action,
                "item_type": e.item_type,
                "item_id": e.item_id,
                "request_id": e.request_id,
            }
            for e in s.scalars(query)
        ]
        return entries, int(total or 0)
