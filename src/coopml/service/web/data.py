"""Read access of the dashboard: who is logged in, and the items they may see.

Every function calls the domain layer (:mod:`coopml.service.domain`), the same queries
and visibility rules as the HTTP API, and returns the dicts the API returns for the same
item (the service contract's shapes), already filtered for the viewer, or ``None``
where the API would answer 404.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from coopml.service.context import ServiceContext
from coopml.service.domain import datasets, ledger, markets, parties, rounds, tokens
from coopml.service.domain.errors import DomainError
from coopml.service.domain.parties import Principal
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


def _context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.service
    return ctx


@contextmanager
def _session(request: Request) -> Iterator[Session]:
    """A session of the deployment's database (read-only use, except the session and
    login bookkeeping of :mod:`coopml.service.domain.tokens`)."""
    with _context(request).db.session() as s:
        yield s


def _viewer(principal: Principal | tokens.Identity) -> Viewer:
    return Viewer(
        role=principal.role,
        name=principal.name or principal.role,
        party_id=principal.party_id,
        market_id=principal.market_id,
    )


def _principal(viewer: Viewer) -> Principal:
    return Principal(
        str(viewer["role"]), viewer.get("party_id"), viewer.get("market_id"), viewer.get("name")
    )


def _jsonable(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime.datetime) else v for k, v in item.items()}


def authenticate(request: Request, token: str) -> Viewer | None:
    """The viewer a token belongs to, or ``None`` for an unknown token."""
    with _session(request) as s:
        principal = parties.authenticate(s, token)
    return None if principal is None else _viewer(principal)


def open_session(request: Request, token: str) -> tuple[str, Viewer] | None:
    """Log in with an API token: a new session's id (for the cookie) and its viewer,
    or ``None`` for a token that is unknown, expired or revoked."""
    ttl = _context(request).settings.session_ttl_seconds
    with _session(request) as s:
        try:
            opened = tokens.open_session(s, token, ttl_seconds=ttl)
        except tokens.TokenRejected:
            return None
    return opened.session_id, _viewer(opened.identity)


def session_viewer(request: Request, session_id: str) -> Viewer | None:
    """The viewer of a live session, or ``None`` (unknown, logged out, expired, or its
    token revoked or expired)."""
    with _session(request) as s:
        try:
            identity = tokens.session_identity(s, session_id)
        except tokens.TokenRejected:
            return None
    return _viewer(identity)


def close_session(request: Request, session_id: str) -> None:
    """Log out: the session's id no longer works."""
    with _session(request) as s:
        tokens.close_session(s, session_id)


def list_markets(
    request: Request, viewer: Viewer, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of the markets (operator: all; a party: its own), newest first, and
    how many there are."""
    with _session(request) as s:
        rows, total = markets.list_markets(
            s, _principal(viewer), limit=limit, offset=offset, newest_first=True
        )
        principal = _principal(viewer)
        return [_jsonable(markets.market_view(s, m, principal)) for m in rows], total


def get_market(request: Request, viewer: Viewer, market_id: str) -> dict[str, Any] | None:
    """One market, if the viewer may see it."""
    with _session(request) as s:
        try:
            principal = _principal(viewer)
            market = markets.visible_market(s, principal, market_id)
        except DomainError:
            return None
        return _jsonable(markets.market_view(s, market, principal))


def list_parties(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's parties (operator) or the party itself, by name."""
    principal = _principal(viewer)
    with _session(request) as s:
        try:
            market = markets.visible_market(s, principal, market_id)
        except DomainError:
            return []
        rows, _ = parties.list_parties(s, principal, market, by_name=True)
        return [_jsonable(parties.party_view(p)) for p in rows]


def list_datasets(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's datasets (operator) or the party's own."""
    principal = _principal(viewer)
    with _session(request) as s:
        try:
            market = markets.visible_market(s, principal, market_id)
        except DomainError:
            return []
        rows, _ = datasets.list_datasets(s, principal, market)
        return [_jsonable(datasets.dataset_view(d)) for d in rows]


def list_rounds(request: Request, viewer: Viewer, market_id: str) -> list[dict[str, Any]]:
    """The market's rounds, newest first (parties of the market may read them; a party
    is not shown another's failure details)."""
    with _session(request) as s:
        try:
            items, _ = rounds.list_rounds(s, _principal(viewer), market_id)
        except DomainError:
            return []
    return [_jsonable(r) for r in items]


def get_round(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """One round, if the viewer may see it."""
    with _session(request) as s:
        try:
            return _jsonable(rounds.read_round(s, _principal(viewer), round_id))
        except DomainError:
            return None


def get_settlement(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The settlement (``GET /rounds/{id}/settlement``): every line and the totals for
    the operator, the party's own line for a party; ``None`` when not settled."""
    with _session(request) as s:
        try:
            return rounds.settlement_view(s, _principal(viewer), round_id)
        except DomainError:
            return None


def get_audit(request: Request, viewer: Viewer, round_id: str) -> dict[str, Any] | None:
    """The round's audit (``GET /rounds/{id}/audit``, operator only): balance,
    verification, duplicates, replication."""
    if not viewer.is_operator:
        return None
    with _session(request) as s:
        try:
            audit = rounds.audit_view(s, _principal(viewer), round_id)
        except DomainError:
            return None
    audit.pop("round_id", None)
    return audit


def audit_log(
    request: Request, viewer: Viewer, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Audit entries (``GET /audit-log``), newest first: all for the operator, those about
    the party's own items and actions for a party."""
    principal = _principal(viewer)
    with _session(request) as s:
        items, total = ledger.audit_log(s, principal, limit=limit, offset=offset)
        entries = [_jsonable(e) for e in items]
        # Name the parties that acted, where the viewer may know them (the operator: all;
        # a party: itself); other actors keep their opaque id.
        ids = {
            e["actor"].removeprefix("party:") for e in entries if e["actor"].startswith("party:")
        }
        names = parties.party_names(s, principal, ids)
    for e in entries:
        party_id = e["actor"].removeprefix("party:")
        if e["actor"].startswith("party:") and party_id in names:
            e["actor"] = f"party {names[party_id]}"
    return entries, total
