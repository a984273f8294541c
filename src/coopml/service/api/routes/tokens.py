"""``/markets/{market_id}/parties/{party_id}/token``: revoke and rotate a party's token.

The rules live in :mod:`coopml.service.domain.tokens`; these handlers translate HTTP
(an unknown party is the domain's ``NotFound``: 404).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from coopml.service.api.deps import Caller, Ctx, Db, require_operator
from coopml.service.api.schemas import PartyTokenOut
from coopml.service.domain import tokens

router = APIRouter(tags=["tokens"])

PATH = "/markets/{market_id}/parties/{party_id}/token"


@router.delete(PATH, status_code=204, response_class=Response)
def revoke_party_token(market_id: str, party_id: str, caller: Caller, s: Db) -> Response:
    """Revoke every token of a party (operator): from now on they answer 401, and the
    party's dashboard sessions end. The party gets a new token with ``POST``."""
    require_operator(caller, "revoke tokens")
    tokens.revoke_party_tokens(s, market_id, party_id, actor=caller.actor)
    s.commit()
    return Response(status_code=204)


@router.post(PATH, status_code=201, response_model=PartyTokenOut)
def rotate_party_token(
    market_id: str, party_id: str, caller: Caller, s: Db, ctx: Ctx
) -> dict[str, Any]:
    """Issue a new token for a party (operator), shown only in this response; every
    older token of the party is revoked."""
    require_operator(caller, "rotate tokens")
    issued = tokens.rotate_party_token(
        s,
        market_id,
        party_id,
        actor=caller.actor,
        ttl_seconds=ctx.settings.token_ttl_seconds,
    )
    s.commit()
    return {
        "party_id": issued.party_id,
        "market_id": issued.market_id,
        "name": issued.name,
        "token": issued.token,
        "expires_at": issued.expires_at,
    }
