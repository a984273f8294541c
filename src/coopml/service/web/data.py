"""Read access of the dashboard: who is logged in, and the items they may see.

Every function returns the dicts the HTTP API returns for the same item (the service
contract's shapes), already filtered for the viewer, or ``None`` where the API would
answer 404. Backend modules are imported inside the functions: the backend's app
factory imports this package, so importing it back at module level would be circular.
"""

from __future__ import annotations

import datetime
from typing import Any

from fastapi import Request

from coopml.service.domain.rounds import liveness
from coopml.service.web.views import Viewer

__all__ = [
    "audit_log",
    "authenticate",
    "close_session",
    "get_audit",
    "get_market",
    "get_round",
    "get_settlement",
    "list_datasets",
    "list_markets",
    "list_parties",
    "list_rounds",
    "open_session",
    "session_viewer",
]


def _session(request: Request) -> Any:
    """A session of the deployment's database (read-only use)."""
    from coopml.service.api.deps import get_context

    return get_context(request).db.session()


def _viewer(principal: Any) -> Viewer:
    return Viewer(
        role=principal.role,
        name=principal.name or principal.role,
        party_id=principal.party_id,
        market_id=principal.market_id,
    )


def _principal(viewer: Viewer) -> Any:
    from coopml.service.api.deps import Principal

    return Principal(
        str(viewer["role"]), viewer.get("party_id"), viewer.get("market_id"), viewer.get("name")
    )


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime.datetime) else v for k, v in item.items()}


def authenticate(request: Request, token: str) -> Viewer | None:
    """The viewer a token belongs to, or ``None`` for an unknown token."""
    from coopml.service.api.deps import authenticate as api_authenticate

    with _session(request) as s:
        principal = api_authenticate(s, token)
    return None if principal is None else _viewer(principal)


def open_session(request: Request, token: str) -> tuple[str, Viewer] | None:
    """Log in with an API token: a new session's id (for the cookie) and its viewer,
    or ``None`` for a token that is unknown, expired or revoked."""
    from coopml.service.api.deps import get_context
    from coopml.service.domain import tokens

    ttl = get_context(request).settings.session_ttl_seconds
    with _session(request) as s:
        try:
            opened = tokens.open_session(s, token, ttl_seconds=ttl)
        except tokens.TokenRejected:
            return None
    return opened.session_id, _viewer(opened.identity)


def session_viewer(request: Request, session_id: str) -> Viewer | None:
    """The viewer of a live session, or ``None`` (unknown, logged out, expired, or its
    token revoked or expired)."""
    from coopml.service.domain import tokens

    with _session(request) as s:
        try:
            identity = tokens.session_identity(s, session_id)
        except tokens.TokenRejected:
            return None
    return _viewer(identity)


def close_session(request: Request, session_id: str) -> None:
    """Log out: the session's id no longer works."""
    from coopml.service.domain import tokens

    with _session(request) as s:
        tokens.close_session(s, session_id)


def list_markets(
    request: Request, viewer: Viewer, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of the markets (operator: all; a party: its own), newest first, and
    how many there are."""
    from sqlalchemy import select

    from coopml.service.api.routes._common import market_out, paginate
    from coopml.service.storage.models import Market

    with _session(request) as s:
        query = select(Market).order_by(Market.created_at.desc(), Market.id)
        if not viewer.is_operator:
            query = query.where(Market.id == viewer["market_id"])
        rows, total = paginate(s, query, limit, offset)
        return [_jsonable(market_out(s, m)) for m in rows], total


def get_market(request: Request, viewer: Viewer, market_id: str) -> dict[str, Any] | None:
    """One market, if the viewer may see it."""
    from coopml.service.api.errors import ApiError
    from coopml.service.api.routes._common import get_market as api_get_market
    from coopml.service.api.routes._common import market_out

    with _session(request) as s:
        try:
            return _jsonable(market_out(s, api_get_market(s, _principal(viewer), market_id)))
        except ApiError:
            return None


def list_parties(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's parties (operator) or the party itself."""
    from sqlalchemy import select

    from coopml.service.api.routes._common import party_out
    from coopml.service.storage.models import Party

    with _session(request) as s:
        query = select(Party).where(Party.market_id == market_id).order_by(Party.name)
        if not viewer.is_operator:
            query = query.where(Party.id == viewer["party_id"])
        return [_jsonable(party_out(p)) for p in s.scalars(query)]


def list_datasets(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's datasets (operator) or the party's own."""
    from sqlalchemy import select

    from coopml.service.api.routes._common import dataset_out
    from coopml.service.storage.models import Dataset

    with _session(request) as s:
        query = select(Dataset).where(Dataset.market_id == market_id)
        if not viewer.is_operator:
            query = query.where(Dataset.party_id == viewer["party_id"])
        query = query.order_by(Dataset.created_at, Dataset.id)
        return [_jsonable(dataset_out(d)) for d in s.scalars(query)]


def list_rounds(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's rounds, newest first (parties of the market may read them)."""
    from sqlalchemy import select

    from coopml.service.api.routes._common import round_out
    from coopml.service.storage.models import Round

    if not viewer.is_operator and market_id != viewer["market_id"]:
        return []
    with _session(request) as s:
        query = (
            select(Round)
            .where(Round.market_id == market_id)
            .order_by(Round.created_at.desc(), Round.id)
        )
        # as the viewer may see them: a party is not shown another's failure details
        rows = list(s.scalars(query))
        live = liveness(s, [r.id for r in rows])
        return [_jsonable(round_out(r, _principal(viewer), live.get(r.id))) for r in rows]


def get_round(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """One round, if the viewer may see it."""
    from coopml.service.api.errors import ApiError
    from coopml.service.api.routes._common import get_round as api_get_round
    from coopml.service.api.routes._common import round_out

    with _session(request) as s:
        try:
            principal = _principal(viewer)  # a party is not shown another's failure
            rnd = api_get_round(s, principal, round_id)
            return _jsonable(round_out(rnd, principal, liveness(s, [rnd.id]).get(rnd.id)))
        except ApiError:
            return None


def get_settlement(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The settlement (``GET /rounds/{id}/settlement``): every line and the totals for
    the operator, the party's own line for a party; ``None`` when not settled."""
    from coopml.service.api.errors import ApiError
    from coopml.service.api.routes.rounds import read_settlement

    with _session(request) as s:
        try:
            return read_settlement(round_id, _principal(viewer), s)
        except ApiError:
            return None


def get_audit(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The round's audit (``GET /rounds/{id}/audit``, operator only): balance,
    verification, duplicates, replication."""
    from coopml.service.api.errors import ApiError
    from coopml.service.api.routes.rounds import read_audit

    if not viewer.is_operator:
        return None
    with _session(request) as s:
        try:
            audit = read_audit(round_id, _principal(viewer), s)
        except ApiError:
            return None
    audit.pop("round_id", None)
    return audit


def audit_log(
    request: Request, viewer: Viewer, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Audit entries (``GET /audit-log``), newest first: all for the operator, those about
    the party's own items and actions for a party."""
    from sqlalchemy import select

    from coopml.service.api.routes.meta import audit_log as api_audit_log
    from coopml.service.storage.models import Party

    with _session(request) as s:
        body = api_audit_log(_principal(viewer), s, limit=limit, offset=offset, item_id=None)
        entries = [_jsonable(e) for e in body["items"]]
        # Name the parties that acted, where the viewer may know them (the operator: all;
        # a party: itself); other actors keep their opaque id.
        ids = {
            e["actor"].removeprefix("party:") for e in entries if e["actor"].startswith("party:")
        }
        if not viewer.is_operator:
            ids &= {str(viewer["party_id"])}
        query = select(Party.id, Party.name).where(Party.id.in_(ids))
        names = {str(row.id): str(row.name) for row in s.execute(query)}
    for e in entries:
        party_id = e["actor"].removeprefix("party:")
        if e["actor"].startswith("party:") and party_id in names:
            e["actor"] = f"party {names[party_id]}"
    return entries, int(body["total"])
