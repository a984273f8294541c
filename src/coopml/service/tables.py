"""Parsing and validating uploaded datasets (CSV or Parquet).

A dataset is a table with one target column and numeric feature columns: no missing or
infinite feature values, at least two rows, unique column names. Every problem raises
:class:`TableError` with a message naming the column (and row) at fault.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["ParsedTable", "TableError", "detect_format", "parse_table", "to_arrays"]

MAX_COLUMNS = 10_000


class TableError(ValueError):
    """An uploaded table that cannot be used."""


@dataclass(frozen=True)
class ParsedTable:
    """A validated table."""

    frame: pd.DataFrame
    format: str
    target: str
    features: list[str]

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])


def detect_format(filename: str, data: bytes) -> str:
    """``"parquet"`` (by extension or the ``PAR1`` magic) or ``"csv"``."""
    lower = filename.lower()
    if lower.endswith((".parquet", ".pq")) or (data[:4] == b"PAR1" and data[-4:] == b"PAR1"):
        return "parquet"
    return "csv"


def _read_csv(data: bytes) -> pd.DataFrame:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(
            f"file: CSV must be UTF-8 text; byte {exc.start} (0x{data[exc.start]:02x}) is not "
            "valid UTF-8"
        ) from None
    if "\x00" in text:
        raise TableError("file: CSV must be text; found a NUL character (binary file?)")
    if not text.strip():
        raise TableError("file: the file is empty")
    try:
        header = next(csv.reader(io.StringIO(text)))
    except (csv.Error, StopIteration) as exc:
        raise TableError(f"file: cannot read the CSV header: {exc}") from None
    _check_names([h.strip() for h in header])
    try:
        frame = pd.read_csv(io.StringIO(text), skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise TableError(f"file: not a valid CSV table: {str(exc).strip()}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _read_parquet(data: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TableError(f"file: not a valid Parquet file: {exc}") from None
    _check_names(list(table.schema.names))
    try:
        return table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise TableError(f"file: cannot convert the Parquet table: {exc}") from None


def _check_names(names: list[Any]) -> None:
    if len(names) > MAX_COLUMNS:
        raise TableError(f"file: at most {MAX_COLUMNS} columns are allowed; got {len(names)}")
    bad = [n for n in names if not isinstance(n, str) or not n or len(n) > 200]
    if bad:
        raise TableError(
            "file: column names must be non-empty strings of at most 200 characters; "
            f"got {bad[0]!r}"
        )
    seen: set[str] = set()
    dupes = sorted({n for n in names if n in seen or seen.add(n)})  # type: ignore[func-returns-value]
    if dupes:
        raise TableError(f"file: column names must be unique; duplicated: {dupes}")


def parse_table(data: bytes, filename: str, target: str, task: str) -> ParsedTable:
    """Read and validate an uploaded table.

    Examples
    --------
    >>> t = parse_table(b"x1,x2,y\\n1,2,0\\n3,4,1\\n", "a.csv", "y", "classification")
    >>> t.features, t.n_rows
    (['x1', 'x2'], 2)
    """
    if not data:
        raise TableError("file: the file is empty")
    fmt = detect_format(filename, data)
    frame = _read_parquet(data) if fmt == "parquet" else _read_csv(data)
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise TableError(
            f"target: column {target!r} is not in the file; columns are {columns[:20]}"
            + (" ..." if len(columns) > 20 else "")
        )
    features = [c for c in columns if c != target]
    if not features:
        raise TableError("file: at least one feature column besides the target is required")
    if frame.shape[0] < 2:
        raise TableError(f"file: at least 2 data rows are required; got {frame.shape[0]}")
    non_numeric = [c for c in features if not (pd.api.types.is_numeric_dtype(frame[c].dtype))]
    if non_numeric:
        c = non_numeric[0]
        sample = frame[c].dropna().astype(str).head(1).tolist()
        raise TableError(
            f"file: feature columns must be numeric; column {c!r} is not"
            + (f" (e.g. value {sample[0][:40]!r})" if sample else " (it is empty)")
            + (f"; other non-numeric columns: {non_numeric[1:6]}" if len(non_numeric) > 1 else "")
        )
    X = frame[features].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        raise TableError(
            f"file: feature values must be finite numbers; column {features[col]!r} has "
            f"{X[row, col]} (missing or infinite) in data row {row + 1}"
        )
    y = frame[target]
    if y.isna().any():
        row = int(np.flatnonzero(y.isna().to_numpy())[0])
        raise TableError(f"target: column {target!r} has a missing value in data row {row + 1}")
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y.dtype) or pd.api.types.is_bool_dtype(y.dtype):
            raise TableError(f"target: a regression target must be numeric; {target!r} is not")
        if not np.all(np.isfinite(y.to_numpy(dtype=np.float64))):
            raise TableError(f"target: column {target!r} must hold finite numbers")
    else:
        kinds = {type(v) for v in y.tolist()}
        if len(kinds) > 1 and not kinds <= {int, float}:
            raise TableError(
                f"target: class labels in {target!r} must all be numbers or all be strings"
            )
    return ParsedTable(frame, fmt, target, features)


def to_arrays(table: ParsedTable, features: list[str]) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Features (in the market's column order) and the target."""
    X = table.frame[features].to_numpy(dtype=np.float64)
    y = table.frame[table.target].to_numpy()
    if y.dtype == object:
        y = np.asarray(y.tolist())
    return X, y
