"""Request dependencies: the deployment context, a database session and the caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from coopml.service.api.errors import ApiError
from coopml.service.context import ServiceContext
from coopml.service.domain import tokens
from coopml.service.domain._query import valid_id
from coopml.service.domain.parties import (
    Principal,
    authenticate,
    principal_of,
    require_operator,
    require_party,
)

__all__ = [
    "Caller",
    "Ctx",
    "Db",
    "Principal",
    "authenticate",
    "bearer_challenge",
    "get_principal",
    "principal_of",
    "require_operator",
    "require_party",
    "valid_id",
]


def get_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.service
    return ctx


def get_session(request: Request) -> Iterator[Session]:
    """A session; endpoints that write call ``commit()`` before returning (anything
    uncommitted is rolled back when the request ends)."""
    with get_context(request).db.sessions() as s:
        yield s


def request_token(request: Request) -> str:
    """The bearer token of a request (``Authorization: Bearer``; the dashboard's cookie
    holds a session id, never a token, and does not authenticate API calls)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return ""


def bearer_challenge(rejected: tokens.TokenRejected) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750: ``invalid_token`` when a
    token was sent but does not authenticate)."""
    value = 'Bearer realm="coopml"'
    if rejected.reason != "missing":
        reason = {"expired": "The token expired", "revoked": "The token was revoked"}
        text = reason.get(rejected.reason, "Unknown token")
        value += f', error="invalid_token", error_description="{text}"'
    return {"WWW-Authenticate": value}


Ctx = Annotated[ServiceContext, Depends(get_context)]
Db = Annotated[Session, Depends(get_session)]


def get_principal(request: Request, s: Db) -> Principal:
    """The authenticated caller; 401 when the token is missing or unknown."""
    return require_principal(s, request)


def require_principal(s: Session, request: Request) -> Principal:
    """The caller of ``request`` (its token looked up in ``s``); 401 with a
    ``WWW-Authenticate`` challenge when the token is missing, unknown, expired or
    revoked (codes ``unauthenticated``, ``token_expired``, ``token_revoked``)."""
    try:
        return principal_of(tokens.authenticate(s, request_token(request)))
    except tokens.TokenRejected as rejected:
        code = {"expired": "token_expired", "revoked": "token_revoked"}
        raise ApiError(
            401,
            code.get(rejected.reason, "unauthenticated"),
            rejected.message,
            bearer_challenge(rejected),
        ) from None


Caller = Annotated[Principal, Depends(get_principal)]
