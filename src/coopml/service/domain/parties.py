"""Who is calling, and the parties of a market as the caller may see them.

Visibility, in one place (the API and the dashboard both call these functions): the
operator sees every party; a party sees itself only. A caller is a :class:`Principal`:
the operator, or one party of one market.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coopml.service.context import record_audit
from coopml.service.domain import tokens
from coopml.service.domain._query import paginate
from coopml.service.domain.errors import Conflict, Forbidden
from coopml.service.storage.models import Market, Party, utc

__all__ = [
    "PARTY_NAME",
    "Principal",
    "authenticate",
    "list_parties",
    "party_names",
    "party_view",
    "principal_of",
    "register_party",
    "require_operator",
    "require_party",
]

#: What a party's name may be: 1 to 64 letters, digits, ``_``, ``.`` or ``-``.
PARTY_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator, or one party of one market.

    Examples
    --------
    >>> Principal("party", "p1", "m1", "alice").actor
    'party:p1'
    >>> Principal("operator").is_operator
    True
    """

    role: str
    party_id: str | None = None
    market_id: str | None = None
    name: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return "operator" if self.is_operator else f"party:{self.party_id}"


def principal_of(identity: tokens.Identity) -> Principal:
    """The principal of a domain identity (a live token or dashboard session)."""
    if identity.role == "operator":
        return Principal("operator", name="operator")
    return Principal("party", identity.party_id, identity.market_id, identity.name)


def authenticate(s: Session, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown, expired or revoked)."""
    try:
        return principal_of(tokens.authenticate(s, token))
    except tokens.TokenRejected:
        return None


def require_operator(principal: Principal, action: str) -> None:
    """:class:`Forbidden` unless the caller is the operator."""
    if not principal.is_operator:
        raise Forbidden(f"only the operator may {action}")


def require_party(principal: Principal, action: str) -> None:
    """:class:`Forbidden` unless the caller is a party."""
    if principal.is_operator:
        raise Forbidden(f"only a party may {action}")


def party_view(p: Party) -> dict[str, Any]:
    """A party as the API shows it."""
    return {"id": p.id, "name": p.name, "market_id": p.market_id, "created_at": utc(p.created_at)}


def list_parties(
    s: Session,
    principal: Principal,
    market: Market,
    *,
    limit: int | None = None,
    offset: int = 0,
    by_name: bool = False,
) -> tuple[list[Party], int]:
    """The market's parties (operator) or the caller itself (party), in order of
    registration (``by_name``: by name), and how many there are."""
    order = (Party.name,) if by_name else (Party.created_at, Party.id)
    query = select(Party).where(Party.market_id == market.id).order_by(*order)
    if not principal.is_operator:
        query = query.where(Party.id == principal.party_id)
    return paginate(s, query, limit, offset)


def register_party(
    s: Session, principal: Principal, market: Market, name: str, *, ttl_seconds: float | None
) -> tuple[Party, tokens.IssuedToken]:
    """Register a party (operator) and issue its token (shown once); committed.
    :class:`Conflict` (``duplicate_name``) when the market already has the name."""
    require_operator(principal, "register parties")
    taken = s.scalar(select(Party.id).where(Party.market_id == market.id, Party.name == name))
    if taken:
        raise Conflict(
            f"name: market {market.id} already has a party named {name!r}; names are "
            "unique per market",
            code="duplicate_name",
        )
    party = Party(market_id=market.id, name=name)
    try:  # the unique (market, name) constraint settles concurrent registrations
        s.add(party)
        s.flush()
        issued = tokens.issue_party_token(s, party, ttl_seconds=ttl_seconds)
        record_audit(
            s,
            principal.actor,
            "party_registered",
            "party",
            party.id,
            market_id=market.id,
            party_id=party.id,
        )
        s.commit()
    except IntegrityError:  # a concurrent registration of the same name won
        s.rollback()
        raise Conflict(
            f"name: a party named {name!r} was just registered", code="duplicate_name"
        ) from None
    return party, issued


def party_names(s: Session, principal: Principal, party_ids: set[str]) -> dict[str, str]:
    """Names of the parties among ``party_ids`` that the caller may know (the operator:
    all; a party: itself), by id."""
    ids = set(party_ids)
    if not principal.is_operator:
        ids &= {str(principal.party_id)}
    query = select(Party.id, Party.name).where(Party.id.in_(ids))
    return {str(row.id): str(row.name) for row in s.execute(query)}
