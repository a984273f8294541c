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
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from coopml.data import (
    Party,
    corrupt_features,
    corrupt_labels,
    load_dataset,
    make_parties,
    replicate_party,
    train_validation_split,
)
from coopml.data.columns import ColumnError, job_features

__all__ = [
    "AuditSettings",
    "ConfigError",
    "JobConfig",
    "LearnerConfig",
    "MarketConfig",
    "MarketSettings",
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
    """One party's training data (and, in a multi-task market, its own validation data)
    from CSV or Parquet files."""

    name: str = Field(min_length=1)
    path: str
    target: str
    validation: str | None = None


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


class JobConfig(_Strict):
    """What every job shares: the parties' data, transforms and the learner.

    With one file per party, ``features`` names the feature columns (default: the first
    party file's columns less its target); every file is matched to them *by name*, in
    any column order, and columns beyond them are an error unless ``extra_columns =
    "ignore"``.
    """

    data: DataConfig | None = None
    partition: PartitionConfig | None = None
    parties: list[PartyFile] | None = None
    validation: ValidationFile | None = None
    features: list[str] | None = Field(None, min_length=1)
    extra_columns: Literal["error", "ignore"] = "error"
    transform: list[TransformConfig] = Field(default_factory=list)
    learner: LearnerConfig = LearnerConfig()

    @property
    def seed(self) -> int | None:
        """Seed of the data split and the learner."""
        return 0

    @model_validator(mode="after")
    def _one_data_source(self) -> JobConfig:
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


class ValueConfig(JobConfig):
    """A value job: ``coopml value``."""

    valuation: ValuationConfig = ValuationConfig()

    @property
    def seed(self) -> int | None:
        return self.valuation.random_state


class MarketSettings(_Strict):
    """The ``[market]`` table of a market job."""

    rule: Literal["ohrimenko", "shapley", "banzhaf", "loo", "similarity_shapley"] = "ohrimenko"
    price: float = Field(1.0, gt=0, description="price c of one unit of performance")
    scorer: str = "accuracy"
    mode: Literal["single", "multi"] = Field(
        "single",
        description="single: one shared validation task; multi: every party splits its own "
        "rows into training and validation data (its own task)",
    )
    duplicates: Literal["ignore", "report", "drop", "merge"] = "report"
    tolerance: float = Field(0.05, gt=0)
    discount: float = Field(1.0, ge=0)
    empty_value: Literal["majority", "zero"] | float = Field(
        "majority",
        description="value of the empty coalition in the payment rule: 'majority' (the "
        "score of a constant predictor: majority class, or training mean for regression), "
        "'zero', or a number in [0, 1]; recorded in the settlement",
    )
    executor: Literal["serial", "joblib", "ray"] = "serial"
    n_jobs: int | None = Field(None, ge=1)
    random_state: int | None = Field(0, ge=0)

    @field_validator("empty_value", mode="before")
    @classmethod
    def _empty_value(cls, value: Any) -> Any:
        ok_text = isinstance(value, str) and value in ("majority", "zero")
        ok_number = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and bool(np.isfinite(value))
            and 0 <= value <= 1
        )
        if not (ok_text or ok_number):
            raise ValueError("must be 'majority', 'zero' or a number in [0, 1]")
        return float(value) if ok_number else value


class AuditSettings(_Strict):
    """The optional ``[audit]`` table: a replication audit run with the market."""

    party: str
    replicas: list[int] = Field([1, 2, 3], min_length=1)
    kinds: list[Literal["exact", "noisy"]] = Field(["exact", "noisy"], min_length=1)
    noise: float = Field(0.01, gt=0)


class MarketConfig(JobConfig):
    """A market job: ``coopml market run``."""

    market: MarketSettings = MarketSettings()
    audit: AuditSettings | None = None

    @property
    def seed(self) -> int | None:
        return self.market.random_state


C = TypeVar("C", bound=BaseModel)


def load_config(path: str | Path, schema: type[C] = ValueConfig) -> tuple[C, Path]:  # type: ignore[assignment]
    """Read and validate a TOML job file against ``schema`` (any pydantic model: the job
    files of ``coopml.federated`` and ``coopml.competition`` use it too); returns the
    config and its directory (relative paths in the file are resolved against it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(path), schema=schema), path.parent


def parse_config(
    raw: dict[str, Any],
    source: str = "config",
    schema: type[C] = ValueConfig,  # type: ignore[assignment]
) -> C:
    """Validate a mapping as a job config (``schema``), with readable errors."""
    try:
        return schema.model_validate(raw)
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
    cfg: JobConfig, base_dir: Path = Path(), *, own_validation: bool = False
) -> tuple[list[Party], tuple[NDArray[np.float64], NDArray[Any]]]:
    """The parties and the shared validation pair described by ``cfg``.

    With ``own_validation`` every party also gets validation data of its own: a
    ``data.validation_fraction`` split of its rows (bundled data), or the file named by
    its ``validation`` key.
    """
    seed = cfg.seed
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
        if own_validation:
            parties = [_split_own(p, cfg.data.validation_fraction, seed) for p in parties]
    else:
        parties, validation = _read_party_files(cfg, base_dir, own_validation)
    return _apply_transforms(parties, cfg.transform, seed), validation


def _read_party_files(
    cfg: JobConfig, base_dir: Path, own_validation: bool
) -> tuple[list[Party], tuple[NDArray[np.float64], NDArray[Any]]]:
    """Parties and validation from one file each, every column matched by name."""
    assert cfg.parties is not None and cfg.validation is not None
    tables: dict[str, tuple[pd.DataFrame, str]] = {}
    keys: list[tuple[str, str]] = []  # (party name or "validation", which file)
    for k, spec in enumerate(cfg.parties):
        files = [("path", spec.path)]
        if own_validation:
            if spec.validation is None:
                raise ConfigError(
                    f"parties[{k}]: party {spec.name!r} needs a 'validation' file in a "
                    "multi-task market"
                )
            files.append(("validation", spec.validation))
        for key, path in files:
            label = f"parties[{k}] {spec.name!r} {key} file {path!r}"
            tables[label] = (_read_table(label, base_dir / path), spec.target)
            keys.append((spec.name, key))
    label = f"[validation] file {cfg.validation.path!r}"
    tables[label] = (_read_table(label, base_dir / cfg.validation.path), cfg.validation.target)
    keys.append(("validation", "path"))
    try:
        features = job_features(tables, cfg.features, extra=cfg.extra_columns)
    except ColumnError as exc:
        raise ConfigError(str(exc)) from None
    built: dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[Any]]] = {}
    for (owner, key), (label, (frame, target)) in zip(keys, tables.items(), strict=True):
        try:
            part = Party.from_dataframe(owner, frame, target, features=features)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{label}: {exc}") from None
        built[owner, key] = (part.X, part.y)
    parties = [
        Party(
            spec.name,
            *built[spec.name, "path"],
            *(built[spec.name, "validation"] if own_validation else (None, None)),
            feature_names=features,
        )
        for spec in cfg.parties
    ]
    return parties, built["validation", "path"]


def _read_table(label: str, path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a missing or empty file is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{label}: no such file {str(path)!r}")
    reader = pd.read_parquet if path.suffix.lower() in {".parquet", ".pq"} else pd.read_csv
    try:
        frame = reader(path)
    except (ValueError, OSError) as exc:  # pandas' EmptyDataError is a ValueError
        raise ConfigError(f"{label}: cannot be read: {exc}") from None
    if frame.empty:
        raise ConfigError(f"{label}: the file has no rows")
    return frame


def _split_own(party: Party, fraction: float, seed: int | None) -> Party:
    X, X_val, y, y_val = train_validation_split(
        party.X, party.y, validation_fraction=fraction, random_state=seed, stratify=False
    )
    return Party(party.name, X, y, X_val, y_val, party.metadata)


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
