"""The plain-data description of a fine-tuning game (JSON / TOML), validated with pydantic.

Below :mod:`coopml.finetuning.game`, which builds games from it
(:meth:`~coopml.finetuning.game.FineTuningGame.from_dict`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coopml.finetuning.costs import PolynomialCost

__all__ = ["CostSpec", "GameSpec", "SpecialistSpec", "validation_message"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CostSpec(_Strict):
    quadratic: float = Field(gt=0)
    linear: float = Field(0.0, ge=0)
    fixed: float = Field(0.0, ge=0)
    higher: list[float] = Field(default_factory=list)

    def build(self) -> PolynomialCost:
        return PolynomialCost((self.linear, self.quadratic, *self.higher), fixed=self.fixed)


class SpecialistSpec(CostSpec):
    name: str | None = Field(None, min_length=1)
    revenue: float = Field(gt=0)


class GameSpec(_Strict):
    generalist: CostSpec
    specialists: list[SpecialistSpec] = Field(min_length=1)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "game"
        parts.append(f"'{where}': {err['msg']} (got {err.get('input')!r})")
    return "invalid fine-tuning game: " + "; ".join(parts)
