"""Parsing and validating uploaded datasets (CSV or Parquet).

A dataset is a table with one target column and numeric feature columns: no missing or
infinite feature values, at least two rows, unique column names. Every problem raises
:class:`TableError` with a message naming the column, the data row (1-based, the header
not counted) and the offending value.

Two entry points share the same checks:

* :func:`scan_table` validates an upload **in chunks** (a few MiB of rows at a time,
  straight from the bytes received, no decoded copy of the text), so validating a file
  needs little memory beyond the file itself; it returns a :class:`TableScan`, the
  table's shape and column types;
* :func:`parse_table` reads the whole table (the round runner needs the arrays).

Column types are checked against :class:`ColumnTypes` when the market has fixed them
(see :mod:`coopml.service.domain.datasets`): feature types ``"number"``,
``"integer"``, ``"boolean"``; label types ``"integer"``, ``"number"``, ``"string"``,
``"boolean"``, and optionally the allowed classes. Without them the types are inferred,
and a label column that mixes numbers and text (``0, 1, ..., yes``) is refused: a
learner cannot train on it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = [
    "FEATURE_TYPES",
    "LABEL_TYPES",
    "ColumnTypes",
    "ParsedTable",
    "SchemaViolation",
    "TableError",
    "TableScan",
    "bidi_controls",
    "cast_labels",
    "detect_format",
    "parse_table",
    "scan_table",
    "to_arrays",
]

MAX_COLUMNS = 10_000
#: Rows are validated this many bytes of float64 values at a time.
CHUNK_BYTES = 1024 * 1024
FEATURE_TYPES = ("number", "integer", "boolean")
LABEL_TYPES = ("integer", "number", "string", "boolean")
#: Unicode bidirectional controls: they reorder displayed text (``x\u202egnp.csv`` is
#: shown as ``xcsv.png``), so names holding them are refused.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_INDEX_COLUMN = re.compile(r"^__index_level_\d+__$")

Buffer = bytes | bytearray


class TableError(ValueError):
    """An uploaded table that cannot be used."""


class SchemaViolation(TableError):
    """A table that is valid on its own but does not match the expected columns or
    column types (:class:`ColumnTypes`)."""


def bidi_controls(text: str) -> list[str]:
    """The Unicode bidirectional controls in ``text``, as ``U+XXXX``.

    Examples
    --------
    >>> bidi_controls("invoice\u202egnp.csv")
    ['U+202E']
    """
    return sorted({f"U+{ord(c):04X}" for c in _BIDI.findall(text)})


@dataclass(frozen=True)
class ColumnTypes:
    """The column types a market expects (its schema, as the parser sees it).

    ``features`` maps each feature column to ``"number"``, ``"integer"`` or
    ``"boolean"``; ``label_type`` is one of :data:`LABEL_TYPES` (``None``: infer it);
    ``classes`` (optional) are the allowed labels; ``origin`` says where the types come
    from, for messages.
    """

    features: dict[str, str] | None = None
    label_type: str | None = None
    classes: tuple[Any, ...] | None = None
    origin: str = "fixed by the market's schema"


@dataclass(frozen=True)
class TableScan:
    """What :func:`scan_table` learned about a valid table."""

    format: str
    columns: list[str]
    target: str
    features: list[str]
    n_rows: int
    feature_types: dict[str, str]
    label_type: str


@dataclass(frozen=True)
class ParsedTable:
    """A validated table."""

    frame: pd.DataFrame
    format: str
    target: str
    features: list[str]
    feature_types: dict[str, str] = field(default_factory=dict)
    label_type: str = "number"

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])


def detect_format(filename: str, data: Buffer) -> str:
    """``"parquet"`` (by extension or the ``PAR1`` magic) or ``"csv"``."""
    lower = filename.lower()
    if lower.endswith((".parquet", ".pq")) or (data[:4] == b"PAR1" and data[-4:] == b"PAR1"):
        return "parquet"
    return "csv"


# ----------------------------------------------------------------------------- reading
class _View(io.RawIOBase):
    """A read-only file over a buffer, without copying it."""

    def __init__(self, data: Buffer) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), len(self._view) - self._pos)
        b[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._view.release()
        super().close()


def _reader(data: Buffer) -> io.BufferedReader:
    return io.BufferedReader(_View(data), buffer_size=1 << 20)


def _check_utf8(data: Buffer) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    step = 1 << 20
    try:
        for start in range(0, len(view), step):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(view[start : start + step], final=start + step >= len(view))
            except UnicodeDecodeError as exc:
                at = max(0, start - pending + exc.start)
                raise TableError(
                    f"file: CSV must be UTF-8 text; byte {at} (0x{data[at]:02x}) is not valid UTF-8"
                ) from None
    finally:
        view.release()


def _csv_header(data: Buffer) -> list[str]:
    with io.TextIOWrapper(_reader(data), encoding="utf-8-sig", newline="") as text:
        try:
            return next(csv.reader(text))
        except (csv.Error, StopIteration) as exc:
            raise TableError(f"file: cannot read the CSV header: {exc}") from None


def _csv_chunks(data: Buffer, chunk_rows: int) -> tuple[list[str], Iterator[pd.DataFrame]]:
    if not re.search(rb"\S", data):
        raise TableError("file: the file is empty")
    _check_utf8(data)
    if data.find(b"\x00") >= 0:
        raise TableError("file: CSV must be text; found a NUL character (binary file?)")
    header = [h.strip() for h in _csv_header(data)]
    _check_names(header)
    rows = chunk_rows or _rows_per_chunk(len(header))

    def chunks() -> Iterator[pd.DataFrame]:
        handle = _reader(data)
        options: dict[str, Any] = {"skipinitialspace": True, "encoding": "utf-8-sig"}
        try:
            if rows < 0:  # the whole table at once
                frames: Any = [pd.read_csv(handle, **options)]
            else:
                frames = pd.read_csv(handle, chunksize=rows, **options)
            for frame in frames:
                frame.columns = [str(c).strip() for c in frame.columns]
                yield frame
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            raise TableError(f"file: not a valid CSV table: {str(exc).strip()}") from None
        finally:
            handle.close()

    return header, chunks()


def _parquet_chunks(data: Buffer, chunk_rows: int) -> tuple[list[str], Iterator[pd.DataFrame]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    errors = (pa.ArrowException, OSError, ValueError, TypeError)
    try:
        parquet = pq.ParquetFile(pa.BufferReader(pa.py_buffer(data)))
        names = [n for n in parquet.schema_arrow.names if not _INDEX_COLUMN.match(str(n))]
    except errors as exc:
        raise TableError(f"file: not a valid Parquet file: {exc}") from None
    _check_names(names)
    rows = chunk_rows or _rows_per_chunk(len(names))

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            if rows < 0:  # the whole table at once
                yield parquet.read(columns=names).to_pandas()
                return
            for batch in parquet.iter_batches(batch_size=rows, columns=names):
                yield batch.to_pandas()
        except errors as exc:
            raise TableError(f"file: cannot read the Parquet table: {exc}") from None

    return names, chunks()


def _rows_per_chunk(n_columns: int) -> int:
    return max(1000, CHUNK_BYTES // (8 * max(1, n_columns)))


def _check_names(names: list[Any]) -> None:
    if len(names) > MAX_COLUMNS:
        raise TableError(f"file: at most {MAX_COLUMNS} columns are allowed; got {len(names)}")
    bad = [n for n in names if not isinstance(n, str) or not n or len(n) > 200]
    if bad:
        raise TableError(
            "file: column names must be non-empty strings of at most 200 characters; "
            f"got {bad[0]!r}"
        )
    hidden = [n for n in names if bidi_controls(n)]
    if hidden:
        raise TableError(
            f"file: column name {hidden[0]!a} contains Unicode bidirectional control "
            f"characters ({', '.join(bidi_controls(hidden[0]))}), which disguise how it is "
            "displayed; rename the column"
        )
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise TableError(f"file: column names must be unique; duplicated: {dupes}")


# ----------------------------------------------------------------------------- checks
def _show(value: Any) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _numeric(column: pd.Series) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Values as float64 (NaN where missing or not a number) and where text is not a
    number."""
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64), np.zeros(len(column), dtype=bool)
    coerced = pd.to_numeric(column, errors="coerce")
    values = np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan))
    text = np.isnan(values) & ~column.isna().to_numpy()
    return values, text


def _feature_type(column: pd.Series) -> str | None:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "number"
    return None


class _Checker:
    """Validates a table chunk by chunk and accumulates its column types."""

    def __init__(
        self, columns: list[str], target: str, task: str, expected: ColumnTypes | None
    ) -> None:
        if target not in columns:
            raise TableError(
                f"target: column {target!r} is not in the file; columns are {columns[:20]}"
                + (" ..." if len(columns) > 20 else "")
            )
        self.columns, self.target, self.task = columns, target, task
        self.features = [c for c in columns if c != target]
        if not self.features:
            raise TableError("file: at least one feature column besides the target is required")
        self.expected = expected or ColumnTypes()
        if self.expected.features is not None:
            wanted = list(self.expected.features)
            missing = [c for c in wanted if c not in self.features]
            extra = [c for c in self.features if c not in self.expected.features]
            if missing or extra:
                raise SchemaViolation(
                    "file: the columns do not match this market's schema "
                    f"({self.expected.origin}): feature columns {wanted[:20]} and target "
                    f"{target!r}"
                    + (f"; missing feature columns {missing[:20]}" if missing else "")
                    + (f"; unexpected columns {extra[:20]}" if extra else "")
                )
        self.n_rows = 0
        self.feature_types: dict[str, str] = {}
        self._first_kind: dict[str, tuple[str, int, Any]] = {}
        # label kinds seen: kind -> [count, first row, first value]
        self._labels: dict[str, list[Any]] = {}
        self._integral = True

    # -- features
    def _features(self, frame: pd.DataFrame, offset: int) -> None:
        expected = self.expected.features or {}
        for name in self.features:
            column = frame[name]
            kind = _feature_type(column)
            if kind is None:
                _, text = _numeric(column)
                if text.any():
                    row = int(np.flatnonzero(text)[0])
                    raise TableError(
                        f"file: feature columns must be numeric; column {name!r} has "
                        f"{_show(column.iloc[row])} in data row {offset + row + 1}"
                    )
                kind = "number"  # all missing: reported below as missing values
            want = expected.get(name)
            if want is not None:
                self._conform(name, column, kind, want, offset)
            else:
                self._merge_kind(name, kind, column, offset)
        X = frame[self.features].to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(X)
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            value = X[row, col]
            shown = "a missing value (NaN)" if np.isnan(value) else f"{value} (infinite)"
            raise TableError(
                f"file: feature values must be finite numbers; column {self.features[col]!r} "
                f"has {shown} in data row {offset + row + 1}"
            )

    def _merge_kind(self, name: str, kind: str, column: pd.Series, offset: int) -> None:
        seen = self.feature_types.get(name)
        if seen is None:
            self.feature_types[name] = kind
            self._first_kind[name] = (kind, offset + 1, column.iloc[0] if len(column) else None)
        elif seen != kind:
            if "boolean" in (seen, kind):
                _, row, value = self._first_kind[name]
                raise TableError(
                    f"file: column {name!r} mixes booleans and numbers: data row "
                    f"{offset + 1} has {_show(column.iloc[0])} while data row {row} has "
                    f"{_show(value)}"
                )
            self.feature_types[name] = "number"

    def _conform(self, name: str, column: pd.Series, kind: str, want: str, offset: int) -> None:
        origin = self.expected.origin
        self.feature_types[name] = want
        if kind == want or (want == "number" and kind == "integer"):
            return
        values, _ = _numeric(column)
        if want == "number":  # a boolean column
            raise SchemaViolation(
                f"file: column {name!r} holds booleans ({_show(column.iloc[0])} in data row "
                f"{offset + 1}); this market's column {name!r} holds numbers ({origin})"
            )
        if want == "integer":
            if kind == "boolean":
                wrong = np.ones(len(values), dtype=bool)
            else:
                wrong = np.isfinite(values) & (values != np.round(values))
            what = "integers"
        else:  # boolean
            wrong = np.isfinite(values) & ~np.isin(values, (0.0, 1.0))
            what = "booleans (true/false, or 0/1)"
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise SchemaViolation(
                f"file: column {name!r} has {_show(column.iloc[row])} in data row "
                f"{offset + row + 1}; this market's column {name!r} holds {what} ({origin})"
            )

    # -- target
    def _target(self, frame: pd.DataFrame, offset: int) -> None:
        y = frame[self.target]
        missing = y.isna().to_numpy()
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise TableError(
                f"target: column {self.target!r} has a missing value in data row {offset + row + 1}"
            )
        name, origin = self.target, self.expected.origin
        is_bool = pd.api.types.is_bool_dtype(y.dtype)
        values, text = _numeric(y)
        if self.task == "regression":
            wrong = text | is_bool
            if wrong.any():
                row = int(np.flatnonzero(wrong)[0])
                raise TableError(
                    f"target: a regression target must be numeric; column {name!r} has "
                    f"{_show(y.iloc[row])} in data row {offset + row + 1}"
                )
            if not np.all(np.isfinite(values)):
                row = int(np.flatnonzero(~np.isfinite(values))[0])
                raise TableError(
                    f"target: column {name!r} must hold finite numbers; it has "
                    f"{_show(y.iloc[row])} in data row {offset + row + 1}"
                )
            self._note("number", np.ones(len(y), dtype=bool), y, offset)
            return
        want = self.expected.label_type
        if want is None:
            if is_bool:
                self._note("boolean", np.ones(len(y), dtype=bool), y, offset)
            else:
                numeric = ~text
                self._note("number", numeric, y, offset)
                self._note("string", text, y, offset)
                if numeric.any() and np.any(values[numeric] != np.round(values[numeric])):
                    self._integral = False
        else:
            if want == "integer":
                wrong = text | is_bool | (values != np.round(values))
            elif want == "number":
                wrong = text | is_bool | ~np.isfinite(values)
            elif want == "boolean":
                wrong = np.zeros(len(y), dtype=bool) if is_bool else ~np.isin(values, (0.0, 1.0))
            else:  # string: any value is a label
                wrong = np.zeros(len(y), dtype=bool)
            if wrong.any():
                row = int(np.flatnonzero(wrong)[0])
                plural = {"integer": "integers", "number": "numbers", "boolean": "booleans"}
                raise SchemaViolation(
                    f"target: column {name!r} has {_show(y.iloc[row])} in data row "
                    f"{offset + row + 1}; this market's labels are {plural[want]} ({origin})"
                )
        if self.expected.classes is not None:
            labels = cast_labels(y, want or self._label_type_so_far())
            allowed = list(self.expected.classes)
            outside = ~np.isin(labels, np.asarray(allowed, dtype=labels.dtype))
            if outside.any():
                row = int(np.flatnonzero(outside)[0])
                raise SchemaViolation(
                    f"target: column {name!r} has {_show(y.iloc[row])} in data row "
                    f"{offset + row + 1}, which is not one of this market's classes "
                    f"{allowed[:20]} ({origin})"
                )

    def _note(self, kind: str, mask: NDArray[np.bool_], y: pd.Series, offset: int) -> None:
        if not mask.any():
            return
        row = int(np.flatnonzero(mask)[0])
        entry = self._labels.setdefault(kind, [0, offset + row + 1, y.iloc[row]])
        entry[0] += int(mask.sum())

    def _label_type_so_far(self) -> str:
        kinds = set(self._labels)
        if "string" in kinds:
            return "string"
        if "boolean" in kinds:
            return "boolean"
        if self.task == "regression":
            return "number"
        return "integer" if self._integral else "number"

    def check(self, frame: pd.DataFrame, offset: int) -> None:
        if list(frame.columns) != self.columns:
            raise TableError(
                f"file: cannot read the header consistently: {self.columns[:20]} versus "
                f"{[str(c) for c in frame.columns][:20]}"
            )
        self._features(frame, offset)
        self._target(frame, offset)
        self.n_rows = offset + len(frame)

    def label_type(self) -> str:
        if self.expected.label_type is not None:
            return self.expected.label_type
        if len(self._labels) > 1:
            # two kinds of label (numbers and text, or booleans and numbers): cite the
            # first row of the rarer kind, the likely typo
            ranked = sorted(self._labels.items(), key=lambda kv: (kv[1][0], kv[1][1]))
            (rare, (_, row, value)), (common, (n_common, _, _)) = ranked[0], ranked[-1]
            words = {"string": "text", "number": "numbers", "boolean": "booleans"}
            raise TableError(
                f"target: column {self.target!r} mixes {words[common]} and {words[rare]}: "
                f"data row {row} has {_show(value)} while {n_common} other rows hold "
                f"{words[common]}; class labels must all be numbers, all be text or all be "
                "booleans"
            )
        return self._label_type_so_far()

    def finish(self) -> None:
        if self.n_rows < 2:
            raise TableError(f"file: at least 2 data rows are required; got {self.n_rows}")


def _chunks(
    data: Buffer, filename: str, chunk_rows: int
) -> tuple[str, list[str], Iterator[pd.DataFrame]]:
    """Format, header and the table in chunks of ``chunk_rows`` rows (0: a size that
    keeps a chunk's values near :data:`CHUNK_BYTES`; -1: the whole table)."""
    if not data:
        raise TableError("file: the file is empty")
    fmt = detect_format(filename, data)
    reader = _parquet_chunks if fmt == "parquet" else _csv_chunks
    columns, chunks = reader(data, chunk_rows)
    return fmt, [str(c) for c in columns], chunks


def scan_table(
    data: Buffer,
    filename: str,
    target: str,
    task: str,
    expected: ColumnTypes | None = None,
    *,
    chunk_rows: int | None = None,
) -> TableScan:
    """Validate an uploaded table chunk by chunk, without keeping it in memory.

    Examples
    --------
    >>> scan = scan_table(b"x1,x2,y\\n1,2.5,0\\n3,4,1\\n", "a.csv", "y", "classification")
    >>> scan.features, scan.n_rows, scan.feature_types, scan.label_type
    (['x1', 'x2'], 2, {'x1': 'integer', 'x2': 'number'}, 'integer')
    >>> try:
    ...     scan_table(b"x,y\\n1,0\\n2,1\\n3,yes\\n", "a.csv", "y", "classification")
    ... except TableError as exc:
    ...     print(str(exc).split(" while")[0])
    target: column 'y' mixes numbers and text: data row 3 has 'yes'
    """
    fmt, columns, chunks = _chunks(data, filename, chunk_rows or 0)
    checker = _Checker(columns, target, task, expected)
    offset = 0
    for frame in chunks:
        checker.check(frame, offset)
        offset += len(frame)
    checker.finish()
    return TableScan(
        fmt,
        columns,
        target,
        checker.features,
        checker.n_rows,
        dict(checker.feature_types),
        checker.label_type(),
    )


def parse_table(
    data: Buffer, filename: str, target: str, task: str, expected: ColumnTypes | None = None
) -> ParsedTable:
    """Read and validate a whole table.

    Examples
    --------
    >>> t = parse_table(b"x1,x2,y\\n1,2,0\\n3,4,1\\n", "a.csv", "y", "classification")
    >>> t.features, t.n_rows
    (['x1', 'x2'], 2)
    """
    fmt, columns, chunks = _chunks(data, filename, chunk_rows=-1)
    frame = next(chunks, None)
    if frame is None:
        frame = pd.DataFrame(columns=columns)
    checker = _Checker(columns, target, task, expected)
    checker.check(frame, 0)
    checker.finish()
    return ParsedTable(
        frame, fmt, target, checker.features, dict(checker.feature_types), checker.label_type()
    )


def cast_labels(y: pd.Series, label_type: str) -> NDArray[Any]:
    """Labels as an array of the market's label type (``"string"``: text, so that labels
    from different files never mix numbers and strings)."""
    if label_type == "string":
        return np.asarray(y.astype(str).tolist())
    if label_type == "boolean":
        values, _ = _numeric(y)
        return values.astype(bool)
    values, _ = _numeric(y)
    if label_type == "integer":
        return values.astype(np.int64)
    return values


def to_arrays(table: ParsedTable, features: list[str]) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Features (in the market's column order) and the target (as its label type)."""
    X = table.frame[features].to_numpy(dtype=np.float64)
    y = cast_labels(table.frame[table.target], table.label_type)
    return X, y
