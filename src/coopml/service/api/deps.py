"""Request dependencies: the deployment context, a database session and the caller."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.service.api.errors import ApiError
from coopml.service.context import ServiceContext
from coopml.service.security import hash_token
from coopml.service.storage.models import ApiToken, Party

__all__ = [
    "COOKIE_NAME",
    "Caller",
    "Ctx",
    "Db",
    "Principal",
    "authenticate",
    "get_principal",
    "valid_id",
]

COOKIE_NAME = "coopml_token"
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the operator, or one party of one market."""

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


def valid_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id (uuid4 hex)."""
    return bool(_ID.match(value))


def get_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.service
    return ctx


def get_session(request: Request) -> Iterator[Session]:
    """A session; endpoints that write call ``commit()`` before returning (anything
    uncommitted is rolled back when the request ends)."""
    with get_context(request).db.sessions() as s:
        yield s


def authenticate(s: Session, token: str) -> Principal | None:
    """The principal a bearer token stands for, or None."""
    if not token or len(token) > 512:
        return None
    row = s.execute(
        select(ApiToken, Party)
        .outerjoin(Party, ApiToken.party_id == Party.id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        return None
    tok, party = row
    if tok.role == "operator":
        return Principal("operator", name="operator")
    if party is None:
        return None
    return Principal("party", party.id, party.market_id, party.name)


def request_token(request: Request) -> str:
    """The bearer token of a request (header first, then the dashboard cookie)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE_NAME, "")


Ctx = Annotated[ServiceContext, Depends(get_context)]
Db = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, s: Db) -> Principal:
    """The authenticated caller; 401 when the token is missing or unknown."""
    return require_principal(s, request)


def require_principal(s: Session, request: Request) -> Principal:
    """The caller of ``request`` (its token looked up in ``s``); 401 when it has none."""
    principal = authenticate(s, request_token(request))
    if principal is None:
        raise ApiError(
            401,
            "unauthenticated",
            "missing or invalid token: send 'Authorization: Bearer <token>'",
        )
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


def require_operator(principal: Principal, action: str) -> None:
    """403 unless the caller is the operator."""
    if not principal.is_operator:
        raise ApiError(403, "forbidden", f"only the operator may {action}")


def require_party(principal: Principal, action: str) -> None:
    """403 unless the caller is a party."""
    if principal.is_operator:
        raise ApiError(403, "forbidden", f"only a party may {action}")
