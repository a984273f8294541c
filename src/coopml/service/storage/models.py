"""SQLAlchemy 2 models of the marketplace.

``ledger_entries`` and ``audit_log`` are append-only: the code has no update or delete
path for them and the migration installs triggers that reject ``UPDATE`` and ``DELETE``
on both (SQLite and PostgreSQL). ``settlements.round_id`` is unique: a round settles at
most once, whatever the number of workers.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Dataset",
    "Job",
    "LedgerEntry",
    "Market",
    "ModelArtifact",
    "Party",
    "Round",
    "SettlementLineRow",
    "SettlementRow",
    "new_id",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A new uuid4 hex id."""
    return uuid.uuid4().hex


def utcnow() -> datetime.datetime:
    """Now, timezone-aware UTC."""
    return datetime.datetime.now(datetime.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


def _created() -> Mapped[datetime.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class ApiToken(Base):
    """A bearer token (hashed): the operator's, or one party's."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = _id()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    party_id: Mapped[str | None] = mapped_column(ForeignKey("parties.id"), nullable=True)
    created_at: Mapped[datetime.datetime] = _created()


class Market(Base):
    __tablename__ = "markets"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    task: Mapped[str] = mapped_column(String(20), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime.datetime] = _created()


class Party(Base):
    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("market_id", "name", name="uq_parties_market_name"),)
    id: Mapped[str] = _id()
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime.datetime] = _created()


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = _id()
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"), nullable=False, index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    n_rows: Mapped[int] = mapped_column(Integer, nullable=False)
    n_features: Mapped[int] = mapped_column(Integer, nullable=False)
    columns: Mapped[Any] = mapped_column(JSON, nullable=False)
    target: Mapped[str] = mapped_column(String(200), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    blob: Mapped[str] = mapped_column(String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime.datetime] = _created()


class Round(Base):
    __tablename__ = "rounds"
    id: Mapped[str] = _id()
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    message: Mapped[str] = mapped_column(Text, nullable=False, default="")
    config: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime.datetime] = _created()
    started_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    finished_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Job(Base):
    """A durable unit of work (one per round) with a lease."""

    __tablename__ = "jobs"
    id: Mapped[str] = _id()
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, default="round")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime.datetime] = _created()
    updated_at: Mapped[datetime.datetime] = _created()


class SettlementRow(Base):
    """The settled record of a round (``Settlement.to_dict()``) and its audit."""

    __tablename__ = "settlements"
    id: Mapped[str] = _id()
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), nullable=False, unique=True)
    record: Mapped[Any] = mapped_column(JSON, nullable=False)
    audit: Mapped[Any] = mapped_column(JSON, nullable=False)
    verified: Mapped[bool] = mapped_column(Boolean, nullable=False)
    worker: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime.datetime] = _created()


class SettlementLineRow(Base):
    __tablename__ = "settlement_lines"
    __table_args__ = (UniqueConstraint("round_id", "party_id", name="uq_lines_round_party"),)
    id: Mapped[str] = _id()
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), nullable=False, index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    fee: Mapped[float] = mapped_column(Float, nullable=False)
    payout: Mapped[float] = mapped_column(Float, nullable=False)
    net: Mapped[float] = mapped_column(Float, nullable=False)
    payoff: Mapped[float] = mapped_column(Float, nullable=False)
    improvement: Mapped[float] = mapped_column(Float, nullable=False)
    share: Mapped[float] = mapped_column(Float, nullable=False)
    value_before: Mapped[float] = mapped_column(Float, nullable=False)
    value_after: Mapped[float] = mapped_column(Float, nullable=False)
    members: Mapped[Any] = mapped_column(JSON, nullable=False)


class ModelArtifact(Base):
    """A party's customised model: an encrypted skops blob."""

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("round_id", "party_id", name="uq_models_round_party"),)
    id: Mapped[str] = _id()
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), nullable=False, index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), nullable=False)
    blob: Mapped[str] = mapped_column(String(64), nullable=False)
    n_features: Mapped[int] = mapped_column(Integer, nullable=False)
    members: Mapped[Any] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime.datetime] = _created()


class LedgerEntry(Base):
    """Append-only money movements of a round."""

    __tablename__ = "ledger_entries"
    id: Mapped[str] = _id()
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), nullable=False, index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    amount: Mapped[float] = mapped_column(Float, nullable=False)
    created_at: Mapped[datetime.datetime] = _created()


class AuditEntry(Base):
    """Append-only record of every access to a dataset, model or prediction endpoint and
    of every state-changing action."""

    __tablename__ = "audit_log"
    id: Mapped[str] = _id()
    at: Mapped[datetime.datetime] = _created()
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    item_type: Mapped[str] = mapped_column(String(32), nullable=False)
    item_id: Mapped[str] = mapped_column(String(32), nullable=False)
    request_id: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    market_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    party_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
