"""Contract job files (TOML), validated with pydantic.

Keys (all at the top level)::

    n_participants = 10
    costs = [0.20, 0.16, 0.12, 0.08, 0.04]
    prior = [0.2, 0.2, 0.2, 0.2, 0.2]
    curve = "generalization_bound"   # or "power_law"
    k = 1.0                          # generalization_bound
    a_opt = 1.0                      # generalization_bound
    # a_max, scale, exponent         # power_law
    valuation_scale = 100.0
    formulation = "full"             # or "simplified"
    outcomes = "auto"                # "exact", "sampled"
    n_samples = 200000
    random_state = 0
    exclusion = "none"               # "threshold", "all"

Example
-------
>>> cfg = ContractConfig.model_validate({"n_participants": 10, "costs": [0.02, 0.01],
...                                      "prior": [0.5, 0.5]})
>>> cfg.curve, cfg.valuation_scale
('generalization_bound', 100.0)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coopml.contracts.accuracy import AccuracyCurve, GeneralizationBoundCurve, PowerLawCurve
from coopml.contracts.exclusion import solve_with_exclusion
from coopml.contracts.first_moment import solve_contract
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult
from coopml.contracts.valuation import LinearValuation

__all__ = [
    "ContractConfig",
    "ContractConfigError",
    "load_contract_config",
    "parse_contract_config",
    "solve_config",
]


class ContractConfigError(ValueError):
    """A contract configuration that does not validate."""


class ContractConfig(BaseModel):
    """A contract design job (see the module docstring for the keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_participants: int = Field(ge=1)
    costs: list[float] = Field(min_length=1)
    prior: list[float] | None = None
    curve: Literal["generalization_bound", "power_law"] = "generalization_bound"
    k: float = Field(1.0, gt=0)
    a_opt: float = Field(1.0, gt=0)
    a_max: float | None = Field(None, gt=0)
    scale: float | None = Field(None, gt=0)
    exponent: float | None = Field(None, gt=0)
    valuation_scale: float = Field(100.0, gt=0)
    formulation: Literal["full", "simplified"] = "full"
    outcomes: Literal["auto", "exact", "sampled"] = "auto"
    n_samples: int = Field(200_000, ge=2)
    random_state: int | None = Field(None, ge=0)
    exclusion: Literal["none", "threshold", "all"] = "none"

    @model_validator(mode="after")
    def _check(self) -> ContractConfig:
        if self.prior is not None and len(self.prior) != len(self.costs):
            raise ValueError(
                f"'prior' must have one entry per cost ({len(self.costs)}); got {len(self.prior)}"
            )
        if self.curve == "power_law" and None in (self.a_max, self.scale, self.exponent):
            raise ValueError("curve 'power_law' needs 'a_max', 'scale' and 'exponent'")
        return self

    def build_curve(self) -> AccuracyCurve:
        """The accuracy curve the config names."""
        if self.curve == "power_law":
            assert self.a_max is not None and self.scale is not None and self.exponent is not None
            return PowerLawCurve(a_max=self.a_max, scale=self.scale, exponent=self.exponent)
        return GeneralizationBoundCurve(k=self.k, a_opt=self.a_opt)

    def build_problem(self) -> ContractProblem:
        """The :class:`ContractProblem` (uniform prior if none is given)."""
        prior = self.prior if self.prior is not None else [1.0] * len(self.costs)
        return ContractProblem(
            self.n_participants,
            self.costs,
            prior,
            curve=self.build_curve(),
            valuation=LinearValuation(self.valuation_scale),
        )


def load_contract_config(path: str | Path) -> ContractConfig:
    """Read and validate a TOML contract job file.

    Raises
    ------
    FileNotFoundError, ContractConfigError
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ContractConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_contract_config(raw, source=str(path))


def parse_contract_config(raw: dict[str, Any], source: str = "config") -> ContractConfig:
    """Validate a mapping, turning pydantic errors into one readable message."""
    try:
        return ContractConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"'{'.'.join(str(p) for p in err['loc']) or 'config'}': {err['msg']}"
            for err in exc.errors()
        )
        raise ContractConfigError(f"{source}: {problems}") from None


def solve_config(cfg: ContractConfig) -> ContractResult:
    """Build the problem of ``cfg`` and solve it (with type selection if asked).

    Examples
    --------
    >>> cfg = ContractConfig(n_participants=10, costs=[0.02, 0.01], prior=[0.5, 0.5])
    >>> solve_config(cfg).verified
    True
    """
    problem = cfg.build_problem()
    kwargs: dict[str, Any] = {
        "formulation": cfg.formulation,
        "outcomes": cfg.outcomes,
        "n_samples": cfg.n_samples,
        "random_state": cfg.random_state,
        "check": False,
    }
    if cfg.exclusion != "none":
        return solve_with_exclusion(problem, candidates=cfg.exclusion, **kwargs).best
    return solve_contract(problem, **kwargs)
