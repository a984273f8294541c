"""API tokens and dashboard sessions: issue, authenticate, expire, revoke, rotate.

The rules, in one place (the API's authentication dependency, the dashboard's login and
``coopml admin`` all call these functions):

* A token is ``secrets.token_urlsafe(32)`` (256 bits); the database keeps only its
  SHA-256 (:func:`coopml.service.security.hash_token`), with ``expires_at`` (``None``:
  never) and ``revoked_at``. The token itself is shown once, when it is issued.
* A token authenticates while it is neither revoked nor past ``expires_at``
  (:func:`authenticate`); otherwise :class:`TokenRejected` says which (``missing``,
  ``invalid``, ``expired`` or ``revoked``). Revoked rows are kept, so that their holder
  learns the token was revoked rather than mistyped.
* A party's tokens expire ``Settings.token_ttl_seconds`` after they are issued (no
  expiry when that is ``None``). :func:`revoke_party_tokens` revokes every live token of
  a party; :func:`rotate_party_token` does that and issues a new one, in one transaction.
  Both are audited.
* The operator has exactly one live token, which never expires. At start the service
  makes the configured one (``COOPML_OPERATOR_TOKEN`` or ``DATA_DIR/operator.token``)
  the only live one (:func:`set_operator_token`): changing the configuration and
  restarting revokes the old token. :func:`rotate_operator_token` (``coopml admin
  rotate-operator-token``) issues a new one and revokes the old at once, server running
  or not. A revoked operator token cannot be configured again.
* A dashboard session (:func:`open_session`) is a separate random id (256 bits): the
  cookie carries it, the database its SHA-256, and it never carries the API token. It
  ends at logout (:func:`close_session`), at its expiry (``Settings.session_ttl_seconds``,
  never later than its token's) and when its token is revoked or expires.

Every function takes ``now`` (timezone-aware UTC); by default the module's :data:`clock`,
which tests may replace.
"""

from __future__ import annotations

import datetime
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from coopml.service.context import record_audit
from coopml.service.domain.errors import NotFound
from coopml.service.security import generate_token, hash_token
from coopml.service.storage.models import ApiToken, Party, WebSession, utcnow

__all__ = [
    "MAX_TOKEN_LENGTH",
    "Identity",
    "IssuedToken",
    "OpenedSession",
    "RevokedOperatorToken",
    "TokenRejected",
    "UnknownParty",
    "authenticate",
    "clock",
    "close_session",
    "issue_party_token",
    "open_session",
    "revoke_party_tokens",
    "rotate_operator_token",
    "rotate_party_token",
    "session_identity",
    "set_operator_token",
]

#: Longer strings are not looked up (a token is 43 characters).
MAX_TOKEN_LENGTH = 512
#: Where "now" comes from (tests replace it to move time forward).
clock: Callable[[], datetime.datetime] = utcnow

Reason = Literal["missing", "invalid", "expired", "revoked"]
_ID = re.compile(r"^[0-9a-f]{32}$")
_INVALID = "missing or invalid token: send 'Authorization: Bearer <token>'"


class TokenRejected(Exception):
    """A token (or dashboard session) that does not authenticate, and why.

    ``reason`` is ``missing``, ``invalid``, ``expired`` or ``revoked``; ``message`` is a
    sentence for the caller.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message


class UnknownParty(NotFound, LookupError):
    """No such party in that market."""


class RevokedOperatorToken(ValueError):
    """The configured operator token was revoked by a rotation: configure a new one."""


@dataclass(frozen=True)
class Identity:
    """Who a token (or a session) stands for: the operator or one party of one market."""

    role: str
    party_id: str | None
    market_id: str | None
    name: str | None
    token_id: str
    expires_at: datetime.datetime | None = None


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: ``token`` is shown once and stored nowhere."""

    token_id: str
    token: str
    role: str
    party_id: str | None
    market_id: str | None
    name: str | None
    expires_at: datetime.datetime | None


@dataclass(frozen=True)
class OpenedSession:
    """A dashboard session just opened: ``session_id`` goes into the cookie only."""

    session_id: str
    identity: Identity
    expires_at: datetime.datetime


def _utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """Timezone-aware UTC (SQLite hands datetimes back naive)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    value = _utc(now if now is not None else clock())
    assert value is not None
    return value


def _stamp(value: datetime.datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return aware.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------- authentication
def _identity(tok: ApiToken, party: Party | None, now: datetime.datetime) -> Identity:
    """The identity of a token row, or :class:`TokenRejected` if it is dead."""
    if tok.revoked_at is not None:
        raise TokenRejected(
            "revoked",
            f"token revoked at {_stamp(tok.revoked_at)}: it was rotated or withdrawn; "
            "ask the operator for a new one",
        )
    expires = _utc(tok.expires_at)
    if expires is not None and now >= expires:
        raise TokenRejected(
            "expired",
            f"token expired at {_stamp(expires)}; ask the operator for a new one "
            "(coopml client rotate-token)",
        )
    if tok.role == "operator":
        return Identity("operator", None, None, "operator", tok.id, expires)
    if party is None:
        raise TokenRejected("invalid", _INVALID)
    return Identity("party", party.id, party.market_id, party.name, tok.id, expires)


def authenticate(s: Session, token: str, *, now: datetime.datetime | None = None) -> Identity:
    """Who ``token`` belongs to; :class:`TokenRejected` when it is missing, unknown,
    expired or revoked."""
    if not token:
        raise TokenRejected("missing", _INVALID)
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenRejected("invalid", _INVALID)
    row = s.execute(
        select(ApiToken, Party)
        .outerjoin(Party, ApiToken.party_id == Party.id)
        .where(ApiToken.token_hash == hash_token(token))
    ).first()
    if row is None:
        raise TokenRejected("invalid", _INVALID)
    return _identity(row[0], row[1], _now(now))


# ------------------------------------------------------------------------ party tokens
def _party(s: Session, market_id: str, party_id: str, *, lock: bool = False) -> Party:
    if not (_ID.match(market_id) and _ID.match(party_id)):
        raise UnknownParty(f"party {party_id!r} not found in market {market_id!r}")
    query = select(Party).where(Party.id == party_id, Party.market_id == market_id)
    party = s.scalar(query.with_for_update() if lock else query)
    if party is None:
        raise UnknownParty(f"party {party_id!r} not found in market {market_id!r}")
    return party


def _issue(
    s: Session,
    role: str,
    party: Party | None,
    ttl_seconds: float | None,
    now: datetime.datetime,
    token: str | None = None,
) -> IssuedToken:
    token = token or generate_token()
    expires = None if ttl_seconds is None else now + datetime.timedelta(seconds=ttl_seconds)
    row = ApiToken(
        token_hash=hash_token(token),
        role=role,
        party_id=None if party is None else party.id,
        created_at=now,
        expires_at=expires,
    )
    s.add(row)
    s.flush()
    return IssuedToken(
        row.id,
        token,
        role,
        None if party is None else party.id,
        None if party is None else party.market_id,
        "operator" if party is None else party.name,
        expires,
    )


def issue_party_token(
    s: Session,
    party: Party,
    *,
    ttl_seconds: float | None = None,
    now: datetime.datetime | None = None,
) -> IssuedToken:
    """A new token for ``party`` (a flushed row), expiring ``ttl_seconds`` from now
    (never when ``None``). The caller audits (registering a party does)."""
    return _issue(s, "party", party, ttl_seconds, _now(now))


def _revoke_live(s: Session, *conditions: object, now: datetime.datetime) -> int:
    result = s.execute(
        update(ApiToken)
        .where(ApiToken.revoked_at.is_(None), *conditions)  # type: ignore[arg-type]
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def revoke_party_tokens(
    s: Session,
    market_id: str,
    party_id: str,
    *,
    actor: str,
    now: datetime.datetime | None = None,
) -> int:
    """Revoke every live token of a party (its dashboard sessions end with them); the
    number revoked. Audited as ``party_token_revoked``; :class:`UnknownParty` when the
    market has no such party."""
    when = _now(now)
    party = _party(s, market_id, party_id, lock=True)
    n = _revoke_live(s, ApiToken.party_id == party.id, now=when)
    record_audit(
        s,
        actor,
        "party_token_revoked",
        "party",
        party.id,
        market_id=party.market_id,
        party_id=party.id,
    )
    return n


def rotate_party_token(
    s: Session,
    market_id: str,
    party_id: str,
    *,
    actor: str,
    ttl_seconds: float | None = None,
    now: datetime.datetime | None = None,
) -> IssuedToken:
    """Revoke every live token of a party and issue a new one (shown once). Audited as
    ``party_token_rotated``; :class:`UnknownParty` when the market has no such party."""
    when = _now(now)
    party = _party(s, market_id, party_id, lock=True)
    _revoke_live(s, ApiToken.party_id == party.id, now=when)
    issued = _issue(s, "party", party, ttl_seconds, when)
    record_audit(
        s,
        actor,
        "party_token_rotated",
        "party",
        party.id,
        market_id=party.market_id,
        party_id=party.id,
    )
    return issued


# ---------------------------------------------------------------------- operator token
def set_operator_token(
    s: Session, token: str, *, actor: str = "admin", now: datetime.datetime | None = None
) -> bool:
    """Make ``token`` (the configured one) the only live operator token: add it when new
    and revoke every other operator token. Whether anything changed; an old token
    revoked is audited as ``operator_token_rotated``. Raises
    :class:`RevokedOperatorToken` when ``token`` itself was revoked."""
    when = _now(now)
    row = s.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is not None and (row.role != "operator" or row.revoked_at is not None):
        raise RevokedOperatorToken(
            "the configured operator token (COOPML_OPERATOR_TOKEN or DATA_DIR/operator.token) "
            "was revoked by a rotation and cannot be used again: set COOPML_OPERATOR_TOKEN to "
            "a new value, or run 'coopml admin rotate-operator-token --data-dir DIR'"
        )
    added = row is None
    if row is None:
        row = ApiToken(token_hash=hash_token(token), role="operator", created_at=when)
        s.add(row)
        s.flush()
    n = _revoke_live(s, ApiToken.role == "operator", ApiToken.id != row.id, now=when)
    if n:
        record_audit(s, actor, "operator_token_rotated", "operator", row.id)
    return added or n > 0


def rotate_operator_token(
    s: Session, *, actor: str = "admin", now: datetime.datetime | None = None
) -> IssuedToken:
    """Revoke every operator token and issue a new one (shown once; the caller stores
    it). Audited as ``operator_token_rotated``."""
    when = _now(now)
    _revoke_live(s, ApiToken.role == "operator", now=when)
    issued = _issue(s, "operator", None, None, when)
    record_audit(s, actor, "operator_token_rotated", "operator", issued.token_id)
    return issued


# ---------------------------------------------------------------------------- sessions
def open_session(
    s: Session,
    token: str,
    *,
    ttl_seconds: float,
    now: datetime.datetime | None = None,
) -> OpenedSession:
    """Log in with an API token: a new session (random id, stored hashed) that expires
    after ``ttl_seconds`` or with its token, whichever is first. Raises
    :class:`TokenRejected` for a token that does not authenticate. Expired sessions are
    pruned; the login is audited as ``session_opened``."""
    when = _now(now)
    identity = authenticate(s, token, now=when)
    expires = when + datetime.timedelta(seconds=ttl_seconds)
    if identity.expires_at is not None:
        expires = min(expires, identity.expires_at)
    s.execute(
        delete(WebSession)
        .where(WebSession.expires_at <= when)
        .execution_options(synchronize_session=False)
    )
    session_id = secrets.token_urlsafe(32)
    row = WebSession(
        session_hash=hash_token(session_id),
        token_id=identity.token_id,
        created_at=when,
        expires_at=expires,
    )
    s.add(row)
    s.flush()
    _audit_session(s, identity, "session_opened", row.id)
    return OpenedSession(session_id, identity, expires)


def _audit_session(s: Session, identity: Identity, action: str, session_row: str) -> None:
    actor = "operator" if identity.role == "operator" else f"party:{identity.party_id}"
    record_audit(
        s,
        actor,
        action,
        "session",
        session_row,
        market_id=identity.market_id,
        party_id=identity.party_id,
    )


def _session_row(s: Session, session_id: str) -> tuple[WebSession, ApiToken, Party | None] | None:
    if not session_id or len(session_id) > MAX_TOKEN_LENGTH:
        return None
    row = s.execute(
        select(WebSession, ApiToken, Party)
        .join(ApiToken, WebSession.token_id == ApiToken.id)
        .outerjoin(Party, ApiToken.party_id == Party.id)
        .where(WebSession.session_hash == hash_token(session_id))
    ).first()
    return None if row is None else (row[0], row[1], row[2])


def session_identity(
    s: Session, session_id: str, *, now: datetime.datetime | None = None
) -> Identity:
    """Who a dashboard session belongs to; :class:`TokenRejected` when the session is
    unknown, logged out, expired, or its token was revoked or expired."""
    when = _now(now)
    found = _session_row(s, session_id)
    if found is None:
        raise TokenRejected("missing" if not session_id else "invalid", "not logged in")
    session, tok, party = found
    if session.revoked_at is not None:
        raise TokenRejected("revoked", "logged out")
    expires = _utc(session.expires_at)
    if expires is not None and when >= expires:
        raise TokenRejected("expired", "session expired; log in again")
    return _identity(tok, party, when)


def close_session(s: Session, session_id: str, *, now: datetime.datetime | None = None) -> bool:
    """Log out: revoke the session (its cookie no longer works). Whether a live session
    was closed; audited as ``session_closed``."""
    when = _now(now)
    found = _session_row(s, session_id)
    if found is None or found[0].revoked_at is not None:
        return False
    session, tok, party = found
    session.revoked_at = when
    try:
        identity = _identity(tok, party, when)
    except TokenRejected:
        return True
    _audit_session(s, identity, "session_closed", session.id)
    return True
