"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import datetime
import math
import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "AuditLogEntryOut",
    "AuditOut",
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
    "PredictIn",
    "PredictOut",
    "RoundIn",
    "RoundOut",
    "SettlementFlagOut",
    "SettlementLineOut",
    "SettlementOut",
]

T = TypeVar("T")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
PARTY_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


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
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


class MarketIn(_In):
    name: Annotated[Text, Field(min_length=1, max_length=200)]
    task: Literal["classification", "regression"]
    description: Annotated[str, Field(max_length=2000), AfterValidator(_printable_multiline)] = ""


class MarketOut(BaseModel):
    id: str
    name: str
    task: Literal["classification", "regression"]
    description: str
    created_at: datetime.datetime
    n_parties: int


class PartyIn(_In):
    name: Annotated[str, Field(pattern=PARTY_NAME)]


class PartyOut(BaseModel):
    id: str
    name: str
    market_id: str
    created_at: datetime.datetime


class PartyCreatedOut(PartyOut):
    token: str = Field(description="The party's API token: shown only in this response.")


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


class RoundIn(_In):
    learner: LearnerIn
    payment_rule: Annotated[str, Field(min_length=1, max_length=64)] = "ohrimenko"
    fee_price: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    tasks: Literal["per_party", "single"] = "single"
    duplicates: Literal["ignore", "report", "drop", "merge"] = "report"
    random_state: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    replication_party: Annotated[str, Field(pattern=PARTY_NAME)] | None = Field(
        None, description="Also audit what this party would gain by replicating its data."
    )
    empty_value: Literal["majority", "zero"] | float = Field(
        "majority",
        description="Value of the empty coalition in the payment rule: 'majority' (the "
        "score of a constant predictor: the majority class, or the training mean for "
        "regression), 'zero', or a number in [0, 1]. Recorded in the settlement.",
    )

    @field_validator("empty_value", mode="before")
    @classmethod
    def _empty_value(cls, value: Any) -> Any:
        if isinstance(value, str) and value in ("majority", "zero"):
            return value
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and 0 <= value <= 1
        ):
            return float(value)
        raise ValueError("must be 'majority', 'zero' or a number in [0, 1]")


class RoundOut(BaseModel):
    id: str
    market_id: str
    status: Literal["queued", "running", "completed", "failed"]
    progress: float
    message: str
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    config: dict[str, Any]


class SettlementLineOut(BaseModel):
    party_id: str
    name: str
    fee: float
    charge: float = Field(
        description="Paid for the improvement: price × improvement, or 0 when refunded"
    )
    payout: float
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
    totals: dict[str, float]
    verified: bool


class AuditOut(BaseModel):
    round_id: str
    balance: dict[str, Any]
    verification: dict[str, Any]
    duplicates: dict[str, Any] | None
    replication: dict[str, Any] | None


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


class LedgerEntryOut(BaseModel):
    id: str
    seq: int
    round_id: str
    party_id: str
    kind: Literal["fee_collected", "fee_returned", "payout"]
    amount: float
    created_at: datetime.datetime
