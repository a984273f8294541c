"""Markets as the caller may see them: the operator every market, a party its own.

The API's market routes and the dashboard call these functions; another party's market
answers :class:`~coopml.service.domain.errors.NotFound`, exactly like one that does not
exist.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coopml.service.context import record_audit
from coopml.service.custody import (
    CHECK_IN_SECONDS,
    check_in,
    connected_agents,
    superlink_incarnation,
)
from coopml.service.domain import datasets, release
from coopml.service.domain._query import paginate, valid_id
from coopml.service.domain.errors import Conflict, Forbidden, not_found
from coopml.service.domain.parties import Principal, require_operator
from coopml.service.storage.models import Market, Party, utc

if TYPE_CHECKING:
    from coopml.service.settings import Settings

__all__ = ["agent_connection", "create_market", "list_markets", "market_view", "visible_market"]


def create_market(
    s: Session,
    principal: Principal,
    settings: Settings,
    *,
    name: str,
    task: str,
    description: str = "",
    release_policy: str = "query_only",
    predict_quota: int | None = None,
    predict_window_seconds: int | None = None,
    schema: dict[str, Any] | None = None,
    quotas: dict[str, Any] | None = None,
    custody: str = "operator",
) -> Market:
    """Create a market (operator) with its model release policy and prediction quota
    (:mod:`coopml.service.domain.release`; ``full`` is audited), its declared data
    schema and upload quotas (:mod:`coopml.service.domain.datasets`; ``None``: the
    first upload fixes the schema, the service's quotas apply); committed."""
    require_operator(principal, "create markets")
    # custody "parties": the rows stay with the parties' agents (coopml.custody)
    market = Market(name=name, task=task, description=description, custody=custody)
    audited = release.configure_market(
        market,
        release_policy,
        predict_quota,
        predict_window_seconds,
        default_quota=settings.predict_quota,
        default_window_seconds=settings.predict_window_seconds,
    )
    datasets.configure_market(market, schema, quotas)
    s.add(market)
    s.flush()
    record_audit(s, principal.actor, "market_created", "market", market.id, market_id=market.id)
    for action in audited:
        record_audit(s, principal.actor, action, "market", market.id, market_id=market.id)
    s.commit()
    return market


def visible_market(s: Session, principal: Principal, market_id: str) -> Market:
    """The market, if the caller may see it (the operator: any; a party: its own)."""
    market = s.get(Market, market_id) if valid_id(market_id) else None
    if market is None or (not principal.is_operator and principal.market_id != market.id):
        raise not_found("market", market_id)
    return market


def list_markets(
    s: Session,
    principal: Principal,
    *,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> tuple[list[Market], int]:
    """The markets the caller may see (operator: all; a party: its own), oldest first
    (``newest_first``: newest first), and how many there are."""
    created = Market.created_at.desc() if newest_first else Market.created_at
    query = select(Market).order_by(created, Market.id)
    if not principal.is_operator:
        query = query.where(Market.id == principal.market_id)
    return paginate(s, query, limit, offset)


def market_view(s: Session, m: Market, viewer: Principal | None = None) -> dict[str, Any]:
    """A market as the API shows it to ``viewer``: all of it, except that a party sees
    only whether its own agent is connected (never which other parties' are)."""
    connected = connected_agents(s, m.id) if m.custody == "parties" else []
    if viewer is not None and not viewer.is_operator:
        connected = [name for name in connected if name == viewer.name]
    n = s.scalar(select(func.count()).select_from(Party).where(Party.market_id == m.id)) or 0
    return {
        "id": m.id,
        "name": m.name,
        "task": m.task,
        "description": m.description,
        "created_at": utc(m.created_at),
        "n_parties": int(n),
        "release_policy": m.release_policy,
        "predict_quota": int(m.predict_quota),
        "predict_window_seconds": int(m.predict_window_seconds),
        "schema": m.data_schema,
        "custody": m.custody,
        "agents_connected": connected,
        "quotas": {
            "max_datasets_per_party": m.max_datasets_per_party,
            "max_bytes_per_party": m.max_bytes_per_party,
        },
    }


def agent_connection(
    s: Session, principal: Principal, settings: Settings, market_id: str
) -> dict[str, Any]:
    """A party's agent checks in (``coopml agent``): where the service's SuperLink
    takes agents (its Fleet API), the SuperLink's current incarnation (a new id at each
    (re)start: the agent then restarts its SuperNode) and how long rounds wait for
    them. Only a party of a parties-custody market, with its own token; recorded as
    connected (:func:`coopml.service.custody.check_in`)."""
    market = visible_market(s, principal, market_id)
    if principal.is_operator or principal.name is None:
        raise Forbidden("only a party's token may check in its agent")
    if market.custody != "parties":
        raise Conflict(
            f"market {market.id!r} is in operator custody: parties upload their datasets",
            code="operator_custody",
        )
    if settings.superlink == "off":
        raise Conflict(
            "the service runs no SuperLink (superlink 'off'): ask the operator for the "
            "address to pass as --superlink",
            code="no_superlink",
        )
    check_in(s, market.id, principal.name)
    return {
        "market_id": market.id,
        "party": principal.name,
        "fleet_api_address": settings.fleet_api_address,
        "superlink_incarnation": superlink_incarnation(settings),
        "insecure": settings.superlink_tls is None,
        "agent_timeout": settings.agent_timeout,
        "check_in_seconds": CHECK_IN_SECONDS,
    }
