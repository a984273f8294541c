"""``/health``, ``/me`` and ``/audit-log``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import or_, select

from coopml.service.api.deps import Caller, Ctx, Db
from coopml.service.api.routes._common import Limit, Offset, page, paginate
from coopml.service.api.schemas import AuditLogEntryOut, HealthOut, MeOut, Page
from coopml.service.storage.models import AuditEntry, PredictionQuery, utc

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=HealthOut)
def health(ctx: Ctx, s: Db) -> dict[str, Any]:
    """Liveness and the database kind (no authentication)."""
    s.execute(select(1))
    return {"status": "ok", "database": ctx.db.dialect}


@router.get("/me", response_model=MeOut)
def me(caller: Caller) -> dict[str, Any]:
    """Who the token belongs to."""
    return {
        "role": caller.role,
        "party_id": caller.party_id,
        "market_id": caller.market_id,
        "name": caller.name,
    }


@router.get("/audit-log", response_model=Page[AuditLogEntryOut])
def audit_log(
    caller: Caller,
    s: Db,
    limit: Limit = 50,
    offset: Offset = 0,
    item_id: str | None = Query(
        None, pattern=r"^[0-9a-f]{32}$", description="Only entries about this item."
    ),
) -> dict[str, Any]:
    """Every access to a dataset, model or prediction and every state change, newest first.
    The operator sees all entries; a party the entries about its own items and actions."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id)
    if not caller.is_operator:
        query = query.where(
            or_(AuditEntry.party_id == caller.party_id, AuditEntry.actor == caller.actor)
        )
    if item_id is not None:
        query = query.where(AuditEntry.item_id == item_id)
    rows, total = paginate(s, query, limit, offset)
    # rows sent to a predict endpoint, recorded with the call (quota accounting)
    queried = {
        audit_id: int(n)
        for audit_id, n in s.execute(
            select(PredictionQuery.audit_id, PredictionQuery.n_rows).where(
                PredictionQuery.audit_id.in_([e.id for e in rows])
            )
        ).all()
    }
    items = [
        {
            "id": e.id,
            "at": utc(e.at),
            "actor": e.actor,
            "action": e.action,
            "item_type": e.item_type,
            "item_id": e.item_id,
            "request_id": e.request_id,
            "n_rows": queried.get(e.id),
        }
        for e in rows
    ]
    return page(items, total, limit, offset)
