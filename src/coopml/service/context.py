"""The resources one deployment shares: settings, database, blob store, operator token."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.service.security import (
    Cipher,
    generate_token,
    hash_token,
    load_or_create_key,
    write_private_file,
)
from coopml.service.settings import Settings
from coopml.service.storage.blobs import BlobStore
from coopml.service.storage.database import Database
from coopml.service.storage.models import ApiToken, AuditEntry

__all__ = ["ServiceContext", "record_audit", "request_id_var"]

#: The id of the request being served (set by the request-id middleware).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@dataclass
class ServiceContext:
    """Settings, database and blob store of a deployment."""

    settings: Settings
    db: Database
    blobs: BlobStore
    #: Where a generated operator token was written (None when it came from settings).
    operator_token_path: Path | None = None

    @classmethod
    def open(cls, settings: Settings, *, bootstrap: bool = True) -> ServiceContext:
        """Create the data directory and key, migrate the database and (``bootstrap``)
        make sure an operator token exists."""
        # Only the service's user may read the database, keys and blobs.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = settings.secret_key or load_or_create_key(settings.data_dir)
        db = Database(settings)
        db.migrate()
        ctx = cls(settings, db, BlobStore(settings.data_dir / "blobs", Cipher(key)))
        if bootstrap:
            ctx.operator_token_path = ctx._bootstrap_operator()
        return ctx

    def _bootstrap_operator(self) -> Path | None:
        settings = self.settings
        path = settings.data_dir / "operator.token"
        with self.db.session() as s:
            if settings.operator_token:
                _ensure_operator(s, settings.operator_token)
                return None
            if path.exists():
                _ensure_operator(s, path.read_text().strip())
                return path
            if s.scalar(select(ApiToken.id).where(ApiToken.role == "operator").limit(1)):
                return None  # created elsewhere (a shared database); its file lives there
            token = generate_token()
            write_private_file(path, token.encode() + b"\n")
            _ensure_operator(s, token)
            return path


def _ensure_operator(s: Session, token: str) -> None:
    digest = hash_token(token)
    if s.scalar(select(ApiToken.id).where(ApiToken.token_hash == digest)) is None:
        s.add(ApiToken(token_hash=digest, role="operator"))


def record_audit(
    s: Session,
    actor: str,
    action: str,
    item_type: str,
    item_id: str,
    *,
    market_id: str | None = None,
    party_id: str | None = None,
    **_: Any,
) -> None:
    """Append an audit-log entry (``party_id``: the party the item belongs to)."""
    s.add(
        AuditEntry(
            actor=actor,
            action=action,
            item_type=item_type,
            item_id=item_id,
            request_id=request_id_var.get(),
            market_id=market_id,
            party_id=party_id,
        )
    )
