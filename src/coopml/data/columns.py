"""Columns matched by name: every party's file must hold the same features, in any order.

Pooling rows of several organisations is only meaningful if column ``j`` means the same
thing in every file. Position is no evidence of that (one hospital exports ``age, bmi``,
another ``bmi, age``; one writes ``BMI``), so coopml selects the feature columns of every
table *by name*, in one order fixed for the job: the job's ``features`` list, or the
first table's columns less the target. A missing column is an error naming the table
and the closest existing name; columns beyond the features are an error unless the job
says to ignore them.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ColumnError", "check_columns", "job_features", "select_features"]

ExtraColumns = Literal["error", "ignore"]


class ColumnError(ValueError):
    """A table whose columns do not match the job's features by name."""


def _closest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    by_case = [c for c in candidates if c.lower() == name.lower()]
    close = by_case or difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_columns(
    label: str,
    frame: pd.DataFrame,
    target: str,
    features: Sequence[str],
    *,
    extra: ExtraColumns = "error",
) -> None:
    """Check that ``frame`` holds ``target`` and every feature, by name.

    Parameters
    ----------
    label : str
        How the table is named in messages, e.g. ``"party 'bob' (bob.csv)"``.
    frame : pandas.DataFrame
    target : str
    features : sequence of str
        The job's feature columns.
    extra : {"error", "ignore"}
        What columns beyond the features and the target are.

    Raises
    ------
    ColumnError
        Naming the table, the column and the closest existing name.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"age": [1], "BMI": [2.0], "y": [0]})
    >>> check_columns("b.csv", df, "y", ["age", "bmi"])
    Traceback (most recent call last):
    ...
    coopml.data.columns.ColumnError: b.csv has no column 'bmi' (did you mean 'BMI'?); its ...
    """
    columns = [str(c) for c in frame.columns]
    _check_unique(label, columns)
    for name in [target, *features]:
        if name not in columns:
            role = "target column" if name == target else "column"
            raise ColumnError(
                f"{label} has no {role} {name!r}{_closest(name, columns)}; its columns are "
                f"{columns}. Every file must hold the features {list(features)} and the target "
                f"{target!r}, matched by name in any order"
            )
    unexpected = [c for c in columns if c not in features and c != target]
    if unexpected and extra == "error":
        raise ColumnError(
            f"{label} has columns {unexpected} that are not features of this job "
            f"({list(features)}); drop them, list them in 'features', or set "
            'extra_columns = "ignore"'
        )


def _check_unique(label: str, columns: Sequence[str]) -> None:
    """Refuse a table that names a column twice."""
    duplicated = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicated:
        counts = {c: list(columns).count(c) for c in duplicated}
        twice = ", ".join(
            f"column {c!r} appears {'twice' if k == 2 else f'{k} times'}" for c, k in counts.items()
        )
        raise ColumnError(f"{label}: {twice}; give every column a distinct name")


def select_features(label: str, X: Any, features: Sequence[str] | None) -> Any:
    """The feature columns of ``X`` by name, in the order ``features``.

    A DataFrame ``X`` matched against named features is reordered by name; anything
    else (an array, or features without names) is returned unchanged and is matched by
    position.

    Parameters
    ----------
    label : str
        How ``X`` is named in messages, e.g. ``"parameter 'validation'"``.
    X : pandas.DataFrame or array-like
    features : sequence of str, optional
        The parties' feature names.

    Returns
    -------
    pandas.DataFrame or array-like

    Raises
    ------
    ColumnError
        A feature missing from ``X`` (with the closest existing name), a column of ``X``
        that is no feature, or a column named twice.

    Examples
    --------
    >>> import pandas as pd
    >>> V = pd.DataFrame({"bmi": [2.0], "age": [30]})
    >>> select_features("validation", V, ["age", "bmi"]).columns.tolist()
    ['age', 'bmi']
    >>> select_features("validation", V.rename(columns={"bmi": "BMI"}), ["age", "bmi"])
    Traceback (most recent call last):
    ...
    coopml.data.columns.ColumnError: validation has no column 'bmi' (did you mean 'BMI'?); ...
    """
    pandas = sys.modules.get("pandas")  # not imported: X cannot be a DataFrame
    if features is None or pandas is None or not isinstance(X, pandas.DataFrame):
        return X
    features = [str(f) for f in features]
    columns = [str(c) for c in X.columns]
    _check_unique(label, columns)
    for name in features:
        if name not in columns:
            raise ColumnError(
                f"{label} has no column {name!r}{_closest(name, columns)}; its columns are "
                f"{columns}. It must hold the parties' features {features}, matched by name "
                "in any order"
            )
    unexpected = [c for c in columns if c not in features]
    if unexpected:
        raise ColumnError(
            f"{label} has columns {unexpected} that are not features of the parties "
            f"({features}); drop them"
        )
    return X.set_axis(columns, axis=1)[features]


def job_features(
    tables: Mapping[str, tuple[pd.DataFrame, str]],
    features: Sequence[str] | None = None,
    *,
    extra: ExtraColumns = "error",
) -> list[str]:
    """The job's feature columns, checked against every table by name.

    Parameters
    ----------
    tables : mapping of str to (pandas.DataFrame, str)
        ``label -> (table, its target column)``, in the job's order; labels name the
        tables in messages.
    features : sequence of str, optional
        The job's features; default the first table's columns less its target.
    extra : {"error", "ignore"}

    Returns
    -------
    list of str

    Examples
    --------
    >>> import pandas as pd
    >>> a = pd.DataFrame({"age": [1], "bmi": [2.0], "y": [0]})
    >>> b = pd.DataFrame({"y": [1], "bmi": [3.0], "age": [4]})  # another order: same columns
    >>> job_features({"a": (a, "y"), "b": (b, "y")})
    ['age', 'bmi']
    """
    if not tables:
        raise ValueError("parameter 'tables' must hold at least one table; got none")
    first_label, (first, first_target) = next(iter(tables.items()))
    if features is None:
        columns = [str(c) for c in first.columns]
        if first_target not in columns:
            raise ColumnError(
                f"{first_label} has no target column {first_target!r}"
                f"{_closest(first_target, columns)}; its columns are {columns}"
            )
        features = [c for c in columns if c != first_target]
    features = list(features)
    if not features:
        raise ColumnError(f"{first_label} has no feature column besides its target")
    for label, (frame, target) in tables.items():
        if target in features:
            raise ColumnError(
                f"{label}: the target {target!r} is also one of the features {features}"
            )
        check_columns(label, frame, target, features, extra=extra)
    return features
