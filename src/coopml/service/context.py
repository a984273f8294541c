"""The resources one deployment shares: settings, database, blob store, operator token."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.service.domain.ledger import append_audit_entry
from coopml.service.security import (
    Cipher,
    generate_token,
    load_or_create_key,
    private_directory,
    write_private_file,
)
from coopml.service.settings import Settings
from coopml.service.storage.blobs import BlobStore
from coopml.service.storage.database import Database
from coopml.service.storage.keys import assert_no_pending_rotation
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
        private_directory(settings.data_dir)
        assert_no_pending_rotation(settings.data_dir)  # blobs would mix two keys
        key = settings.secret_key or load_or_create_key(settings.data_dir)
        db = Database(settings)
        db.migrate()
        ctx = cls(settings, db, BlobStore(settings.data_dir / "blobs", Cipher(key)))
        if bootstrap:
            ctx.operator_token_path = ctx._bootstrap_operator()
        return ctx

    def _bootstrap_operator(self) -> Path | None:
        """Make the configured operator token (``COOPML_OPERATOR_TOKEN``, else
        ``DATA_DIR/operator.token``, else a new one written there) the only live one:
        a rotated configuration revokes the old token at start."""
        settings = self.settings
        path = settings.data_dir / "operator.token"
        with self.db.session() as s:
            if settings.operator_token:
                _ensure_operator(s, settings.operator_token)
                return None
            if path.exists():
                _ensure_operator(s, path.read_text().strip())
                return path
            live = select(ApiToken.id).where(
                ApiToken.role == "operator", ApiToken.revoked_at.is_(None)
            )
            if s.scalar(live.limit(1)):
                return None  # created elsewhere (a shared database); its file lives there
            token = generate_token()
            write_private_file(path, token.encode() + b"\n")
            _ensure_operator(s, token)
            return path

    def rotate_operator_token(self) -> tuple[str, Path]:
        """Issue a new operator token, revoke every older one (at once: a running server
        looks tokens up in the database) and write it to ``DATA_DIR/operator.token``
        (0600). The token and the file; ``ValueError`` when the token comes from
        ``COOPML_OPERATOR_TOKEN`` (change the variable and restart instead)."""
        from coopml.service.domain.tokens import rotate_operator_token

        if self.settings.operator_token:
            raise ValueError(
                "the operator token comes from COOPML_OPERATOR_TOKEN: set it to a new value "
                "and restart 'coopml serve' (the old token is revoked at start)"
            )
        path = self.settings.data_dir / "operator.token"
        with self.db.session() as s:
            issued = rotate_operator_token(s, actor="admin")
            # the file first: if the commit then fails, the next start adopts the file
            write_private_file(path, issued.token.encode() + b"\n")
        return issued.token, path


def _ensure_operator(s: Session, token: str) -> None:
    from coopml.service.domain.tokens import set_operator_token  # the domain imports us

    set_operator_token(s, token)


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
) -> AuditEntry:
    """Append an audit-log entry (``party_id``: the party the item belongs to) to the
    audit log's hash chain (:mod:`coopml.service.domain.ledger`; the chain stays locked
    until ``s`` commits, so commit soon after); returns the entry."""
    return append_audit_entry(
        s,
        actor=actor,
        action=action,
        item_type=item_type,
        item_id=item_id,
        request_id=request_id_var.get(),
        market_id=market_id,
        party_id=party_id,
    )
