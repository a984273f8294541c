"""Job configuration files (TOML), validated with pydantic.

A value job names its data (a bundled dataset split into parties, or one CSV/Parquet
file per party), optional adversarial transforms, a learner by import path, and the
valuation to run. Every error names the offending key, what is allowed and what was
received. See ``examples/breast_cancer.toml`` for a complete file.

Example
-------
>>> cfg = ValueConfig.model_validate({
...     "data": {"dataset": "iris"},
...     "partition": {"method": "iid", "n_parties": 3},
... })
>>> cfg.learner.estimator
'sklearn.linear_model.LogisticRegression'
"""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from coopml.data import (
    Party,
    corrupt_features,
    corrupt_labels,
    load_dataset,
    make_parties,
    replicate_party,
    train_validation_split,
)

__all__ = [
    "ConfigError",
    "LearnerConfig",
    "ValuationConfig",
    "ValueConfig",
    "build_learner",
    "build_parties",
    "load_config",
]

Method = Literal["shapley", "banzhaf", "loo", "least_core", "nucleolus", "monte_carlo"]


class ConfigError(ValueError):
    """A configuration file or mapping that does not validate."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """A bundled dataset, split into training rows (for the parties) and validation rows."""

    dataset: str
    validation_fraction: float = Field(0.3, gt=0, lt=1)


class PartyFile(_Strict):
    """One party's training data from a CSV or Parquet file."""

    name: str = Field(min_length=1)
    path: str
    target: str


class ValidationFile(_Strict):
    """Validation data from a CSV or Parquet file."""

    path: str
    target: str


class PartitionConfig(_Strict):
    """How a bundled dataset's training rows are split among parties."""

    method: Literal["iid", "size_skew", "dirichlet"] = "iid"
    n_parties: int = Field(ge=1, le=1000)
    names: list[str] | None = None
    alpha: float | None = Field(None, gt=0, description="Dirichlet label-skew concentration")
    concentration: float | None = Field(None, gt=0, description="size-skew concentration")
    sizes: list[float] | None = None


class TransformConfig(_Strict):
    """An adversarial transform applied to one party after partitioning."""

    kind: Literal["replicate", "corrupt_labels", "corrupt_features"]
    party: str
    name: str | None = None
    noise: float = Field(0.0, ge=0)
    fraction: float = Field(1.0, ge=0, le=1)


class LearnerConfig(_Strict):
    """A scikit-learn-compatible estimator given by import path and parameters."""

    estimator: str = "sklearn.linear_model.LogisticRegression"
    params: dict[str, Any] = Field(default_factory=dict)
    scale: bool = Field(False, description="standardise features before the estimator")


class ValuationConfig(_Strict):
    """What to compute and where."""

    scorer: str = "accuracy"
    methods: list[Method] = Field(["shapley"], min_length=1)
    executor: Literal["serial", "joblib", "ray"] = "serial"
    n_jobs: int | None = Field(None, ge=1)
    random_state: int | None = Field(0, ge=0)
    cache_dir: str | None = None
    max_evaluations: int = Field(20_000, ge=1, description="Monte Carlo evaluation budget")
    stderr_target: float | None = Field(None, gt=0, description="Monte Carlo stopping target")


class ValueConfig(_Strict):
    """A complete value job."""

    data: DataConfig | None = None
    partition: PartitionConfig | None = None
    parties: list[PartyFile] | None = None
    validation: ValidationFile | None = None
    transform: list[TransformConfig] = Field(default_factory=list)
    learner: LearnerConfig = LearnerConfig()
    valuation: ValuationConfig = ValuationConfig()

    @model_validator(mode="after")
    def _one_data_source(self) -> ValueConfig:
        bundled = self.data is not None or self.partition is not None
        files = self.parties is not None or self.validation is not None
        if bundled == files:
            raise ValueError(
                "give either [data] with [partition] (a bundled dataset split into parties) "
                "or [[parties]] with [validation] (one file per party)"
            )
        if bundled and (self.data is None or self.partition is None):
            raise ValueError("[data] and [partition] must be given together")
        if files and (not self.parties or self.validation is None):
            raise ValueError("[[parties]] and [validation] must be given together")
        return self


def load_config(path: str | Path) -> tuple[ValueConfig, Path]:
    """Read and validate a TOML job file; returns the config and its directory (relative
    paths in the file are resolved against it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(path)), path.parent


def parse_config(raw: dict[str, Any], source: str = "config") -> ValueConfig:
    """Validate a mapping as a :class:`ValueConfig`, with readable errors."""
    try:
        return ValueConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = f" (got {err['input']!r})" if "input" in err and err["type"] != "missing" else ""
            lines.append(f"  {where}: {err['msg']}{got}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines)) from None


def build_learner(cfg: LearnerConfig) -> Any:
    """Instantiate the estimator named by import path, optionally behind a StandardScaler."""
    module_name, _, class_name = cfg.estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ConfigError(
            f"learner.estimator: cannot import {cfg.estimator!r}; give a full import path "
            "such as 'sklearn.linear_model.LogisticRegression'"
        ) from None
    try:
        estimator = cls(**cfg.params)
    except TypeError as exc:
        raise ConfigError(
            f"learner.params: {cfg.estimator} rejected the parameters: {exc}"
        ) from None
    if cfg.scale:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), estimator)
    return estimator


def build_parties(
    cfg: ValueConfig, base_dir: Path = Path()
) -> tuple[list[Party], tuple[NDArray[np.float64], NDArray[Any]]]:
    """The parties and the validation pair described by ``cfg``."""
    seed = cfg.valuation.random_state
    if cfg.data is not None and cfg.partition is not None:
        try:
            ds = load_dataset(cfg.data.dataset)
        except ValueError as exc:
            raise ConfigError(f"data.dataset: {exc}") from None
        X, X_val, y, y_val = train_validation_split(
            ds.X, ds.y, validation_fraction=cfg.data.validation_fraction, random_state=seed
        )
        part = cfg.partition
        kwargs: dict[str, Any] = {}
        if part.method == "dirichlet":
            kwargs["alpha"] = part.alpha if part.alpha is not None else 1.0
        elif part.method == "size_skew":
            if part.sizes is not None:
                kwargs["sizes"] = part.sizes
            if part.concentration is not None:
                kwargs["concentration"] = part.concentration
        try:
            parties = make_parties(
                X, y, part.n_parties, part.method, names=part.names, random_state=seed, **kwargs
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"partition: {exc}") from None
        validation = (X_val, y_val)
    else:
        assert cfg.parties is not None and cfg.validation is not None
        parties = [_read_party(p.name, base_dir / p.path, p.target) for p in cfg.parties]
        val = _read_party("validation", base_dir / cfg.validation.path, cfg.validation.target)
        validation = (val.X, val.y)
    return _apply_transforms(parties, cfg.transform, seed), validation


def _read_party(name: str, path: Path, target: str) -> Party:
    reader = Party.from_parquet if path.suffix.lower() in {".parquet", ".pq"} else Party.from_csv
    return reader(name, path, target)


def _apply_transforms(
    parties: list[Party], transforms: list[TransformConfig], seed: int | None
) -> list[Party]:
    rng = np.random.default_rng(seed)
    for t in transforms:
        by_name = {p.name: k for k, p in enumerate(parties)}
        if t.party not in by_name:
            raise ConfigError(
                f"transform.party: no party named {t.party!r}; parties are {list(by_name)}"
            )
        k = by_name[t.party]
        if t.kind == "replicate":
            name = t.name or f"{t.party}_copy"
            parties.append(replicate_party(parties[k], name, noise=t.noise, random_state=rng))
        elif t.kind == "corrupt_labels":
            parties[k] = corrupt_labels(parties[k], t.fraction, random_state=rng)
        else:
            parties[k] = corrupt_features(
                parties[k], t.noise, fraction=t.fraction, random_state=rng
            )
    return parties
