"""Request and response bodies of the HTTP API (pydantic).

The response models live in :mod:`coopml.service.responses` (which the HTTP client
imports without the server) and are re-exported here, next to the request models.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from coopml.service.domain.parties import PARTY_NAME
from coopml.service.domain.rounds import RoundOptions
from coopml.service.responses import (
    AuditLogEntryOut,
    AuditOut,
    DataSchemaOut,
    DatasetOut,
    HealthOut,
    LedgerEntryOut,
    MarketOut,
    MeOut,
    Page,
    PartyCreatedOut,
    PartyOut,
    PartyTokenOut,
    PredictOut,
    QuotasOut,
    ReleasePolicy,
    RoundOut,
    SettlementFlagOut,
    SettlementLineOut,
    SettlementOut,
)

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


class PartyIn(_In):
    name: Annotated[str, Field(pattern=PARTY_NAME)]


class LearnerIn(_In):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)


class RoundIn(RoundOptions):
    """A request to open a round: the learner and the round's options (their rules:
    :class:`coopml.service.domain.rounds.RoundOptions`)."""

    model_config = _In.model_config

    learner: LearnerIn


class PredictIn(_In):
    rows: Annotated[list[list[float]], Field(min_length=1, max_length=10_000)]
