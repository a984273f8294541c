"""Datasets of a market: the schema every upload must match, the duplicate policy,
per-party quotas, deletion, and a round's stored datasets turned into parties.

The rules, in one place (the API's dataset routes and the round runner call these
functions):

* **The market's schema.** A market fixes its target column, the label type (integer,
  number, string or boolean; for classification, optionally the allowed classes) and
  its feature columns with their types (number, integer or boolean). The operator may
  declare it when creating the market (:func:`declare_schema`); otherwise the first
  accepted upload fixes it, classes left open (a party's first file need not hold every
  class). Every later upload must match, value by value: a file that does not gets a
  :class:`SchemaMismatch` naming the data row, the column and the value, and nothing is
  stored. An inferred schema is released when the market's last dataset is deleted; a
  declared one stays.
* **Duplicates.** A party's training data is the *set of its distinct rows* across its
  uploads: a byte-identical re-upload (same SHA-256, same party, same role) is refused
  (:class:`DuplicateDataset`), and when a round loads a party's training files, exact
  duplicate rows (same features and label) after the first occurrence are **dropped**
  before valuation (:func:`distinct_rows`) and reported in the round's audit.
  Duplicates across parties are never refused at upload (that would tell a party what
  another one holds): each round screens them (:mod:`coopml.market.duplicates`).
* **Quotas.** Per party and market: at most ``max_datasets_per_party`` datasets and
  ``max_bytes_per_party`` bytes (``Settings`` defaults, overridable per market at
  creation). A file larger than the whole byte quota is :class:`DatasetTooLarge`; one
  that does not fit beside the party's other data, or one dataset too many, is
  :class:`QuotaExceeded` (retry after deleting or replacing data, not after waiting).
* **Deletion and replacement.** The owner party or the operator may delete a dataset
  (:func:`delete_dataset`); a party may replace one of its own by uploading with
  ``replaces`` (one transaction). Both are audited, and the encrypted blob is erased
  unless another dataset (or model) references the same content-addressed blob. A
  dataset that a queued or running round reads cannot be deleted until the round ends
  (:class:`DatasetInUse`).
* **Failed rounds.** A stored dataset that cannot be used when a round loads it (a file
  uploaded before these rules, or deleted meanwhile) raises :class:`DatasetFault`; the
  round fails, its owner is told which of its datasets and why, and the other parties
  learn nothing about it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from coopml.service.context import record_audit
from coopml.service.domain._query import paginate, valid_id
from coopml.service.domain.errors import Conflict, not_found
from coopml.service.domain.parties import require_party
from coopml.service.storage.models import Dataset, Market, ModelArtifact, Party, Round, utc
from coopml.service.tables import (
    FEATURE_TYPES,
    LABEL_TYPES,
    ColumnTypes,
    SchemaViolation,
    TableError,
    bidi_controls,
    parse_table,
    scan_table,
    to_arrays,
)

if TYPE_CHECKING:
    from coopml.data import Party as MarketParty
    from coopml.service.context import ServiceContext
    from coopml.service.domain.parties import Principal
    from coopml.service.domain.rounds import RoundConfig
    from coopml.service.settings import Settings

__all__ = [
    "DatasetFault",
    "DatasetInUse",
    "DatasetNotFound",
    "DatasetRuleError",
    "DatasetTooLarge",
    "DuplicateDataset",
    "InvalidDataset",
    "InvalidSchema",
    "MarketSchema",
    "PartiesCustody",
    "QuotaExceeded",
    "Quotas",
    "RoundInputs",
    "SchemaMismatch",
    "Upload",
    "check_custody",
    "check_file_name",
    "check_local_file",
    "configure_market",
    "dataset_content",
    "dataset_view",
    "declare_schema",
    "delete_dataset",
    "distinct_rows",
    "list_datasets",
    "load_round_inputs",
    "precheck_upload",
    "quotas_for",
    "read_dataset",
    "store_upload",
    "visible_dataset",
]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: Rounds in these states read their datasets: those cannot be deleted meanwhile.
ACTIVE_ROUND_STATES = ("queued", "running")
#: Suggested wait before deleting a dataset that an active round reads.
IN_USE_RETRY_SECONDS = 30


# ----------------------------------------------------------------------------- errors
class DatasetRuleError(Exception):
    """A dataset rule refused a request; ``code`` is machine-readable, ``retry_after``
    (seconds) is set when retrying later can succeed."""

    code = "invalid_dataset"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidDataset(DatasetRuleError):
    """The file is not a usable table, or its name is unacceptable."""

    code = "invalid_dataset"


class SchemaMismatch(DatasetRuleError):
    """The file does not match the market's schema."""

    code = "schema_mismatch"


class InvalidSchema(DatasetRuleError):
    """An operator's schema declaration that cannot be used."""

    code = "invalid_schema"


class DuplicateDataset(DatasetRuleError):
    """The party already uploaded this exact file (same role)."""

    code = "duplicate_dataset"


class QuotaExceeded(DatasetRuleError):
    """The party's dataset or byte quota in this market is used up."""

    code = "quota_exceeded"


class DatasetTooLarge(DatasetRuleError):
    """The file alone is larger than a party may store in this market."""

    code = "payload_too_large"


class DatasetInUse(DatasetRuleError):
    """A queued or running round reads the dataset."""

    code = "dataset_in_use"


class DatasetNotFound(DatasetRuleError):
    """No such dataset, or not the caller's."""

    code = "not_found"


class PartiesCustody(Conflict, DatasetRuleError):
    """The market is in parties custody: its rows stay with the parties (409)."""

    code = "parties_custody"


def check_custody(market: Market) -> None:
    """Refuse an upload to a parties-custody market, saying why and what to do."""
    if market.custody == "parties":
        raise PartiesCustody(
            f"file: market {market.id!r} is in parties custody: the parties' rows stay on "
            "their own machines and are never uploaded. Run `coopml agent --url URL "
            "--token TOKEN --market MARKET_ID --train FILE --validation FILE --target "
            "COLUMN` next to your files instead"
        )


class DatasetFault(RuntimeError):
    """A stored dataset that makes a round fail: ``party_message`` is for its owner
    (names only the owner's own dataset), ``str(self)`` for the operator."""

    def __init__(
        self, dataset_id: str, dataset_name: str, party_id: str, party_name: str, reason: str
    ) -> None:
        self.dataset_id, self.dataset_name = dataset_id, dataset_name
        self.party_id, self.party_name, self.reason = party_id, party_name, reason
        super().__init__(
            f"dataset {dataset_id} ({dataset_name!r}) of party {party_name} ({party_id}) "
            f"cannot be used: {reason}"
        )

    @property
    def party_message(self) -> str:
        return (
            f"failed: your dataset {self.dataset_id} ({self.dataset_name!r}) cannot be used: "
            f"{self.reason}. Delete or replace it, then ask the operator for a new round"
        )

    def to_record(self) -> dict[str, str]:
        """What the round keeps (``rounds.failure``): who is told what."""
        return {
            "party_id": self.party_id,
            "dataset_id": self.dataset_id,
            "message": self.party_message,
        }


# ----------------------------------------------------------------------------- schema
@dataclass(frozen=True)
class MarketSchema:
    """The target, label type, classes and typed feature columns of a market.

    ``origin``: ``"declared"`` (by the operator at creation) or ``"first_upload"``.

    Examples
    --------
    >>> schema = MarketSchema("y", "integer", (("a", "number"), ("b", "integer")))
    >>> MarketSchema.from_dict(schema.to_dict()) == schema
    True
    >>> schema.feature_names
    ['a', 'b']
    """

    target: str
    label_type: str
    features: tuple[tuple[str, str], ...]
    classes: tuple[Any, ...] | None = None
    origin: str = "first_upload"

    @property
    def feature_names(self) -> list[str]:
        return [name for name, _ in self.features]

    @property
    def origin_text(self) -> str:
        if self.origin == "declared":
            return "declared by the operator"
        return "fixed by the market's first upload"

    def column_types(self) -> ColumnTypes:
        return ColumnTypes(dict(self.features), self.label_type, self.classes, self.origin_text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "label_type": self.label_type,
            "classes": None if self.classes is None else list(self.classes),
            "features": [{"name": n, "type": t} for n, t in self.features],
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MarketSchema:
        classes = data.get("classes")
        return cls(
            str(data["target"]),
            str(data["label_type"]),
            tuple((str(f["name"]), str(f["type"])) for f in data["features"]),
            None if classes is None else tuple(classes),
            str(data.get("origin", "first_upload")),
        )

    @classmethod
    def of(cls, market: Market) -> MarketSchema | None:
        """The market's schema, if fixed."""
        data = market.data_schema
        return None if not data else cls.from_dict(dict(data))


def _check_name(what: str, name: str) -> None:
    if _CONTROL.search(name) or bidi_controls(name):
        raise InvalidSchema(
            f"schema: {what} {name!a} must not contain control or Unicode bidirectional characters"
        )


def declare_schema(declared: dict[str, Any], task: str) -> MarketSchema:
    """The schema an operator declares at market creation (``target``, ``label_type``,
    optional ``classes``, ``features``: ``[{"name", "type"}]``), checked for ``task``.

    Examples
    --------
    >>> s = declare_schema(
    ...     {"target": "y", "label_type": "integer", "classes": [0, 1],
    ...      "features": [{"name": "a", "type": "number"}]}, "classification")
    >>> s.origin, s.classes
    ('declared', (0, 1))
    """
    target = str(declared["target"])
    _check_name("target", target)
    label_type = str(declared["label_type"])
    if label_type not in LABEL_TYPES:
        raise InvalidSchema(f"schema.label_type must be one of {LABEL_TYPES}; got {label_type!r}")
    features: list[tuple[str, str]] = []
    for entry in declared["features"]:
        name, kind = str(entry["name"]), str(entry.get("type", "number"))
        _check_name("feature", name)
        if kind not in FEATURE_TYPES:
            raise InvalidSchema(
                f"schema.features: type of {name!r} must be one of {FEATURE_TYPES}; got {kind!r}"
            )
        features.append((name, kind))
    names = [n for n, _ in features]
    if not names:
        raise InvalidSchema("schema.features: at least one feature column is required")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidSchema(f"schema.features: names must be unique; duplicated: {dupes}")
    if target in names:
        raise InvalidSchema(f"schema: the target {target!r} cannot also be a feature")
    classes = declared.get("classes")
    if task == "regression":
        if label_type not in ("number", "integer"):
            raise InvalidSchema(
                f"schema.label_type: a regression target is a number; got {label_type!r}"
            )
        if classes is not None:
            raise InvalidSchema("schema.classes: a regression market has no classes")
    if classes is not None:
        classes = list(classes)
        kinds = {
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
            "string": lambda v: isinstance(v, str),
            "boolean": lambda v: isinstance(v, bool),
        }
        wrong = [v for v in classes if not kinds[label_type](v)]
        if wrong:
            raise InvalidSchema(
                f"schema.classes must all be of label_type {label_type!r}; got {wrong[0]!r}"
            )
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise InvalidSchema("schema.classes must list at least 2 distinct classes")
    return MarketSchema(
        target,
        label_type,
        tuple(features),
        None if classes is None else tuple(classes),
        "declared",
    )


def _schema_from_scan(
    target: str, features: list[str], types: dict[str, str], label_type: str
) -> MarketSchema:
    return MarketSchema(target, label_type, tuple((n, types[n]) for n in features))


def configure_market(
    market: Market, schema: dict[str, Any] | None, quotas: dict[str, Any] | None
) -> None:
    """Set a new market's declared schema (:func:`declare_schema`; ``None``: the first
    upload fixes it) and its quotas (``None`` values: the service's defaults)."""
    if schema is not None:
        market.data_schema = declare_schema(schema, market.task).to_dict()
    quotas = quotas or {}
    market.max_datasets_per_party = quotas.get("max_datasets_per_party")
    market.max_bytes_per_party = quotas.get("max_bytes_per_party")


# ----------------------------------------------------------------------------- quotas
@dataclass(frozen=True)
class Quotas:
    """Per-party limits in one market."""

    max_datasets: int
    max_bytes: int


def quotas_for(market: Market, settings: Settings) -> Quotas:
    """The market's quotas: its own where set at creation, else the service's."""
    return Quotas(
        int(market.max_datasets_per_party or settings.max_datasets_per_party),
        int(market.max_bytes_per_party or settings.max_bytes_per_party),
    )


def _usage(s: Session, market_id: str, party_id: str, exclude: str | None) -> tuple[int, int]:
    query = select(func.count(Dataset.id), func.coalesce(func.sum(Dataset.size_bytes), 0)).where(
        Dataset.market_id == market_id, Dataset.party_id == party_id
    )
    if exclude is not None:
        query = query.where(Dataset.id != exclude)
    count, used = s.execute(query).one()
    return int(count), int(used)


def _check_quotas(
    s: Session, market: Market, party_id: str, size: int, settings: Settings, exclude: str | None
) -> None:
    q = quotas_for(market, settings)
    count, used = _usage(s, market.id, party_id, exclude)
    if size > q.max_bytes:
        raise DatasetTooLarge(
            f"file: {size} bytes is more than a party may store in this market "
            f"({q.max_bytes} bytes in all, max_bytes_per_party)"
        )
    if count >= q.max_datasets:
        raise QuotaExceeded(
            f"quota: you have {count} datasets in this market, the most allowed "
            f"(max_datasets_per_party={q.max_datasets}); delete or replace one first"
        )
    if used + size > q.max_bytes:
        raise QuotaExceeded(
            f"quota: you store {used} of the {q.max_bytes} bytes allowed in this market "
            f"(max_bytes_per_party); this file ({size} bytes) does not fit; delete or "
            "replace a dataset first"
        )


# ----------------------------------------------------------------------------- uploads
@dataclass
class Upload:
    """One received upload (``data``: the file's bytes, not copied)."""

    data: bytes | bytearray
    filename: str
    role: str
    target: str
    name: str | None = None
    replaces: str | None = None


def check_file_name(filename: str, what: str = "file: the file name") -> None:
    """Refuse a file name holding Unicode bidirectional controls (``U+202E`` makes
    ``report\u202egnp.csv`` display as ``reportvsc.png``)."""
    found = bidi_controls(filename)
    if found:
        raise InvalidDataset(
            f"{what} {filename!a} contains Unicode bidirectional control "
            f"characters ({', '.join(found)}), which disguise how it is displayed (a CSV "
            "can look like an image); rename the file"
        )


def _display_name(upload: Upload) -> str:
    name = upload.name or (upload.filename or "dataset")[:200]
    if upload.name is not None:
        check_file_name(upload.name, "name: the dataset name")  # shown in listings too
    if _CONTROL.search(name):
        name = "dataset"
    return name


def _lock_market(s: Session, market_id: str) -> Market:
    """Take the market's write lock (a row lock on PostgreSQL, the database's on
    SQLite): uploads, deletions and schema changes of one market are serialised."""
    s.execute(update(Market).where(Market.id == market_id).values(id=Market.id))
    market = s.get(Market, market_id, populate_existing=True)
    if market is None:
        raise DatasetNotFound(f"market {market_id!r} not found")
    return market


def _own_dataset(
    s: Session, dataset_id: str, *, market_id: str | None, party_id: str | None
) -> Dataset:
    """The dataset, if the caller may act on it (``party_id`` None: the operator)."""
    ds = s.get(Dataset, dataset_id, populate_existing=True)
    if (
        ds is None
        or (party_id is not None and ds.party_id != party_id)
        or (market_id is not None and ds.market_id != market_id)
    ):
        raise DatasetNotFound(f"dataset {dataset_id!r} not found")
    return ds


def _rounds_reading(s: Session, ds: Dataset) -> list[str]:
    rounds = s.scalars(
        select(Round).where(Round.market_id == ds.market_id, Round.status.in_(ACTIVE_ROUND_STATES))
    )
    ids = []
    for rnd in rounds:
        inputs = dict(rnd.config or {}).get("_inputs") or {}
        used = set(inputs.get("shared_validation", []))
        for entry in inputs.get("parties", []):
            used.update(entry.get("train", []), entry.get("validation", []))
        if ds.id in used:
            ids.append(rnd.id)
    return ids


def _check_not_in_use(s: Session, ds: Dataset) -> None:
    active = _rounds_reading(s, ds)
    if active:
        raise DatasetInUse(
            f"dataset {ds.id} is read by round {active[0]}, which is queued or running; "
            "delete or replace it after the round has finished",
            retry_after=IN_USE_RETRY_SECONDS,
        )


def precheck_upload(
    s: Session,
    market: Market,
    party_id: str,
    settings: Settings,
    *,
    declared_bytes: int | None,
    replaces: str | None = None,
) -> None:
    """Cheap checks before the body is read (so that a refused upload costs no memory):
    the market's custody, the dataset quota, and the byte quota against the request's
    declared size."""
    check_custody(market)
    q = quotas_for(market, settings)
    count, _ = _usage(s, market.id, party_id, replaces)
    if count >= q.max_datasets:
        _check_quotas(s, market, party_id, 0, settings, replaces)
    if declared_bytes is not None and declared_bytes > q.max_bytes + 64 * 1024:
        raise DatasetTooLarge(
            f"file: the request declares {declared_bytes} bytes, more than a party may store "
            f"in this market ({q.max_bytes} bytes in all, max_bytes_per_party)"
        )


def _check_target(upload: Upload, schema: MarketSchema | None) -> None:
    if schema is not None and upload.target != schema.target:
        raise SchemaMismatch(
            f"target: this market's target column is {schema.target!r} "
            f"({schema.origin_text}); received target {upload.target!r}"
        )


def _scan(upload: Upload, task: str, schema: MarketSchema | None) -> Any:
    _check_target(upload, schema)
    try:
        return scan_table(
            upload.data,
            upload.filename,
            upload.target,
            task,
            None if schema is None else schema.column_types(),
        )
    except SchemaViolation as exc:
        raise SchemaMismatch(str(exc)) from None
    except TableError as exc:
        raise InvalidDataset(str(exc)) from None


def check_local_file(
    data: bytes,
    filename: str,
    role: str,
    target: str,
    task: str,
    schema: Mapping[str, Any] | None,
) -> Any:
    """Check a party's own file against a market's schema (``schema``: the market's
    ``schema`` as the API shows it) with the same checks, and messages, as an upload;
    raises a :class:`DatasetRuleError`, else returns the scan. ``coopml agent`` runs it
    on the party's machine in a parties-custody market, where nothing is uploaded."""
    check_file_name(filename)
    known = None if not schema else MarketSchema.from_dict(dict(schema))
    return _scan(Upload(data, filename, role, target), task, known)


def _legacy_schema(ctx: ServiceContext, s: Session, market: Market) -> MarketSchema | None:
    """A schema for a market whose datasets predate stored schemas: the one its first
    dataset implies (``None`` when it has none, or the first cannot be read)."""
    first = s.scalars(
        select(Dataset)
        .where(Dataset.market_id == market.id)
        .order_by(Dataset.created_at, Dataset.id)
        .limit(1)
    ).first()
    if first is None:
        return None
    try:
        scan = scan_table(ctx.blobs.get(first.blob), f"x.{first.format}", first.target, market.task)
    except Exception:
        return None
    return _schema_from_scan(first.target, scan.features, scan.feature_types, scan.label_type)


def store_upload(
    ctx: ServiceContext, market_id: str, party_id: str, actor: str, upload: Upload
) -> Dataset:
    """Validate ``upload`` against the market's rules and store it encrypted; returns
    the new dataset. Raises a :class:`DatasetRuleError` (nothing is stored then).

    The file is validated in chunks outside any transaction; then, under the market's
    write lock, the schema (fixing it on the first upload), the duplicate rule and the
    quotas are checked again and the row, the blob and the audit entry are written in
    one transaction.
    """
    check_file_name(upload.filename)
    name = _display_name(upload)
    size = len(upload.data)
    digest = hashlib.sha256(upload.data).hexdigest()
    for _ in range(3):
        with ctx.db.sessions() as s:
            market = s.get(Market, market_id)
            if market is None:
                raise DatasetNotFound(f"market {market_id!r} not found")
            check_custody(market)
            task = market.task
            schema = MarketSchema.of(market)
            if schema is None and market.data_schema is None:
                schema = _legacy_schema(ctx, s, market)
                legacy = schema
            else:
                legacy = None
            _check_quotas(s, market, party_id, size, ctx.settings, upload.replaces)
            _check_target(upload, schema)
            _check_duplicate(s, market.id, party_id, digest, upload.role, upload.replaces)
        scan = _scan(upload, task, schema)
        with ctx.db.sessions() as s:
            market = _lock_market(s, market_id)
            current = MarketSchema.of(market) or legacy
            if current != schema:
                s.rollback()
                continue  # a concurrent first upload fixed the schema: validate again
            if current is None or legacy is not None:
                fixed = current or _schema_from_scan(
                    upload.target, scan.features, scan.feature_types, scan.label_type
                )
                market.data_schema = fixed.to_dict()
            replaced = None
            if upload.replaces is not None:
                replaced = _own_dataset(s, upload.replaces, market_id=market.id, party_id=party_id)
                _check_not_in_use(s, replaced)
            _check_duplicate(s, market.id, party_id, digest, upload.role, upload.replaces)
            _check_quotas(s, market, party_id, size, ctx.settings, upload.replaces)
            ds = Dataset(
                market_id=market.id,
                party_id=party_id,
                name=name,
                role=upload.role,
                format=scan.format,
                n_rows=scan.n_rows,
                n_features=len(scan.features),
                columns=list(scan.columns),
                target=upload.target,
                sha256=digest,
                blob=ctx.blobs.address(upload.data),
                size_bytes=size,
            )
            old_blob = None
            with ctx.blobs.lock():  # the blob and its reference appear together
                ctx.blobs.put(upload.data)
                s.add(ds)
                s.flush()
                record_audit(
                    s, actor, "dataset_uploaded", "dataset", ds.id,
                    market_id=market.id, party_id=party_id,
                )  # fmt: skip
                if replaced is not None:
                    old_blob = replaced.blob
                    _delete_row(s, replaced, actor, action="dataset_replaced")
                s.commit()
            if old_blob is not None:
                _release_blob(ctx, old_blob)
            return ds
    raise SchemaMismatch(
        "the market's schema changed while this file was being checked; upload it again"
    )


def _check_duplicate(
    s: Session, market_id: str, party_id: str, digest: str, role: str, replaces: str | None
) -> None:
    query = select(Dataset).where(
        Dataset.market_id == market_id,
        Dataset.party_id == party_id,
        Dataset.sha256 == digest,
        Dataset.role == role,
    )
    if replaces is not None:
        query = query.where(Dataset.id != replaces)
    same = s.scalars(query.limit(1)).first()
    if same is not None:
        raise DuplicateDataset(
            f"file: you already uploaded this exact file (SHA-256 {digest[:16]}...) as "
            f"{role} dataset {same.id} ({same.name!r}); a party's training data is the set "
            "of its distinct rows, so an identical copy adds nothing. Delete or replace "
            f"dataset {same.id} to change it"
        )


# ----------------------------------------------------------------------------- deletion
def _delete_row(s: Session, ds: Dataset, actor: str, *, action: str = "dataset_deleted") -> None:
    record_audit(s, actor, action, "dataset", ds.id, market_id=ds.market_id, party_id=ds.party_id)
    s.delete(ds)
    s.flush()


def _release_blob(ctx: ServiceContext, address: str) -> bool:
    """Erase a blob no dataset or model references any more; whether it was erased."""
    with ctx.blobs.lock(), ctx.db.sessions() as s:
        refs = s.scalar(select(func.count()).select_from(Dataset).where(Dataset.blob == address))
        refs = (refs or 0) + (
            s.scalar(
                select(func.count()).select_from(ModelArtifact).where(ModelArtifact.blob == address)
            )
            or 0
        )
        if refs:
            return False
        return ctx.blobs.delete(address)


def delete_dataset(
    ctx: ServiceContext, dataset_id: str, *, actor: str, party_id: str | None
) -> None:
    """Delete a dataset (``party_id``: the calling party, which must own it; ``None``:
    the operator), audited; erase its blob unless another dataset references it. An
    inferred market schema is released when no dataset is left."""
    with ctx.db.sessions() as s:
        ds = _own_dataset(s, dataset_id, market_id=None, party_id=party_id)
        market = _lock_market(s, ds.market_id)
        # read again under the lock: a concurrent deletion may have won
        ds = _own_dataset(s, dataset_id, market_id=market.id, party_id=party_id)
        _check_not_in_use(s, ds)
        address = ds.blob
        _delete_row(s, ds, actor)
        left = s.scalar(
            select(func.count()).select_from(Dataset).where(Dataset.market_id == market.id)
        )
        schema = MarketSchema.of(market)
        if not left and schema is not None and schema.origin != "declared":
            market.data_schema = None
        s.commit()
    _release_blob(ctx, address)


# ----------------------------------------------------------------------------- rounds
def distinct_rows(
    X: NDArray[np.float64], y: NDArray[Any]
) -> tuple[NDArray[np.float64], NDArray[Any], int]:
    """Drop exact duplicate rows (same features and label) after their first
    occurrence, keeping the order; returns the rows kept and how many were dropped.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [1.0, 2.0]])
    >>> y = np.array([0, 1, 0, 1])
    >>> X2, y2, dropped = distinct_rows(X, y)
    >>> X2.tolist(), y2.tolist(), dropped
    ([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]], [0, 1, 1], 1)
    """
    frame = pd.DataFrame(X)
    frame["__label__"] = y
    duplicated = frame.duplicated(keep="first").to_numpy()
    if not duplicated.any():
        return X, y, 0
    keep = ~duplicated
    return X[keep], y[keep], int(duplicated.sum())


@dataclass
class RoundInputs:
    """A round's parties, shared validation data and bookkeeping, ready to value."""

    parties: list[MarketParty]
    validation: tuple[Any, Any] | None
    party_ids: dict[str, str]
    #: Per party with duplicate training rows: how many were dropped.
    own_duplicates: list[dict[str, Any]] = field(default_factory=list)


def load_round_inputs(
    ctx: ServiceContext, config: RoundConfig, task: str, market_id: str
) -> RoundInputs:
    """Decrypt, validate and stack the datasets of a round's snapshot (``config.inputs``).

    Each dataset is checked against the market's schema (for a market from before
    stored schemas: against the first dataset loaded); one that cannot be used raises
    :class:`DatasetFault` naming it. A party's training rows are its distinct rows
    (:func:`distinct_rows`).
    """
    from coopml.data import Party as MarketParty
    from coopml.service.security import DecryptionError

    inputs = config.inputs
    features = list(inputs.features)
    ids = [i for e in inputs.parties for i in e.train + e.validation]
    ids += inputs.shared_validation
    with ctx.db.session() as s:
        rows = {d.id: d for d in s.scalars(select(Dataset).where(Dataset.id.in_(set(ids))))}
        owners = {e.party_id: e.name for e in inputs.parties}
        owners.update(
            {
                p.id: p.name
                for p in s.scalars(
                    select(Party).where(Party.id.in_({d.party_id for d in rows.values()}))
                )
            }
        )
        market = s.get(Market, market_id)
        schema = MarketSchema.of(market) if market is not None else None
    expected = None if schema is None else schema.column_types()
    cache: dict[str, tuple[Any, Any]] = {}
    owner_of = {i: e.party_id for e in inputs.parties for i in e.train + e.validation}

    def fault(dataset_id: str, ds: Dataset | None, reason: str) -> DatasetFault:
        pid = ds.party_id if ds is not None else owner_of.get(dataset_id, "")
        name = ds.name if ds is not None else "(deleted)"
        return DatasetFault(dataset_id, name, pid, owners.get(pid, pid), reason)

    def arrays(dataset_id: str) -> tuple[Any, Any]:
        nonlocal expected
        if dataset_id in cache:
            return cache[dataset_id]
        ds = rows.get(dataset_id)
        if ds is None:
            raise fault(dataset_id, None, "it was deleted after the round was opened")
        try:
            data = ctx.blobs.get(ds.blob)
        except (OSError, DecryptionError):
            raise fault(
                dataset_id, ds, "its stored copy cannot be read (upload it again)"
            ) from None
        try:
            table = parse_table(data, f"x.{ds.format}", ds.target, task, expected)
        except TableError as exc:
            raise fault(dataset_id, ds, str(exc)) from None
        if schema is not None and ds.target != schema.target:
            raise fault(
                dataset_id, ds, f"its target is {ds.target!r}, not the market's {schema.target!r}"
            )
        missing = [c for c in features if c not in table.features]
        if missing:
            raise fault(dataset_id, ds, f"it lacks the market's feature columns {missing[:20]}")
        if expected is None:  # a market from before stored schemas: the first file rules
            expected = ColumnTypes(
                dict(table.feature_types),
                table.label_type,
                None,
                "fixed by the first dataset of this round",
            )
        cache[dataset_id] = to_arrays(table, features)
        return cache[dataset_id]

    def stack(parts: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    per_party = config.tasks == "per_party"
    parties: list[MarketParty] = []
    own_duplicates: list[dict[str, Any]] = []
    for entry in inputs.parties:
        X, y = stack([arrays(i) for i in entry.train])
        X, y, dropped = distinct_rows(X, y)
        if dropped:
            own_duplicates.append(
                {
                    "party": entry.name,
                    "action": "dropped_own_duplicates",
                    "rows_dropped": dropped,
                    "rows_kept": len(y),
                }
            )
        if per_party:
            X_val, y_val = stack([arrays(i) for i in entry.validation])
            parties.append(MarketParty(entry.name, X, y, X_val, y_val))
        else:
            parties.append(MarketParty(entry.name, X, y))
    validation = None if per_party else stack([arrays(i) for i in inputs.shared_validation])
    party_ids = {e.name: e.party_id for e in inputs.parties}
    return RoundInputs(parties, validation, party_ids, own_duplicates)


# ----------------------------------------------------------------------------- reading
def visible_dataset(s: Session, principal: Principal, dataset_id: str) -> Dataset:
    """The dataset, if the caller may see it (parties: their own only); otherwise
    :class:`~coopml.service.domain.errors.NotFound`."""
    ds = s.get(Dataset, dataset_id) if valid_id(dataset_id) else None
    if ds is None or (not principal.is_operator and principal.party_id != ds.party_id):
        raise not_found("dataset", dataset_id)
    return ds


def dataset_view(d: Dataset) -> dict[str, Any]:
    """A dataset's metadata as the API shows it (never its rows)."""
    return {
        "id": d.id,
        "party_id": d.party_id,
        "market_id": d.market_id,
        "name": d.name,
        "role": d.role,
        "format": d.format,
        "n_rows": d.n_rows,
        "n_features": d.n_features,
        "columns": list(d.columns),
        "target": d.target,
        "sha256": d.sha256,
        "size_bytes": d.size_bytes,
        "created_at": utc(d.created_at),
    }


def list_datasets(
    s: Session, principal: Principal, market: Market, *, limit: int | None = None, offset: int = 0
) -> tuple[list[Dataset], int]:
    """The market's datasets (operator) or the caller's own (party), oldest first, and
    how many there are."""
    query = (
        select(Dataset)
        .where(Dataset.market_id == market.id)
        .order_by(Dataset.created_at, Dataset.id)
    )
    if not principal.is_operator:
        query = query.where(Dataset.party_id == principal.party_id)
    return paginate(s, query, limit, offset)


def read_dataset(s: Session, principal: Principal, dataset_id: str) -> Dataset:
    """A dataset's metadata (operator, or the owner party); audited and committed."""
    ds = visible_dataset(s, principal, dataset_id)
    record_audit(
        s,
        principal.actor,
        "dataset_read",
        "dataset",
        ds.id,
        market_id=ds.market_id,
        party_id=ds.party_id,
    )
    s.commit()
    return ds


def dataset_content(
    ctx: ServiceContext, s: Session, principal: Principal, dataset_id: str
) -> tuple[Dataset, bytes]:
    """The original bytes of a dataset (its owner party only); audited and committed."""
    ds = visible_dataset(s, principal, dataset_id)
    require_party(principal, "download dataset contents (only the owner party can)")
    record_audit(
        s,
        principal.actor,
        "dataset_downloaded",
        "dataset",
        ds.id,
        market_id=ds.market_id,
        party_id=ds.party_id,
    )
    s.commit()
    return ds, ctx.blobs.get(ds.blob)
