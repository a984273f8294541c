"""Job configuration files (TOML), validated with pydantic.

A value job names its data (a bundled dataset split into parties, or one CSV/Parquet
file per party), optional adversarial transforms, a learner by import path, and the
valuation to run. Every error names the offending key, what is allowed and what was
received. See ``examples/breast_cancer.toml`` for a complete file and ``docs/jobfile.md``
for every key, including ``[preprocessing]`` (missing values, text columns, scaling).

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
import warnings
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

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

from coopml._validation import spawn_generators
from coopml.coalitions.executors import DEFAULT_TIMEOUT, Executor, get_executor
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
from coopml.data.party import read_table
from coopml.data.preprocessing import (
    TabularSchema,
    accepts_missing,
    categorical_columns,
    observed_categories,
    preprocessing_steps,
)
from coopml.market.sampled_shares import DEFAULT_MAX_EVALUATIONS, DEFAULT_STDERR_TARGET

__all__ = [
    "AuditSettings",
    "ConfigError",
    "ExecutorSettings",
    "JobConfig",
    "JobData",
    "LearnerConfig",
    "MarketConfig",
    "MarketSettings",
    "PreprocessingConfig",
    "ValuationConfig",
    "ValueConfig",
    "build_job_data",
    "build_learner",
    "build_parties",
    "load_config",
    "with_executor",
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
    """Validation data from a CSV or Parquet file, or a fraction of every party's rows
    held out (never trained on)."""

    path: str | None = Field(None, description="CSV or Parquet file of validation rows")
    target: str | None = Field(None, description="its label column")
    fraction: float | None = Field(
        None, gt=0, lt=1, description="instead of a file: hold out this fraction of each party"
    )

    @model_validator(mode="after")
    def _file_or_fraction(self) -> ValidationFile:
        if (self.path is None) == (self.fraction is None):
            raise ValueError("give either path (with target) or fraction")
        if self.path is not None and self.target is None:
            raise ValueError("a validation file needs its target column")
        return self


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


class PreprocessingConfig(_Strict):
    """The optional ``[preprocessing]`` table: missing values, categorical columns, scaling.

    Imputation and scaling are fitted per coalition on its training rows (a pipeline in
    front of the learner); categorical columns are encoded once with a fixed category
    list (declared in ``categories`` or observed in the parties' training files). See
    :mod:`coopml.data.preprocessing`.
    """

    impute: Literal["median", "mean", "most_frequent", "none"] = Field(
        "none", description="fill missing feature values, per coalition, from its training rows"
    )
    categorical: Literal["onehot", "ordinal", "error"] = Field(
        "error", description="encode text columns, or refuse them"
    )
    scale: bool = Field(False, description="standardise features, per coalition")
    categories: dict[str, list[str]] = Field(
        default_factory=dict,
        description="declared categories of categorical columns (default: observed)",
    )


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


class ExecutorSettings(_Strict):
    """The optional ``[executor]`` table: where a job's coalition evaluations run.

    ``kind`` is ``"serial"``, ``"joblib"`` or ``"ray"`` (default ``"joblib"`` when
    ``n_jobs`` > 1, else ``"serial"``); ``address`` names a Ray cluster (``"auto"``,
    ``"HOST:PORT"``, ``"ray://HOST:PORT"``; default: ``RAY_ADDRESS`` or a local
    instance); ``n_jobs`` is the number of tasks running at once; ``timeout`` the
    seconds to wait for one task's result (``inf``: forever). The older keys
    ``[valuation]``/``[market]`` ``executor`` and ``n_jobs`` still work and must agree
    with this table.

    >>> ExecutorSettings(kind="ray", address="auto", n_jobs=8).timeout
    3600.0
    >>> ExecutorSettings(n_jobs=4).kind
    'joblib'
    """

    kind: Literal["serial", "joblib", "ray"] = "serial"
    address: str | None = Field(None, min_length=1)
    n_jobs: int | None = Field(None, ge=1)
    timeout: float = Field(DEFAULT_TIMEOUT, gt=0, description="seconds per task; inf: forever")

    @model_validator(mode="before")
    @classmethod
    def _default_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data:
            n_jobs = data.get("n_jobs")
            if isinstance(n_jobs, int) and not isinstance(n_jobs, bool) and n_jobs > 1:
                data = {**data, "kind": "joblib"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ExecutorSettings:
        if self.address is not None and self.kind != "ray":
            raise ValueError(
                f"address names a Ray cluster and needs kind = 'ray'; got kind = {self.kind!r}"
            )
        if self.kind == "serial" and self.n_jobs is not None and self.n_jobs > 1:
            raise ValueError(
                "n_jobs > 1 runs tasks in parallel and needs kind = 'joblib' or 'ray'; got "
                f"kind = 'serial' with n_jobs = {self.n_jobs}"
            )
        return self

    def build(self) -> Executor:
        """The executor these settings describe (connects to the Ray cluster)."""
        return get_executor(self.kind, self.n_jobs, address=self.address, timeout=self.timeout)


def _executor_keys(
    table: ExecutorSettings | None, legacy: BaseModel, section: str
) -> dict[str, Any]:
    """The ``[executor]`` keys given, with the older ``[section]`` ones folded in."""
    given = {} if table is None else table.model_dump(exclude_unset=True)
    for key, field in (("executor", "kind"), ("n_jobs", "n_jobs")):
        if key in legacy.model_fields_set:
            value = getattr(legacy, key)
            if field in given and given[field] != value:
                raise ValueError(
                    f"[{section}] {key} = {value!r} contradicts [executor] {field} = "
                    f"{given[field]!r}; give it once, in the [executor] table"
                )
            given[field] = value
    if table is None or "kind" not in table.model_fields_set:
        # as before the [executor] table: a serial executor with n_jobs > 1 means joblib
        if given.get("kind") == "serial" and (given.get("n_jobs") or 1) > 1:
            given["kind"] = "joblib"
    return given


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
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    executor: ExecutorSettings | None = None

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

    @property
    def executor_settings(self) -> ExecutorSettings:
        """``[executor]`` merged with ``[valuation] executor/n_jobs``."""
        return ExecutorSettings(**_executor_keys(self.executor, self.valuation, "valuation"))

    @model_validator(mode="after")
    def _one_executor(self) -> ValueConfig:
        _ = self.executor_settings
        return self


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
    valuation: Literal["auto", "exact", "monte_carlo"] = Field(
        "auto",
        description="'exact' gain tables, 'monte_carlo' estimated shares, or 'auto': exact "
        "up to 14 parties, estimated above (docs/market.md, large markets)",
    )
    max_evaluations: int = Field(
        DEFAULT_MAX_EVALUATIONS,
        ge=1,
        description="evaluation budget (model fits) of an estimated share",
    )
    stderr_target: float | None = Field(
        DEFAULT_STDERR_TARGET,
        gt=0,
        description="stop an estimate early once every payout's standard error is at most "
        'this fraction of the total paid out; "none": spend the whole budget',
    )

    @field_validator("stderr_target", mode="before")
    @classmethod
    def _no_target(cls, value: Any) -> Any:
        # TOML has no null: the string "none" switches the target off
        return None if isinstance(value, str) and value.strip().lower() == "none" else value

    @model_validator(mode="after")
    def _budget_needs_an_estimate(self) -> MarketSettings:
        given = sorted({"max_evaluations", "stderr_target"} & self.model_fields_set)
        if self.valuation == "exact" and given:
            raise ValueError(
                f'{" and ".join(given)} bound an estimate, and valuation = "exact" evaluates '
                f'every coalition: remove {" and ".join(given)} or set valuation = "auto" or '
                '"monte_carlo"'
            )
        return self

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

    @property
    def executor_settings(self) -> ExecutorSettings:
        """``[executor]`` merged with ``[market] executor/n_jobs``."""
        return ExecutorSettings(**_executor_keys(self.executor, self.market, "market"))

    @model_validator(mode="after")
    def _one_executor(self) -> MarketConfig:
        _ = self.executor_settings
        return self


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


J = TypeVar("J", ValueConfig, MarketConfig)


def with_executor(cfg: J, **overrides: Any) -> J:
    """A copy of a job config whose ``[executor]`` table takes ``overrides`` (those not
    None): how the CLI's ``--executor``, ``--n-jobs`` and ``--ray-address`` win over the
    file. A ``kind`` other than ``"ray"`` drops the file's Ray address.

    >>> cfg = ValueConfig.model_validate({
    ...     "data": {"dataset": "iris"}, "partition": {"n_parties": 3},
    ...     "valuation": {"executor": "joblib", "n_jobs": 2},
    ... })
    >>> with_executor(cfg, kind="ray", address="auto").executor_settings.n_jobs
    2
    """
    section = "valuation" if isinstance(cfg, ValueConfig) else "market"
    given = _executor_keys(cfg.executor, getattr(cfg, section), section)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes.get("kind", "ray") != "ray":
        given.pop("address", None)
    raw = cfg.model_dump(exclude_unset=True)
    for key in ("executor", "n_jobs"):
        raw.get(section, {}).pop(key, None)
    raw["executor"] = {**given, **changes}
    return parse_config(raw, source="command line", schema=type(cfg))


def build_learner(cfg: LearnerConfig, preprocessing: PreprocessingConfig | None = None) -> Any:
    """Instantiate the estimator named by import path, behind the per-coalition steps of
    ``preprocessing`` (an imputer, a StandardScaler) when it has any."""
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
    prep = preprocessing or PreprocessingConfig()
    steps = preprocessing_steps(prep.impute, scale=prep.scale or cfg.scale)
    if steps:
        from sklearn.pipeline import make_pipeline

        return make_pipeline(*steps, estimator)
    return estimator


class JobData(NamedTuple):
    """What :func:`build_job_data` reads: the parties, the shared validation pair and,
    for a job read from files, how a raw row becomes a model input."""

    parties: list[Party]
    validation: tuple[NDArray[np.float64], NDArray[Any]]
    #: The job's feature columns by name and their fixed encoding (None: bundled data).
    schema: TabularSchema | None = None
    #: Each party's target column (file jobs only).
    targets: dict[str, str] | None = None


def build_parties(
    cfg: JobConfig, base_dir: Path = Path(), *, own_validation: bool = False
) -> tuple[list[Party], tuple[NDArray[np.float64], NDArray[Any]]]:
    """The parties and the shared validation pair described by ``cfg``.

    With ``own_validation`` every party also gets validation data of its own: a
    ``data.validation_fraction`` split of its rows (bundled data), or the file named by
    its ``validation`` key.
    """
    data = build_job_data(cfg, base_dir, own_validation=own_validation)
    return data.parties, data.validation


def build_job_data(
    cfg: JobConfig, base_dir: Path = Path(), *, own_validation: bool = False
) -> JobData:
    """:func:`build_parties`, with the job's :class:`TabularSchema` and target columns."""
    schema = targets = None
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
        parties, validation, schema = _read_party_files(cfg, base_dir, own_validation)
        assert cfg.parties is not None
        targets = {spec.name: spec.target for spec in cfg.parties}
    return JobData(_apply_transforms(parties, cfg.transform, seed), validation, schema, targets)


def _read_party_files(
    cfg: JobConfig, base_dir: Path, own_validation: bool
) -> tuple[list[Party], tuple[NDArray[np.float64], NDArray[Any]], TabularSchema]:
    """Parties and validation from one file each, every column matched by name."""
    assert cfg.parties is not None and cfg.validation is not None
    prep = cfg.preprocessing
    allow_missing = accepts_missing(build_learner(cfg.learner, prep))
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
    val = cfg.validation
    if val.path is not None and val.target is not None:
        label = f"[validation] file {val.path!r}"
        tables[label] = (_read_table(label, base_dir / val.path), val.target)
    else:
        assert val.fraction is not None
        label = f"[validation] (a fraction {val.fraction:g} of every party's rows)"
        tables[label] = _hold_out(tables, keys, val.fraction, cfg.seed)
    keys.append(("validation", "path"))
    try:
        features = job_features(tables, cfg.features, extra=cfg.extra_columns)
        encoder = _encoder(prep, features, tables, keys)
    except (ColumnError, ValueError) as exc:
        raise ConfigError(str(exc)) from None
    built: dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[Any]]] = {}
    last = len(keys) - 1
    for k, ((owner, key), (label, (frame, target))) in enumerate(
        zip(keys, tables.items(), strict=True)
    ):
        try:
            with warnings.catch_warnings():
                if key != "path" or k == last:  # one-row/one-class warnings: training only
                    warnings.filterwarnings("ignore", message=".* has a single (training|class)")
                part = Party.from_dataframe(
                    owner,
                    frame,
                    target,
                    features=features,
                    encoder=encoder,
                    allow_missing=allow_missing,
                    source=label,
                )
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        built[owner, key] = (part.X, part.y)
    _check_label_kinds({label: built[k][1] for k, label in zip(keys, tables, strict=True)})
    names = features if encoder is None else encoder.get_feature_names_out()
    parties = [
        Party(
            spec.name,
            *built[spec.name, "path"],
            *(built[spec.name, "validation"] if own_validation else (None, None)),
            feature_names=names,
            allow_missing=allow_missing,
        )
        for spec in cfg.parties
    ]
    schema = encoder or TabularSchema(tuple(features), {})  # all numeric: names only
    return parties, built["validation", "path"], schema


def _hold_out(
    tables: dict[str, tuple[pd.DataFrame, str]],
    keys: list[tuple[str, str]],
    fraction: float,
    seed: int | None,
) -> tuple[pd.DataFrame, str]:
    """Move a random ``fraction`` of each party's training rows (at least one) into a
    validation table; ``tables`` keeps the rest. The validation labels are in the first
    party's target column."""
    training = [label for label, (_, key) in zip(tables, keys, strict=True) if key == "path"]
    first_target = tables[training[0]][1]
    held: list[pd.DataFrame] = []
    for label, rng in zip(training, spawn_generators(seed, len(training)), strict=True):
        frame, target = tables[label]
        n_held = max(1, round(fraction * len(frame)))
        if n_held >= len(frame):
            raise ConfigError(
                f"{label}: its {len(frame)} row(s) are too few to hold out a validation "
                f"fraction {fraction:g} and keep training rows; give a [validation] file"
            )
        rows = rng.permutation(len(frame))
        tables[label] = (frame.iloc[np.sort(rows[n_held:])].reset_index(drop=True), target)
        held.append(frame.iloc[np.sort(rows[:n_held])].rename(columns={target: first_target}))
    return pd.concat(held, ignore_index=True), first_target


def _encoder(
    prep: PreprocessingConfig,
    features: list[str],
    tables: dict[str, tuple[pd.DataFrame, str]],
    keys: list[tuple[str, str]],
) -> TabularSchema | None:
    """The fixed categorical encoding of the job, or None when every feature is numeric
    (or ``categorical = "error"``: the parties then refuse text columns by name)."""
    frames = {label: frame for label, (frame, _) in tables.items()}
    unknown = sorted(set(prep.categories) - set(features))
    if unknown:
        raise ValueError(
            f"preprocessing.categories: {unknown} are not features of this job ({features})"
        )
    columns = categorical_columns(frames, features)
    columns = [c for c in features if c in columns or c in prep.categories]
    if not columns or prep.categorical == "error":
        return None
    # The category lists: declared, or observed in the parties' training files only.
    # The last table is the job's [validation] file; parties' own validation files are
    # the "validation" key.
    pairs = list(zip(keys, frames.values(), strict=True))[:-1]
    training = [frame for (_, key), frame in pairs if key == "path"]
    categories = observed_categories(training, columns)
    for column, declared in prep.categories.items():
        categories[column] = tuple(str(c) for c in declared)
    empty = [c for c, values in categories.items() if not values]
    if empty:
        raise ValueError(
            f"categorical columns {empty} have no value in any party's training file; drop "
            "them or declare their categories in [preprocessing.categories]"
        )
    return TabularSchema(
        tuple(features), categories, prep.categorical, declared=tuple(prep.categories)
    )


def _check_label_kinds(labels: dict[str, NDArray[Any]]) -> None:
    """Every file's labels are text, or every file's labels are numbers."""
    text = {label: y for label, y in labels.items() if y.dtype.kind == "U"}
    if text and len(text) < len(labels):
        a, ya = next(iter(text.items()))
        b, yb = next((label, y) for label, y in labels.items() if label not in text)
        raise ConfigError(
            f"{a} has text labels (e.g. {ya[0].item()!r}) but {b} has number labels (e.g. "
            f"{yb[0].item()!r}); write the target column the same way in every file"
        )


def _read_table(label: str, path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame; a missing or empty file is a ConfigError."""
    try:
        return read_table(label, path)
    except (ValueError, OSError) as exc:
        raise ConfigError(str(exc)) from None


def _split_own(party: Party, fraction: float, seed: int | None) -> Party:
    X, X_val, y, y_val = train_validation_split(
        party.X, party.y, validation_fraction=fraction, random_state=seed, stratify=False
    )
    return Party(
        party.name,
        X,
        y,
        X_val,
        y_val,
        party.metadata,
        feature_names=party.feature_names,
        allow_missing=party.has_missing,
    )


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
