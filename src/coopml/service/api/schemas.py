"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from coopml.service.domain.parties import PARTY_NAME
from coopml.service.domain.rounds import RoundOptions

__all__ = [
    "AuditLogEntryOut",
    "AuditOut",
    "DataSchemaIn",
    "DataSchemaOut",
    "DatasetOut",
    "HealthOut",
    "LearnerIn",
    "LedgerEntryOut",
    "MarketIn",
    "MarketOut",
    "MeOut",
    "Page",
    "PartyCreatedOut",
    "PartyIn",
    "PartyOut",
    "PartyTokenOut",
    "PredictIn",
    "PredictOut",
    "QuotasIn",
    "QuotasOut",
    "RoundIn",
    "RoundOut",
    "SettlementFlagOut",
    "SettlementLineOut",
    "SettlementOut",
]

T = TypeVar("T")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newlines, tabs, NUL, ...)")
    return value


def _printable_multiline(value: str) -> str:
    if _CONTROL.search(value.replace("\n", "").replace("\t", "")):
        raise ValueError("must not contain control characters other than newlines and tabs")
    return value


Text = Annotated[str, AfterValidator(_printable)]


class _In(BaseModel):
    # strict: a number must be sent as a JSON number ("fee_price": "1" is refused), a
    # string as a string, a boolean as true/false
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


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


ReleasePolicy = Literal["query_only", "aggregate_only", "full"]


class FeatureIn(_In):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    type: Literal["number", "integer", "boolean"] = "number"


class DataSchemaIn(_In):
    """A market's schema, declared by the operator at creation."""

    target: Annotated[Text, Field(min_length=1, max_length=200)]
    label_type: Literal["integer", "number", "string", "boolean"] = Field(
        description="Type of the target: classification labels are integers, numbers, "
        "strings or booleans; a regression target is a number"
    )
    classes: Annotated[list[bool | int | float | str], Field(min_length=2, max_length=1000)] | (
        None
    ) = Field(None, description="Allowed class labels (classification); null: any label")
    features: Annotated[list[FeatureIn], Field(min_length=1, max_length=10_000)]


class QuotasIn(_In):
    max_datasets_per_party: Annotated[int, Field(ge=1, le=1_000_000)] | None = Field(
        None, description="Datasets one party may keep here; null: COOPML_MAX_DATASETS_PER_PARTY"
    )
    max_bytes_per_party: Annotated[int, Field(ge=1, le=2**50)] | None = Field(
        None, description="Bytes one party may keep here; null: COOPML_MAX_BYTES_PER_PARTY"
    )


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


class MarketIn(_In):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    task: Literal["classification", "regression"]
    description: Annotated[str, Field(max_length=2000), AfterValidator(_printable_multiline)] = ""
    release_policy: ReleasePolicy = Field(
        "query_only",
        description="Which model files parties may download: 'query_only' (none: "
        "predictions only; the default), 'aggregate_only' (only models whose fitted state "
        "holds no training row of another party) or 'full' (all; audited opt-in).",
    )
    predict_quota: Annotated[int, Field(ge=1, le=100_000_000)] | None = Field(
        None,
        description="Rows a party may send to the predict endpoint of its model of one "
        "round within predict_window_seconds; null: the service's default "
        "(COOPML_PREDICT_QUOTA).",
    )
    predict_window_seconds: Annotated[int, Field(ge=1, le=31 * 86_400)] | None = Field(
        None, description="The quota's sliding window; null: COOPML_PREDICT_WINDOW."
    )
    schema_: DataSchemaIn | None = Field(
        None,
        alias="schema",
        description="The schema every upload must match; null: the first upload fixes it "
        "(classes then stay open).",
    )
    quotas: QuotasIn | None = Field(
        None, description="Per-party upload quotas of this market; null: the service's."
    )
    custody: Literal["operator", "parties"] = Field(
        "operator",
        description="Who holds the parties' rows: 'operator' (parties upload datasets, "
        "stored encrypted; the default) or 'parties' (no row leaves its owner: each "
        "party's agent answers the round's requests; uploads are refused).",
    )


class MarketOut(BaseModel):
    id: str
    name: str
    task: Literal["classification", "regression"]
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
    custody: Literal["operator", "parties"] = Field(
        "operator", description="Who holds the parties' rows (set at creation)"
    )


class PartyIn(_In):
    name: Annotated[str, Field(pattern=PARTY_NAME)]


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


class LearnerIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)


class RoundIn(RoundOptions):
    """A request to open a round: the learner and the round's options (their rules:
    :class:`coopml.service.domain.rounds.RoundOptions`)."""

    model_config = _In.model_config

    learner: LearnerIn


class RoundOut(BaseModel):
    id: str
    market_id: str
    status: Literal["queued", "running", "stalled", "completed", "failed"] = Field(
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
    net: float
    payoff: float
    improvement: float
    share: float
    value_before: float
    value_after: float
    members: list[str] = Field(
        description="Parties whose data trained this party's model (a party sees only itself)"
    )
    n_members: int


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


class PredictIn(_In):
    rows: Annotated[list[list[float]], Field(min_length=1, max_length=10_000)]


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
    kind: Literal["fee_collected", "fee_returned", "payout"]
    amount: float
    created_at: datetime.datetime
