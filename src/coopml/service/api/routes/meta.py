"""``/health``, ``/me`` and ``/audit-log``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from coopml.service.api.deps import Caller, Ctx, Db
from coopml.service.api.routes._common import Limit, Offset, page
from coopml.service.api.schemas import AuditLogEntryOut, HealthOut, MeOut, Page
from coopml.service.domain import ledger

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=HealthOut)
def health(ctx: Ctx) -> dict[str, Any]:
    """Liveness and the database kind (no authentication)."""
    ctx.db.ping()
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
    items, total = ledger.audit_log(s, caller, limit=limit, offset=offset, item_id=item_id)
    return page(items, total, limit, offset)
