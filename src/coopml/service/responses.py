"""The HTTP API's response bodies, light enough for the client to import.

Two views of each body: the pydantic model the service answers with (``MarketOut``,
``RoundOut``, ...; :mod:`coopml.service.api.schemas` re-exports them next to the request
models), and the ``TypedDict`` of its JSON (``MarketDict``, ``RoundDict``, ...) that
:class:`coopml.service.client.CoopmlClient` returns: the same keys, with timestamps as
ISO 8601 strings. ``tests/service/test_client.py`` checks that the two views agree.
This module imports pydantic only (no server, no scikit-learn), so ``coopml client``
stays fast.

Examples
--------
>>> MarketOut.model_validate(
...     {"id": "m1", "name": "clinics", "task": "classification", "description": "",
...      "created_at": "2026-01-02T03:04:05Z", "n_parties": 0,
...      "release_policy": "query_only", "predict_quota": 10000,
...      "predict_window_seconds": 3600}
... ).custody
'operator'
"""

from __future__ import annotations

import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic reads it on Python < 3.12

__all__ = [
    "AuditDict",
    "AuditLogEntryDict",
    "AuditLogEntryOut",
    "AuditOut",
    "DataSchemaDict",
    "DataSchemaOut",
    "DatasetDict",
    "DatasetOut",
    "FeatureDict",
    "FeatureOut",
    "HealthDict",
    "HealthOut",
    "LedgerEntryDict",
    "LedgerEntryOut",
    "MarketDict",
    "MarketOut",
    "MeDict",
    "MeOut",
    "Page",
    "PageDict",
    "PartyCreatedDict",
    "PartyCreatedOut",
    "PartyDict",
    "PartyOut",
    "PartyTokenDict",
    "PartyTokenOut",
    "PredictOut",
    "QuotasDict",
    "QuotasOut",
    "ReleasePolicy",
    "RoundDict",
    "RoundOut",
    "RoundStatus",
    "SettlementDict",
    "SettlementFlagDict",
    "SettlementFlagOut",
    "SettlementLineDict",
    "SettlementLineOut",
    "SettlementOut",
    "SettlementPrivacyDict",
    "SettlementPrivacyOut",
]

T = TypeVar("T")

ReleasePolicy = Literal["query_only", "aggregate_only", "full"]
Task = Literal["classification", "regression"]
Custody = Literal["operator", "parties"]
RoundStatus = Literal["queued", "running", "stalled", "completed", "failed"]
LedgerKind = Literal["fee_collected", "fee_returned", "payout"]

# ---------------------------------------------------------------------------- models


class HealthOut(BaseModel):
    status: Literal["ok"]
    database: Literal["sqlite", "postgresql"]


class MeOut(BaseModel):
    role: Literal["operator", "party"]
    party_id: str | None
    market_id: str | None
    name: str | None


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    total: int
    limit: int
    offset: int


class FeatureOut(BaseModel):
    name: str
    type: str


class DataSchemaOut(BaseModel):
    target: str
    label_type: str
    classes: list[Any] | None
    features: list[FeatureOut]
    origin: Literal["declared", "first_upload"]


class QuotasOut(BaseModel):
    max_datasets_per_party: int | None = None
    max_bytes_per_party: int | None = None


class MarketOut(BaseModel):
    id: str
    name: str
    task: Task
    description: str
    created_at: datetime.datetime
    n_parties: int
    release_policy: ReleasePolicy = Field(
        description="Which model files parties may download (set at creation)"
    )
    predict_quota: int = Field(description="Rows per party and round per window")
    predict_window_seconds: int
    schema_: DataSchemaOut | None = Field(
        None,
        alias="schema",
        description="The schema every upload must match (declared by the operator or "
        "fixed by the first upload); null: not fixed yet",
    )
    quotas: QuotasOut = Field(
        default_factory=lambda: QuotasOut(),
        description="Per-party quotas set for this market (null: the service's defaults)",
    )
    custody: Custody = Field(
        "operator", description="Who holds the parties' rows (set at creation)"
    )
    agents_connected: list[str] = Field(
        default_factory=list,
        description="Parties custody: the parties whose agents are running (checked in "
        "within the last minute)",
    )


class PartyOut(BaseModel):
    id: str
    name: str
    market_id: str
    created_at: datetime.datetime


class PartyCreatedOut(PartyOut):
    token: str = Field(description="The party's API token: shown only in this response.")
    token_expires_at: datetime.datetime | None = Field(
        None, description="When the token expires (COOPML_TOKEN_TTL); null: never."
    )


class PartyTokenOut(BaseModel):
    """A party's new token (rotation): every older token of the party is revoked."""

    party_id: str
    market_id: str
    name: str
    token: str = Field(description="The party's new API token: shown only in this response.")
    expires_at: datetime.datetime | None = Field(
        None, description="When the token expires (COOPML_TOKEN_TTL); null: never."
    )


class DatasetOut(BaseModel):
    id: str
    party_id: str
    market_id: str
    name: str
    role: Literal["train", "validation"]
    format: Literal["csv", "parquet"]
    n_rows: int
    n_features: int
    columns: list[str]
    target: str
    sha256: str
    size_bytes: int
    created_at: datetime.datetime


class RoundOut(BaseModel):
    id: str
    market_id: str
    status: RoundStatus = Field(
        description="stalled: running, but its worker stopped heartbeating (its lease "
        "expired); the round resumes when another worker takes the job over"
    )
    progress: float
    message: str
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    heartbeat_at: datetime.datetime | None = Field(
        None, description="The last heartbeat of the worker running the round"
    )
    seconds_since_heartbeat: float | None = Field(
        None, description="Seconds since heartbeat_at, when the round was read"
    )
    config: dict[str, Any]


class SettlementPrivacyOut(BaseModel):
    mechanism: str = Field(description="'gaussian' (the Gaussian mechanism)")
    noise: bool = Field(description="False when the rows were clipped but no noise added")
    epsilon: float | None = Field(
        description="The round's epsilon, w.r.t. adding or removing one training row "
        "(null: infinite, no noise)"
    )
    delta: float | None
    clip: float | None = Field(description="Each training row's Euclidean norm bound")
    target_clip: float | None = Field(description="Regression: the bound on |target|")
    releases: int | None = Field(description="Noisy statistics released in the round")
    mu: float | None = Field(description="The round's Gaussian-DP mu (rounds compose as sqrt)")
    rho_zcdp: float | None = Field(description="mu^2 / 2 (zCDP; rounds add)")
    epsilon_zcdp: float | None = Field(
        description="The generic zCDP conversion's epsilon at delta (for comparison)"
    )


class SettlementLineOut(BaseModel):
    party_id: str
    name: str
    fee: float
    charge: float = Field(
        description="Paid for the improvement: price × improvement, or 0 when refunded"
    )
    fee_returned: float = Field(
        description="The part of the fee returned: fee - charge (the ledger's fee_returned)"
    )
    payout: float
    payout_stderr: float = Field(
        0.0,
        description="Standard error of an estimated payout (0 when the shares are exact)",
    )
    net_gain: float = Field(description="payout - charge (the party's gain on balance)")
    payoff: float
    improvement: float
    share: float
    own_gain: float = Field(
        description="Gain (score on the party's validation data) of a model trained on its "
        "own data alone"
    )
    model_gain: float = Field(
        description="Gain (score on the party's validation data) of the model the market "
        "trained for the party"
    )
    members: list[str] = Field(
        description="Parties whose data trained this party's model (a party sees only itself)"
    )
    n_members: int
    privacy: SettlementPrivacyOut | None = Field(
        None,
        description="Parties custody: the privacy of what this party's agent released in "
        "the round; null when its statistics were exact",
    )


class SettlementFlagOut(BaseModel):
    code: str = Field(
        description="Machine-readable: negative_shares_clipped, "
        "no_positive_improvement or no_positive_share"
    )
    message: str = Field(description="What was applied (names parties for the operator only)")


class SettlementOut(BaseModel):
    round_id: str
    rule: str
    mode: str
    price: float
    empty_value: str | float = Field(
        description="Value of the empty coalition the payment rule used ('majority', "
        "'zero' or a number)"
    )
    flags: list[SettlementFlagOut] = Field(
        description="Rules applied beyond the paper's formulas: clipped negative shares, "
        "refunded payments"
    )
    lines: list[SettlementLineOut]
    valuation: dict[str, Any] = Field(
        default_factory=dict,
        description="How the shares were valued: method ('exact' or 'monte_carlo'), "
        "estimator, evaluations, stopped_by, converged, seed",
    )
    totals: dict[str, float]
    verified: bool


class AuditOut(BaseModel):
    round_id: str
    balance: dict[str, Any]
    verification: dict[str, Any]
    duplicates: dict[str, Any] | None
    replication: dict[str, Any] | None
    release: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per party: whether its model file may be released under "
        "'aggregate_only' (the release check run when the models were stored), and why",
    )


class PredictOut(BaseModel):
    predictions: list[Any]


class AuditLogEntryOut(BaseModel):
    id: str
    at: datetime.datetime
    actor: str
    action: str
    item_type: str
    item_id: str
    request_id: str
    n_rows: int | None = Field(
        None, description="Rows sent to a model's predict endpoint (model_queried entries)"
    )


class LedgerEntryOut(BaseModel):
    id: str
    seq: int
    round_id: str
    party_id: str
    kind: LedgerKind
    amount: float
    created_at: datetime.datetime


# ---------------------------------------------------------------------------- their JSON
# One TypedDict per model above: the same keys (aliases, e.g. ``schema``), timestamps as
# strings. Keep them in step with the models (a test compares their JSON schemas).


class HealthDict(TypedDict):
    status: Literal["ok"]
    database: Literal["sqlite", "postgresql"]


class MeDict(TypedDict):
    role: Literal["operator", "party"]
    party_id: str | None
    market_id: str | None
    name: str | None


class PageDict(TypedDict, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class FeatureDict(TypedDict):
    name: str
    type: str


class DataSchemaDict(TypedDict):
    target: str
    label_type: str
    classes: list[Any] | None
    features: list[FeatureDict]
    origin: Literal["declared", "first_upload"]


class QuotasDict(TypedDict):
    max_datasets_per_party: int | None
    max_bytes_per_party: int | None


class MarketDict(TypedDict):
    id: str
    name: str
    task: Task
    description: str
    created_at: str
    n_parties: int
    release_policy: ReleasePolicy
    predict_quota: int
    predict_window_seconds: int
    schema: DataSchemaDict | None
    quotas: QuotasDict
    custody: Custody
    agents_connected: list[str]


class PartyDict(TypedDict):
    id: str
    name: str
    market_id: str
    created_at: str


class PartyCreatedDict(PartyDict):
    token: str
    token_expires_at: str | None


class PartyTokenDict(TypedDict):
    party_id: str
    market_id: str
    name: str
    token: str
    expires_at: str | None


class DatasetDict(TypedDict):
    id: str
    party_id: str
    market_id: str
    name: str
    role: Literal["train", "validation"]
    format: Literal["csv", "parquet"]
    n_rows: int
    n_features: int
    columns: list[str]
    target: str
    sha256: str
    size_bytes: int
    created_at: str


class RoundDict(TypedDict):
    id: str
    market_id: str
    status: RoundStatus
    progress: float
    message: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    heartbeat_at: str | None
    seconds_since_heartbeat: float | None
    config: dict[str, Any]


class SettlementPrivacyDict(TypedDict):
    mechanism: str
    noise: bool
    epsilon: float | None
    delta: float | None
    clip: float | None
    target_clip: float | None
    releases: int | None
    mu: float | None
    rho_zcdp: float | None
    epsilon_zcdp: float | None


class SettlementLineDict(TypedDict):
    party_id: str
    name: str
    fee: float
    charge: float
    fee_returned: float
    payout: float
    payout_stderr: float
    net_gain: float
    payoff: float
    improvement: float
    share: float
    own_gain: float
    model_gain: float
    members: list[str]
    n_members: int
    privacy: SettlementPrivacyDict | None


class SettlementFlagDict(TypedDict):
    code: str
    message: str


class SettlementDict(TypedDict):
    round_id: str
    rule: str
    mode: str
    price: float
    empty_value: str | float
    flags: list[SettlementFlagDict]
    lines: list[SettlementLineDict]
    valuation: dict[str, Any]
    totals: dict[str, float]
    verified: bool


class AuditDict(TypedDict):
    round_id: str
    balance: dict[str, Any]
    verification: dict[str, Any]
    duplicates: dict[str, Any] | None
    replication: dict[str, Any] | None
    release: list[dict[str, Any]]


class AuditLogEntryDict(TypedDict):
    id: str
    at: str
    actor: str
    action: str
    item_type: str
    item_id: str
    request_id: str
    n_rows: int | None


class LedgerEntryDict(TypedDict):
    id: str
    seq: int
    round_id: str
    party_id: str
    kind: LedgerKind
    amount: float
    created_at: str
