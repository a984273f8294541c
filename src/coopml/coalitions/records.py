"""Valuation results and value tables as JSON: the job results of ``coopml value``.

:class:`ValuationResultRecord` (and :class:`LeastCoreResultRecord`, which adds
``epsilon``) is the schema of :meth:`~coopml.coalitions.result.ValuationResult.to_dict`
(``ValuationResultRecord.model_json_schema()``); :class:`ValueTableRecord` that of
:meth:`~coopml.coalitions.value_table.ValueTable.to_dict`. ``info`` is free-form
(stopping reason, LP status, ...): NumPy values in it are written as JSON lists and
numbers.

Examples
--------
>>> ValuationResultRecord.model_json_schema()["required"]
['method', 'names', 'values']
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from coopml._records import Record

__all__ = ["LeastCoreResultRecord", "ValuationResultRecord", "ValueTableRecord"]


class ValuationResultRecord(Record):
    """The values of a game's players (:class:`~coopml.coalitions.result.ValuationResult`):
    one value per name (and one standard error per name for estimates)."""

    method: str
    names: list[str]
    values: list[float]
    stderr: list[float] | None = None
    converged: bool = True
    n_evaluations: int = Field(0, ge=0)
    info: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_value_per_name(self) -> ValuationResultRecord:
        repeated = sorted({n for n in self.names if self.names.count(n) > 1})
        if repeated:
            raise ValueError(f"field 'names' must be distinct; got {repeated} more than once")
        for key in ("values", "stderr"):
            got = getattr(self, key)
            if got is not None and len(got) != len(self.names):
                raise ValueError(
                    f"field '{key}' must have one entry per name ({len(self.names)}); "
                    f"got {len(got)}"
                )
        for k, se in enumerate(self.stderr or ()):
            if not se >= 0:  # NaN fails too; inf (a player never sampled) is allowed
                raise ValueError(
                    f"field 'stderr.{k}' must be a standard error: >= 0 (inf when unknown); "
                    f"got {se!r}"
                )
        return self


class LeastCoreResultRecord(ValuationResultRecord):
    """A least-core allocation and its uniform subsidy ``epsilon``."""

    epsilon: float = 0.0


class ValueTableRecord(Record):
    """A game's value table by bitmask (``table[mask]``) and its players' names."""

    names: list[str]
    table: list[float]
