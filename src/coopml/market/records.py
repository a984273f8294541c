"""The settlement record: the JSON that ``coopml market run`` writes, the service stores
and :meth:`~coopml.market.settlement.Settlement.from_dict` / ``coopml market verify``
read back.

:class:`SettlementRecord` is its schema (``SettlementRecord.model_json_schema()``) for
every format the reader accepts: format 4 (written today), formats 2 and 3 and the
format-1 records without a ``format_version`` key (see
:data:`~coopml.market.settlement.FORMAT_VERSION`). Validation checks the structure
(keys, types, allowed values); what needs the numbers (that a table's gains lie in
[0, 1], that members name parties, that a sample matches its hash) is checked where
the record becomes a :class:`~coopml.market.settlement.Settlement`.

Examples
--------
>>> schema = SettlementRecord.model_json_schema()
>>> schema["properties"]["mode"]["enum"], schema["required"]
(['single', 'multi'], ['rule', 'mode', 'price', 'parties', 'tasks', 'checks'])
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from coopml._records import Record

__all__ = [
    "FlagRecord",
    "GainSampleRecord",
    "PartyLineRecord",
    "SettlementRecord",
    "TaskRecord",
    "ValuationRecord",
    "ValuationTaskRecord",
]


def _integer_version(value: Any) -> Any:
    """A format version is an integer: ``4.0`` or ``true`` are not read as 4 or 1
    (pydantic's literals compare by equality, even in strict mode)."""
    if type(value) is not int:
        raise PydanticCustomError("format_version", "a format version is an integer from 1 to 4")
    return value


#: The record's format (see :data:`~coopml.market.settlement.FORMAT_VERSION`).
FormatVersion = Annotated[Literal[1, 2, 3, 4], BeforeValidator(_integer_version)]

#: ``"all"``: every party in player order (format 4), else the parties' names.
Members = Literal["all"] | list[str]
Count = Annotated[int, Field(ge=0)]


class GainSampleRecord(Record):
    """An estimate's measured gains (:class:`~coopml.market.sampled_shares.GainSample`):
    coalitions packed into bits and gains as float64, each zlib-compressed and
    base64-encoded, with their SHA-256, and what the estimator needs to replay."""

    estimator: str
    rule: str
    n_players: Annotated[int, Field(ge=1)]
    seed: int
    stopping: dict[str, Any] = Field(description="the stopping rule as data")
    stopping_text: str | None = None
    batch_size: Annotated[int, Field(ge=1)]
    stopped_by: str
    converged: bool
    n_evaluations: Count
    selection_evaluations: Count = 0
    numpy: str | None = Field(None, description="the NumPy version that drew the sample")
    encoding: str | None = None
    masks: str
    values: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class PartyLineRecord(Record):
    """One party's line (:class:`~coopml.market.settlement.PartyLine`); money in units
    of the price. ``charge`` is absent from format 1 only (it was the price times the
    improvement)."""

    name: str
    fee: float
    own_gain: float
    model_gain: float
    improvement: float
    charge: float | None = None
    share: float
    payout: float
    net_gain: float
    payoff: float
    members: Members
    payout_stderr: float = 0.0


class TaskRecord(Record):
    """One requester's task: its gain table (``value_table``, by bitmask over
    ``members``), or its ``sample`` (estimated), or neither where the record's shared
    ``sample`` (format 4) or ``value_table`` (format 1) holds it."""

    requester: str
    members: Members
    value_table: list[float] | None
    sample: GainSampleRecord | None = None
    selection_evaluations: Count = Field(
        0, description="model fits spent choosing the members, beyond the value table"
    )


class FlagRecord(Record):
    """A rule applied beyond the paper's formulas (:class:`~coopml.market.settlement.Flag`)."""

    code: str
    message: str
    parties: list[str] = Field(default_factory=list)


class ValuationTaskRecord(Record):
    """How one estimated task's shares were valued."""

    requester: str | None
    estimator: str
    evaluations: Count
    selection_evaluations: Count
    stopping: str
    stopped_by: str | None
    converged: bool
    seed: int | None


class ValuationRecord(Record):
    """How the shares were valued (formats 3 and 4); ``tasks`` for estimates only."""

    method: Literal["exact", "monte_carlo"]
    estimator: str | None
    evaluations: Count
    stopped_by: str | None
    converged: bool
    seed: int | None
    tasks: list[ValuationTaskRecord] | None = None


def _no_valuation(value: Any) -> dict[str, Any]:
    if value != {}:
        raise PydanticCustomError(
            "no_valuation", "nor is it the {} of format 2 (no valuation block)"
        )
    return {}


#: Format 2 had no valuation block (read as ``{}``).
NoValuation = Annotated[
    dict[str, Any],
    PlainValidator(
        _no_valuation, json_schema_input_type=Annotated[dict[str, Any], Field(max_length=0)]
    ),
]


class SettlementRecord(Record):
    """A settlement as JSON (:meth:`~coopml.market.settlement.Settlement.to_dict`).

    ``checks`` (balance, symmetry, zero element, individual rationality and their
    reports), ``rule_params`` and ``provenance`` are free-form mappings; ``identical``
    lists groups of party names whose data is identical.
    """

    format_version: FormatVersion = 1
    rule: str
    mode: Literal["single", "multi"]
    price: float
    empty_value: (
        Literal["majority", "zero"] | Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
    ) = "majority"
    valuation: ValuationRecord | NoValuation = Field(default_factory=dict)
    parties: list[PartyLineRecord]
    value_table: list[float] | None = None
    sample: GainSampleRecord | None = None
    tasks: list[TaskRecord]
    checks: dict[str, Any]
    flags: list[FlagRecord] = Field(default_factory=list)
    identical: list[list[str]] = Field(default_factory=list)
    rule_params: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _charges_from_format_2(self) -> SettlementRecord:
        if self.format_version > 1:
            missing = [i for i, p in enumerate(self.parties) if p.charge is None]
            if missing:
                raise ValueError(
                    f"field 'parties.{missing[0]}.charge' is required from format 2 on; "
                    f"format_version is {self.format_version}"
                )
        return self
