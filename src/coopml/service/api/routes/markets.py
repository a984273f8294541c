"""``/markets`` and ``/markets/{market_id}/parties``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from coopml.service.api.deps import Caller, Ctx, Db, require_operator
from coopml.service.api.routes._common import Limit, Offset, page
from coopml.service.api.schemas import (
    MarketIn,
    MarketOut,
    Page,
    PartyCreatedOut,
    PartyIn,
    PartyOut,
)
from coopml.service.domain import markets, parties

router = APIRouter(tags=["markets"])


@router.post("/markets", status_code=201, response_model=MarketOut)
def create_market(body: MarketIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Create a market (operator) with its model release policy and prediction quota
    (see :mod:`coopml.service.domain.release`; ``full`` is audited) and its custody
    (``"parties"``: no row leaves its owner, uploads are refused)."""
    market = markets.create_market(
        s,
        caller,
        ctx.settings,
        name=body.name,
        task=body.task,
        description=body.description,
        release_policy=body.release_policy,
        predict_quota=body.predict_quota,
        predict_window_seconds=body.predict_window_seconds,
        schema=None if body.schema_ is None else body.schema_.model_dump(),
        quotas=None if body.quotas is None else body.quotas.model_dump(),
        custody=body.custody,
    )
    return markets.market_view(s, market)


@router.get("/markets", response_model=Page[MarketOut])
def list_markets(caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0) -> dict[str, Any]:
    """Markets: all (operator) or the caller's own (party)."""
    rows, total = markets.list_markets(s, caller, limit=limit, offset=offset)
    return page([markets.market_view(s, m, caller) for m in rows], total, limit, offset)


@router.get("/markets/{market_id}", response_model=MarketOut)
def read_market(market_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """One market."""
    return markets.market_view(s, markets.visible_market(s, caller, market_id), caller)


@router.post("/markets/{market_id}/agent")
def agent_check_in(market_id: str, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """A party's agent checks in (parties custody, the party's token): the address of
    the service's SuperLink (Fleet API) to run its SuperNode against and its
    ``superlink_incarnation`` (a new id whenever the SuperLink restarts: the agent
    restarts its SuperNode); the market then lists the party among
    ``agents_connected`` for a minute (a row of the database)."""
    connection = markets.agent_connection(s, caller, ctx.settings, market_id)
    s.commit()
    return connection


@router.post("/markets/{market_id}/parties", status_code=201, response_model=PartyCreatedOut)
def create_party(market_id: str, body: PartyIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Register a party (operator); the response carries its token, shown only once."""
    require_operator(caller, "register parties")  # before looking the market up
    market = markets.visible_market(s, caller, market_id)
    party, issued = parties.register_party(
        s, caller, market, body.name, ttl_seconds=ctx.settings.token_ttl_seconds
    )
    return {
        **parties.party_view(party),
        "token": issued.token,
        "token_expires_at": issued.expires_at,
    }


@router.get("/markets/{market_id}/parties", response_model=Page[PartyOut])
def list_parties(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Parties of a market: all (operator) or the caller itself (party)."""
    market = markets.visible_market(s, caller, market_id)
    rows, total = parties.list_parties(s, caller, market, limit=limit, offset=offset)
    return page([parties.party_view(p) for p in rows], total, limit, offset)
