"""SQLAlchemy 2 models of the marketplace.

``ledger_entries`` and ``audit_log`` are append-only: the code has no update or delete
path for them and the migration installs triggers that reject ``UPDATE`` and ``DELETE``
on both (SQLite and PostgreSQL). Each is also a hash chain (``chain_seq``,
``prev_hash``, ``entry_hash``, and its head in ``chain_heads``), so that edits by
someone who drops the triggers are detected (:mod:`coopml.service.domain.ledger`).
``settlements.round_id`` is unique: a round settles at most once, whatever the number
of workers.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
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
    "AgentCheckIn",
    "ApiToken",
    "AuditEntry",
    "Base",
    "ChainHead",
    "Dataset",
    "Job",
    "LedgerEntry",
    "Market",
    "ModelArtifact",
    "Party",
    "PredictionQuery",
    "Round",
    "SettlementLineRow",
    "SettlementRow",
    "WebSession",
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


def utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """Timezone-aware UTC (SQLite hands datetimes back naive; they are stored in UTC)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _id() -> Mapped[str]:
    return mapped_column(String(32), primary_key=True, default=new_id)


def _created() -> Mapped[datetime.datetime]:
    return mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class ApiToken(Base):
    """A bearer token (hashed): the operator's, or one party's. ``expires_at`` (None:
    never) and ``revoked_at`` (None: live) are set by :mod:`coopml.service.domain.tokens`;
    revoked rows are kept, so that their holder is told the token was revoked."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = _id()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    party_id: Mapped[str | None] = mapped_column(
        ForeignKey("parties.id"), nullable=True, index=True
    )
    created_at: Mapped[datetime.datetime] = _created()
    expires_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class WebSession(Base):
    """A dashboard session: the cookie holds a random id, the database its SHA-256. It
    lives until ``expires_at`` or logout (``revoked_at``), and no longer than the token
    it was opened with (``token_id``)."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = _id()
    session_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.id"), nullable=False, index=True)
    created_at: Mapped[datetime.datetime] = _created()
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class Market(Base):
    __tablename__ = "markets"
    id: Mapped[str] = _id()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    task: Mapped[str] = mapped_column(String(20), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime.datetime] = _created()
    # model release policy and prediction quota (coopml.service.domain.release), set at
    # creation; markets created before revision 0002 get the built-in defaults
    release_policy: Mapped[str] = mapped_column(
        String(16), nullable=False, default="query_only", server_default="query_only"
    )
    predict_quota: Mapped[int] = mapped_column(
        Integer, nullable=False, default=10_000, server_default="10000"
    )
    predict_window_seconds: Mapped[int] = mapped_column(
        Integer, nullable=False, default=3600, server_default="3600"
    )
    # datasets (coopml.service.domain.datasets, revision 0005): the schema every upload
    # must match (declared at creation or fixed by the first upload; None: not yet) and
    # per-party quotas (None: the service's defaults)
    data_schema: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    max_datasets_per_party: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_bytes_per_party: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # who holds the parties' rows (revision 0006): "operator" (uploaded, encrypted at
    # rest) or "parties" (they stay with each party's agent; coopml.custody)
    custody: Mapped[str] = mapped_column(
        String(16), nullable=False, default="operator", server_default="operator"
    )


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
    # a failure caused by one party's dataset (revision 0005): that party's id, the
    # dataset's and the message only that party is shown
    failure: Mapped[Any | None] = mapped_column(JSON, nullable=True)


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
    net_gain: Mapped[float] = mapped_column(Float, nullable=False)
    payoff: Mapped[float] = mapped_column(Float, nullable=False)
    improvement: Mapped[float] = mapped_column(Float, nullable=False)
    share: Mapped[float] = mapped_column(Float, nullable=False)
    own_gain: Mapped[float] = mapped_column(Float, nullable=False)
    model_gain: Mapped[float] = mapped_column(Float, nullable=False)
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
    # the release check (coopml.market.release) run when the model was stored: None for
    # models stored before revision 0002 (never released under 'aggregate_only')
    releasable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    release_check: Mapped[Any | None] = mapped_column(JSON, nullable=True)


class PredictionQuery(Base):
    """One call of a model's predict endpoint: how many rows (the per-party quota counts
    them); ``audit_id`` is the call's audit-log entry. Append-only, like the audit log."""

    __tablename__ = "prediction_queries"
    id: Mapped[str] = _id()
    at: Mapped[datetime.datetime] = _created()
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), nullable=False, index=True)
    party_id: Mapped[str] = mapped_column(ForeignKey("parties.id"), nullable=False)
    n_rows: Mapped[int] = mapped_column(Integer, nullable=False)
    audit_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)


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
    # hash chain (coopml.service.domain.ledger): position in the table's chain, the
    # previous entry's hash and this entry's
    chain_seq: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)


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
    # hash chain (coopml.service.domain.ledger), as in LedgerEntry
    chain_seq: Mapped[int] = mapped_column(Integer, nullable=False, unique=True)
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class ChainHead(Base):
    """The newest entry (number and hash) of the hash chain of ``ledger_entries`` or
    ``audit_log`` (``name``); its row is locked while an entry is appended."""

    __tablename__ = "chain_heads"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)


class AgentCheckIn(Base):
    """A party's ``coopml agent`` of a parties-custody market: when it last checked in
    (revision 0008; :mod:`coopml.service.custody`). One row per market and party,
    updated in place: every process of the deployment (``coopml serve``, the
    dashboard, a ``coopml worker`` elsewhere) sees the same agents."""

    __tablename__ = "agent_checkins"
    market_id: Mapped[str] = mapped_column(ForeignKey("markets.id"), primary_key=True)
    party: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
