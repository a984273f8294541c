"""``/markets`` and ``/markets/{market_id}/parties``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from coopml.service.api.deps import Caller, Ctx, Db, require_operator
from coopml.service.api.errors import ApiError
from coopml.service.api.routes._common import (
    Limit,
    Offset,
    get_market,
    market_out,
    page,
    paginate,
    party_out,
)
from coopml.service.api.schemas import (
    MarketIn,
    MarketOut,
    Page,
    PartyCreatedOut,
    PartyIn,
    PartyOut,
)
from coopml.service.context import record_audit
from coopml.service.domain import datasets, release, tokens
from coopml.service.storage.models import Market, Party

router = APIRouter(tags=["markets"])


@router.post("/markets", status_code=201, response_model=MarketOut)
def create_market(body: MarketIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Create a market (operator) with its model release policy and prediction quota
    (see :mod:`coopml.service.domain.release`); ``full`` is audited."""
    require_operator(caller, "create markets")
    market = Market(name=body.name, task=body.task, description=body.description)
    audited = release.configure_market(
        market,
        body.release_policy,
        body.predict_quota,
        body.predict_window_seconds,
        default_quota=ctx.settings.predict_quota,
        default_window_seconds=ctx.settings.predict_window_seconds,
    )
    try:  # the declared data schema and upload quotas (coopml.service.domain.datasets)
        datasets.configure_market(
            market,
            None if body.schema_ is None else body.schema_.model_dump(),
            None if body.quotas is None else body.quotas.model_dump(),
        )
    except datasets.DatasetRuleError as exc:
        raise ApiError(422, exc.code, exc.message) from None
    s.add(market)
    s.flush()
    record_audit(s, caller.actor, "market_created", "market", market.id, market_id=market.id)
    for action in audited:
        record_audit(s, caller.actor, action, "market", market.id, market_id=market.id)
    s.commit()
    return market_out(s, market)


@router.get("/markets", response_model=Page[MarketOut])
def list_markets(caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Markets: all (operator) or the caller's own (party)."""
    query = select(Market).order_by(Market.created_at, Market.id)
    if not caller.is_operator:
        query = query.where(Market.id == caller.market_id)
    rows, total = paginate(s, query, limit, offset)
    return page([market_out(s, m) for m in rows], total, limit, offset)


@router.get("/markets/{market_id}", response_model=MarketOut)
def read_market(market_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """One market."""
    return market_out(s, get_market(s, caller, market_id))


@router.post("/markets/{market_id}/parties", status_code=201, response_model=PartyCreatedOut)
def create_party(market_id: str, body: PartyIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Register a party (operator); the response carries its token, shown only once."""
    require_operator(caller, "register parties")
    market = get_market(s, caller, market_id)
    taken = s.scalar(select(Party.id).where(Party.market_id == market.id, Party.name == body.name))
    if taken:
        raise ApiError(
            409,
            "duplicate_name",
            f"name: market {market.id} already has a party named {body.name!r}; names are "
            "unique per market",
        )
    party = Party(market_id=market.id, name=body.name)
    try:  # the unique (market, name) constraint settles concurrent registrations
        s.add(party)
        s.flush()
        issued = tokens.issue_party_token(s, party, ttl_seconds=ctx.settings.token_ttl_seconds)
        record_audit(
            s,
            caller.actor,
            "party_registered",
            "party",
            party.id,
            market_id=market.id,
            party_id=party.id,
        )
        s.commit()
    except IntegrityError:  # a concurrent registration of the same name won
        s.rollback()
        raise ApiError(
            409, "duplicate_name", f"name: a party named {body.name!r} was just registered"
        ) from None
    return {**party_out(party), "token": issued.token, "token_expires_at": issued.expires_at}


@router.get("/markets/{market_id}/parties", response_model=Page[PartyOut])
def list_parties(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Parties of a market: all (operator) or the caller itself (party)."""
    market = get_market(s, caller, market_id)
    query = select(Party).where(Party.market_id == market.id).order_by(Party.created_at, Party.id)
    if not caller.is_operator:
        query = query.where(Party.id == caller.party_id)
    rows, total = paginate(s, query, limit, offset)
    return page([party_out(p) for p in rows], total, limit, offset)
