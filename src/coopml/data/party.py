"""One organisation's data: the :class:`Party`, its loaders and :func:`check_parties`.

In a collaborative ML market (Ohrimenko, Tople, Tschiatschek 2019) each party :math:`i`
brings training data :math:`X_i` (what it sells) and, optionally, validation data
:math:`V_i` (the task it buys a model for). A :class:`Party` holds both as read-only
arrays, so a party's data cannot change after its contribution has been valued; its
:meth:`Party.fingerprint` identifies that data in caches and settlement records.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_2d_features, check_choice
from coopml.data.columns import _check_unique, select_features

if TYPE_CHECKING:
    import pandas as pd

# pandas, SciPy and scikit-learn are imported where a file or an encoder is read: a
# parties-custody agent builds its Party in a fresh process for every Flower message
# (tests/custody/test_agent_import_light.py)

__all__ = ["Encoder", "Party", "check_parties", "feature_names", "party_warnings"]


class Encoder(Protocol):
    """A fitted transformer turning a DataFrame into a numeric feature matrix."""

    def transform(self, X: pd.DataFrame) -> Any: ...


def _frozen(array: NDArray[Any]) -> NDArray[Any]:
    copy = np.array(array)
    copy.setflags(write=False)
    return copy


def _check_feature_names(names: Sequence[str] | None, n_features: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str) or len(names) != n_features:
        raise ValueError(
            f"parameter 'feature_names' must name each of the {n_features} columns of 'X'; "
            f"got {names!r}"
        )
    return tuple(str(n) for n in names)


def _check_labels(name: str, y: Any, n_rows: int | None, rows_of: str = "") -> NDArray[Any]:
    """1-D labels (bool, int, float or str), one per row of ``rows_of``; floats finite."""
    labels = np.asarray(y)
    if labels.dtype == object:  # e.g. a pandas string column: infer the type from the values
        values = labels.tolist()
        for row, value in enumerate(values, start=1):
            if value is None or (isinstance(value, float) and np.isnan(value)):
                raise ValueError(
                    f"parameter '{name}' has a missing label in data row {row}; drop the rows "
                    "without a label (labels are never imputed)"
                )
        kinds = {"text" if isinstance(v, str) else "number" for v in values}
        if len(kinds) > 1:
            text = next(v for v in values if isinstance(v, str))
            number = next(v for v in values if not isinstance(v, str))
            raise TypeError(
                f"parameter '{name}' mixes text and number labels (e.g. {text!r} and {number!r}); "
                "write every label the same way"
            )
        labels = np.asarray(values)
    if labels.ndim != 1:
        raise ValueError(f"parameter '{name}' must be 1-D (n_samples,); got shape {labels.shape}")
    if labels.dtype.kind not in "biufU":
        raise TypeError(
            f"parameter '{name}' must hold bool, integer, float or string labels (not a mix, "
            f"no missing values); got dtype {labels.dtype}"
        )
    if n_rows is not None and labels.shape[0] != n_rows:
        raise ValueError(
            f"parameter '{name}' must have one label per row of '{rows_of}' ({n_rows}); "
            f"got {labels.shape[0]}"
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        bad = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise ValueError(
            f"parameter '{name}' must be finite (no NaN or inf); found {labels[bad]} at index "
            f"{bad} (data row {bad + 1}); drop the rows without a label (labels are never "
            "imputed)"
        )
    return labels


@dataclass(frozen=True, eq=False, repr=False, init=False)
class Party:
    """One organisation's training data and, optionally, its validation data.

    Arrays are copied and made read-only on construction; equality is identity (compare
    data with :meth:`fingerprint`).

    Parameters
    ----------
    name : str
        Non-empty identifier, unique among the parties of a game.
    X : array-like of shape (n_samples, n_features)
        Training features; converted to a finite float64 array.
    y : array-like of shape (n_samples,)
        Training labels or targets: bool, integer, string or finite float values.
    X_val : array-like of shape (n_val, n_features), optional
        Validation features (the party's own task); given together with ``y_val``.
    y_val : array-like of shape (n_val,), optional
        Validation labels.
    metadata : mapping, optional
        Free-form provenance (copied to a dict), e.g. ``{"replica_of": "a"}``.
    feature_names : sequence of str, optional
        The names of the columns of ``X`` (set by :meth:`from_dataframe`);
        :func:`check_parties` refuses parties whose named columns differ or come in
        another order, so that rows are never pooled by position.
    allow_missing : bool, default False
        Accept missing feature values (``NaN``) in ``X`` and ``X_val``, for learners
        that handle them (an imputing pipeline, ``HistGradientBoostingClassifier``);
        infinities are always refused.

    Examples
    --------
    >>> party = Party("hospital_a", [[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [0, 1, 1])
    >>> party
    Party(name='hospital_a', n_samples=3, n_features=2, n_val=0)
    >>> party.X.flags.writeable
    False
    """

    name: str
    X: NDArray[np.float64]
    y: NDArray[Any]
    X_val: NDArray[np.float64] | None
    y_val: NDArray[Any] | None
    metadata: Mapping[str, Any]
    feature_names: tuple[str, ...] | None = None

    def __init__(
        self,
        name: str,
        X: ArrayLike,
        y: ArrayLike,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        feature_names: Sequence[str] | None = None,
        allow_missing: bool = False,
    ) -> None:
        if not isinstance(name, str):
            raise TypeError(f"parameter 'name' must be a non-empty string; got {name!r}")
        if not name:
            raise ValueError("parameter 'name' must be a non-empty string; got ''")
        features = check_2d_features("X", X, allow_nan=allow_missing)
        labels = _check_labels("y", y, features.shape[0], "X")
        if (X_val is None) != (y_val is None):
            given = "X_val" if y_val is None else "y_val"
            raise ValueError(
                "parameters 'X_val' and 'y_val' must be given together or both be None; "
                f"got only '{given}'"
            )
        if X_val is not None:
            X_val = select_features("parameter 'X_val'", X_val, feature_names)
            X_val = check_2d_features("X_val", X_val, allow_nan=allow_missing)
            if X_val.shape[1] != features.shape[1]:
                raise ValueError(
                    f"parameter 'X_val' must have as many features as 'X' ({features.shape[1]}); "
                    f"got {X_val.shape[1]}"
                )
            y_val = _frozen(_check_labels("y_val", y_val, X_val.shape[0], "X_val"))
            X_val = _frozen(X_val)
        for attribute, value in [
            ("name", name),
            ("X", _frozen(features)),
            ("y", _frozen(labels)),
            ("X_val", X_val),
            ("y_val", y_val),
            ("metadata", dict(metadata or {})),
            ("feature_names", _check_feature_names(feature_names, features.shape[1])),
        ]:
            object.__setattr__(self, attribute, value)

    def __setstate__(self, state: dict[str, Any]) -> None:
        for attribute, value in state.items():  # unpickled arrays come back writeable
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
            object.__setattr__(self, attribute, value)

    def __repr__(self) -> str:
        n_val = 0 if self.X_val is None else self.X_val.shape[0]
        return (
            f"Party(name={self.name!r}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, n_val={n_val})"
        )

    @property
    def n_samples(self) -> int:
        """Number of training rows."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features."""
        return int(self.X.shape[1])

    @property
    def has_missing(self) -> bool:
        """Whether ``X`` or ``X_val`` holds missing values (``NaN``)."""
        return any(a is not None and bool(np.isnan(a).any()) for a in (self.X, self.X_val))

    def fingerprint(self) -> str:
        """SHA-256 hex digest of the shapes, dtypes and bytes of ``X, y, X_val, y_val``.

        The name and metadata are not part of it, so an exact replica under another
        name has the same fingerprint. Stable across runs and processes.

        Examples
        --------
        >>> a = Party("a", [[1.0], [2.0]], [0, 1])
        >>> b = Party("b", [[1.0], [2.0]], [0, 1])
        >>> a.fingerprint() == b.fingerprint(), len(a.fingerprint())
        (True, 64)
        """
        digest = hashlib.sha256()
        for array in (self.X, self.y, self.X_val, self.y_val):
            if array is None:
                digest.update(b"none;")
            else:
                digest.update(f"{array.dtype.str}{array.shape};".encode())
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_dataframe(
        cls,
        name: str,
        df: pd.DataFrame,
        target: str,
        *,
        features: Sequence[str] | None = None,
        validation: pd.DataFrame | None = None,
        encoder: Encoder | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_missing: bool = False,
        source: str | None = None,
    ) -> Party:
        """Build a party from a DataFrame with one target column.

        Parameters
        ----------
        name : str
            Party name.
        df : pandas.DataFrame of shape (n_samples, n_columns)
            Training data.
        target : str
            Name of the label column.
        features : sequence of str, optional
            Feature columns, in order; default every column except ``target``.
        validation : pandas.DataFrame of shape (n_val, n_columns), optional
            Validation data with the same feature and target columns.
        encoder : object with ``transform(DataFrame) -> array``, optional
            A *fitted* transformer (e.g. a fitted sklearn ``ColumnTransformer``, or a
            :class:`~coopml.data.preprocessing.TabularSchema`) applied to the feature
            columns of ``df`` and ``validation``; its ``get_feature_names_out()``, if it
            has one, names the encoded columns. Without it every feature column must be
            numeric.
        metadata : mapping, optional
            Stored on the party.
        allow_missing : bool, default False
            Keep missing feature values as ``NaN`` (for a learner that imputes or
            accepts them); by default they are an error naming the column and the row.
        source : str, optional
            How ``df`` is named in error messages (default ``"party '<name>'"``).

        Returns
        -------
        Party

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"age": [30, 40, 50], "income": [1.0, 2.0, 3.0], "y": [0, 1, 1]})
        >>> Party.from_dataframe("a", df, target="y").X.tolist()
        [[30.0, 1.0], [40.0, 2.0], [50.0, 3.0]]
        >>> df.loc[1, "income"] = None
        >>> Party.from_dataframe("a", df, target="y")
        Traceback (most recent call last):
        ...
        ValueError: party 'a': column 'income' has 1 missing value(s), the first in data row 2; ...
        """
        where = source or f"party {name!r}"
        return cls._build(
            name,
            (where, df),
            target,
            features,
            None if validation is None else (f"{where} validation", validation),
            encoder,
            metadata,
            allow_missing,
        )

    @classmethod
    def from_csv(
        cls,
        name: str,
        path: str | os.PathLike[str],
        target: str,
        *,
        features: Sequence[str] | None = None,
        validation: str | os.PathLike[str] | pd.DataFrame | None = None,
        encoder: Encoder | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_missing: bool = False,
    ) -> Party:
        """Build a party from a CSV file (read with :func:`pandas.read_csv`).

        Parameters are those of :meth:`from_dataframe`; ``validation`` may also be a path.
        Error messages name the party and the file.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
        >>> import pandas as pd
        >>> pd.DataFrame({"x": [1.5, 2.5], "label": ["no", "yes"]}).to_csv(path, index=False)
        >>> Party.from_csv("a", path, target="label").y.tolist()
        ['no', 'yes']
        """
        import pandas as pd

        return cls._from_file(
            pd.read_csv, name, path, target, features, validation, encoder, metadata, allow_missing
        )

    @classmethod
    def from_parquet(
        cls,
        name: str,
        path: str | os.PathLike[str],
        target: str,
        *,
        features: Sequence[str] | None = None,
        validation: str | os.PathLike[str] | pd.DataFrame | None = None,
        encoder: Encoder | None = None,
        metadata: Mapping[str, Any] | None = None,
        allow_missing: bool = False,
    ) -> Party:
        """Build a party from a Parquet file (read with :func:`pandas.read_parquet`).

        Parameters are those of :meth:`from_dataframe`; ``validation`` may also be a path.
        Error messages name the party and the file.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.parquet"
        >>> import pandas as pd
        >>> pd.DataFrame({"x": [1.5, 2.5], "y": [0, 1]}).to_parquet(path)
        >>> Party.from_parquet("a", path, target="y").n_samples
        2
        """
        import pandas as pd

        return cls._from_file(
            pd.read_parquet,
            name,
            path,
            target,
            features,
            validation,
            encoder,
            metadata,
            allow_missing,
        )

    @classmethod
    def _from_file(
        cls,
        reader: Callable[[Path], pd.DataFrame],
        name: str,
        path: str | os.PathLike[str],
        target: str,
        features: Sequence[str] | None,
        validation: str | os.PathLike[str] | pd.DataFrame | None,
        encoder: Encoder | None,
        metadata: Mapping[str, Any] | None,
        allow_missing: bool,
    ) -> Party:
        import pandas as pd

        where = f"party {name!r} ({os.fspath(path)})"
        val: tuple[str, pd.DataFrame] | None = None
        if isinstance(validation, pd.DataFrame):
            val = (f"{where} validation", validation)
        elif validation is not None:
            val_where = f"party {name!r} validation ({os.fspath(validation)})"
            val = (val_where, read_table(val_where, validation, reader))
        train = (where, read_table(where, path, reader))
        return cls._build(name, train, target, features, val, encoder, metadata, allow_missing)

    @classmethod
    def _build(
        cls,
        name: str,
        train: tuple[str, Any],
        target: str,
        features: Sequence[str] | None,
        validation: tuple[str, Any] | None,
        encoder: Encoder | None,
        metadata: Mapping[str, Any] | None,
        allow_missing: bool,
    ) -> Party:
        """A party from ``(where, frame)`` pairs; ``where`` names the frame in messages."""
        import pandas as pd

        where, df = train
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"parameter 'df' must be a pandas DataFrame; got {type(df).__name__}")
        if target not in df.columns:
            raise ValueError(
                f"{where}: parameter 'target' must name a column; got {target!r}; "
                f"available columns: {list(df.columns)}"
            )
        columns = [c for c in df.columns if c != target] if features is None else list(features)
        if target in columns:
            raise ValueError(f"parameter 'features' must not contain the target {target!r}")
        X, y = _split_frame(where, df, target, columns, encoder, allow_missing)
        X_val = y_val = None
        if validation is not None:
            X_val, y_val = _split_frame(*validation, target, columns, encoder, allow_missing)
        names: list[str] | None = [str(c) for c in columns]
        if encoder is not None:
            try:
                names = [str(n) for n in encoder.get_feature_names_out()]  # type: ignore[attr-defined]
            except Exception:  # no names (or none that it can give): match by position
                names = None
        party = cls(
            name, X, y, X_val, y_val, metadata, feature_names=names, allow_missing=allow_missing
        )
        for message in party_warnings([party], where=where):
            warnings.warn(message, UserWarning, stacklevel=3)
        return party


def read_table(
    where: str,
    path: str | os.PathLike[str],
    reader: Callable[[Path], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (Parquet for ``.parquet``/``.pq``).

    A missing, unreadable or empty file is an error that begins with ``where``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "h1.csv"
    >>> _ = path.write_text("age,y\\n")
    >>> read_table("party 'h1' (h1.csv)", path)
    Traceback (most recent call last):
    ...
    ValueError: party 'h1' (h1.csv): the file has no rows (columns: ['age', 'y'])
    >>> _ = path.write_text("age,bmi,bmi,y\\n30,20,21,0\\n")
    >>> read_table("party 'h1' (h1.csv)", path)
    Traceback (most recent call last):
    ...
    coopml.data.columns.ColumnError: party 'h1' (h1.csv): column 'bmi' appears twice; ...
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file {os.fspath(path)!r}")
    if reader is None:
        reader = pd.read_parquet if path.suffix.lower() in {".parquet", ".pq"} else pd.read_csv
    try:
        frame = reader(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{where}: the file is empty (no header, no rows)") from None
    except (ValueError, OSError) as exc:
        raise ValueError(f"{where}: cannot be read: {exc}") from None
    if reader is pd.read_csv:  # pandas renames a repeated name ('bmi.1'): name it
        header = [str(c) for c in pd.read_csv(path, header=None, nrows=1).iloc[0].tolist()]
        _check_unique(where, header)
    if frame.shape[0] == 0:
        raise ValueError(f"{where}: the file has no rows (columns: {list(frame.columns)})")
    return frame


_FIX_MISSING = (
    'set [preprocessing] impute = "median" (or "mean", "most_frequent") in the job file, use '
    "a learner that accepts missing values (e.g. HistGradientBoostingClassifier), or drop "
    "those rows"
)
_FIX_TEXT = (
    'set [preprocessing] categorical = "onehot" (or "ordinal") in the job file, or pass '
    "'encoder', a fitted transformer such as a sklearn ColumnTransformer"
)


def _split_frame(
    where: str,
    frame: Any,
    target: str,
    features: list[str],
    encoder: Encoder | None,
    allow_missing: bool,
) -> tuple[NDArray[np.float64], NDArray[Any]]:
    """Features (encoded if ``encoder``) and labels of ``frame``; errors begin with ``where``."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where} must be a pandas DataFrame; got {type(frame).__name__}")
    if frame.shape[0] == 0:
        raise ValueError(f"{where} has no rows (columns: {list(frame.columns)})")
    missing = [c for c in [*features, target] if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{where} lacks the columns {missing}; available columns: {list(frame.columns)}"
        )
    if encoder is None:
        from coopml.data.preprocessing import _first_text, _is_text

        for column in features:
            if _is_text(frame[column]):
                value, row = _first_text(frame[column])
                raise TypeError(
                    f"{where}: column {column!r} is not numeric (it holds {value!r} in data "
                    f"row {row}); {_FIX_TEXT}"
                )
        X: Any = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        if not callable(getattr(encoder, "transform", None)):
            raise TypeError(
                "parameter 'encoder' must have a transform(DataFrame) method; "
                f"got {type(encoder).__name__}"
            )
        from sklearn.exceptions import NotFittedError

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                X = encoder.transform(frame[features])
        except NotFittedError:
            raise ValueError(
                f"parameter 'encoder' must be fitted (call encoder.fit(df) first); got an "
                f"unfitted {type(encoder).__name__}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        for warning in caught:  # name the file (an unseen category, say)
            warnings.warn(f"{where}: {warning.message}", warning.category, stacklevel=4)
        if hasattr(X, "toarray"):  # a SciPy sparse matrix
            X = X.toarray()
    X = np.asarray(X, dtype=np.float64)
    if not allow_missing and np.isnan(X).any():
        _check_missing(where, frame, features)  # names the column of the raw frame
        _encoded_missing(where, frame, features, X, encoder)
    X = check_2d_features(where, X, allow_nan=allow_missing)
    return X, _frame_labels(where, frame[target])


def _encoded_missing(
    where: str, frame: pd.DataFrame, features: Sequence[str], X: NDArray[Any], encoder: Any
) -> NoReturn:
    """Refuse a missing value the encoder produced from a value that was not missing,
    naming the column, the value, the row and the fix."""
    row, col = (int(i) for i in np.argwhere(np.isnan(X))[0])
    try:
        encoded = str(encoder.get_feature_names_out()[col])
    except Exception:  # an encoder without names
        encoded = f"#{col}"
    column = next((f for f in features if encoded == f or encoded.startswith(f"{f}=")), None)
    value = "" if column is None else f" the value {frame[column].iloc[row]!r}"
    raise ValueError(
        f"{where}: the encoder turned{value} in column {column or encoded!r}, data row "
        f"{row + 1}, into a missing value (a category seen in no party's training data?), "
        "and the learner does not accept missing values; set [preprocessing] categorical = "
        '"onehot" (an unseen category encodes as all zeros), or impute = "most_frequent" '
        "(or a learner that accepts missing values), or drop that row"
    )


def _check_missing(where: str, frame: pd.DataFrame, features: Sequence[str]) -> None:
    """Refuse missing feature values, naming the column and the row."""
    isna = frame[list(features)].isna().to_numpy()
    if isna.any():
        row, col = (int(i) for i in np.argwhere(isna)[0])
        count = int(isna[:, col].sum())
        raise ValueError(
            f"{where}: column {features[col]!r} has {count} missing value(s), the first in data "
            f"row {row + 1}; {_FIX_MISSING}"
        )


def _frame_labels(where: str, column: pd.Series) -> NDArray[Any]:
    """The labels of a target column; missing or mixed labels name the row."""
    name = str(column.name)
    isna = column.isna().to_numpy()
    if isna.any():
        row = int(np.flatnonzero(isna)[0]) + 1
        raise ValueError(
            f"{where}: target column {name!r} has {int(isna.sum())} missing label(s), the first "
            f"in data row {row}; drop the rows without a label (labels are never imputed)"
        )
    values = column.tolist()
    text = [k for k, v in enumerate(values) if isinstance(v, str)]
    if text and len(text) < len(values):
        number = next(k for k, v in enumerate(values) if not isinstance(v, str))
        raise TypeError(
            f"{where}: target column {name!r} mixes text and number labels ({values[text[0]]!r} "
            f"in data row {text[0] + 1}, {values[number]!r} in data row {number + 1}); write "
            "every label the same way"
        )
    try:
        return _check_labels(name, column.to_numpy(), None)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None


def check_parties(
    parties: Sequence[Party],
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    task: str = "classification",
    *,
    allow_missing: bool | None = None,
) -> list[Party]:
    """Check that parties can be pooled: distinct names, equal feature counts, known labels.

    Parameters
    ----------
    parties : sequence of Party
        At least one party.
    validation : tuple (X_val, y_val), optional
        Shared validation data, X_val of shape (n_val, n_features) and y_val of shape
        (n_val,).
    task : {"classification", "regression"}
        For classification every label of ``y_val`` and of each party's own ``y_val``
        must occur in some party's training labels, and the labels of all parties must
        be all text or all numbers.
    allow_missing : bool, optional
        ``False``: a party (or validation data) with missing feature values (``NaN``)
        is an error naming it, the column and the row (the learner cannot handle them);
        ``True``: they are accepted. ``None`` (default): parties are accepted as built
        (a party holds missing values only if built with ``allow_missing=True``), and
        so is validation data.

    Returns
    -------
    list of Party
        ``parties`` as a list.

    Examples
    --------
    >>> a = Party("a", [[0.0], [1.0]], [0, 1])
    >>> b = Party("b", [[2.0]], [1])
    >>> [p.name for p in check_parties([a, b], validation=([[0.5]], [1]))]
    ['a', 'b']
    """
    task = check_choice("task", task, ("classification", "regression"))
    parties = list(parties)
    if not parties:
        raise ValueError("parameter 'parties' must hold at least one Party; got none")
    for party in parties:
        if not isinstance(party, Party):
            raise TypeError(
                f"parameter 'parties' must hold Party objects; got {type(party).__name__}"
            )
    names = [p.name for p in parties]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"parameter 'parties' must have distinct names; duplicated: {duplicated}")
    n_features = {p.name: p.n_features for p in parties}
    if len(set(n_features.values())) > 1:
        raise ValueError(
            f"parameter 'parties' must all have the same number of features; got {n_features}"
        )
    named = [p for p in parties if p.feature_names is not None]
    for party in named[1:]:
        if party.feature_names != named[0].feature_names:
            raise ValueError(
                f"parties {named[0].name!r} and {party.name!r} have different feature columns "
                f"({list(named[0].feature_names or ())} and {list(party.feature_names or ())}); "
                "rows are pooled by column, so build every party with the same "
                "features=[...] (matched by name in any order)"
            )
    if allow_missing is False:
        for party in parties:
            if party.has_missing:
                arrays = [("training", party.X), ("validation", party.X_val)]
                kind, X = next((k, a) for k, a in arrays if a is not None and np.isnan(a).any())
                row, col = (int(i) for i in np.argwhere(np.isnan(X))[0])
                column = party.feature_names[col] if party.feature_names else f"#{col}"
                raise ValueError(
                    f"party {party.name!r}: {kind} column {column!r} has a missing value in "
                    f"data row {row + 1}, and the learner does not accept missing values; "
                    f"{_FIX_MISSING}"
                )
    if task == "classification":
        kinds = {p.name: "text" if p.y.dtype.kind == "U" else "numbers" for p in parties}
        if len(set(kinds.values())) > 1:
            text = next(p for p in parties if kinds[p.name] == "text")
            number = next(p for p in parties if kinds[p.name] == "numbers")
            raise ValueError(
                f"party {text.name!r} has text labels (e.g. {text.y[0].item()!r}) but party "
                f"{number.name!r} has number labels (e.g. {number.y[0].item()!r}); write every "
                "party's labels the same way"
            )
    val_labels = [p.y_val for p in parties if p.y_val is not None]
    if validation is not None:
        X_val = check_2d_features(
            "validation[0]",
            select_features("parameter 'validation'", validation[0], feature_names(parties)),
            allow_nan=allow_missing is not False,
        )
        if X_val.shape[1] != parties[0].n_features:
            raise ValueError(
                "parameter 'validation' must have as many features as the parties "
                f"({parties[0].n_features}); got {X_val.shape[1]}"
            )
        val_labels.append(
            _check_labels("validation[1]", validation[1], len(X_val), "validation[0]")
        )
    if task == "classification" and val_labels:
        known = set().union(*(np.unique(p.y).tolist() for p in parties))
        unknown = sorted(set().union(*(np.unique(v).tolist() for v in val_labels)) - known, key=str)
        if unknown:
            raise ValueError(
                f"validation labels {unknown} occur in no party's training labels; "
                f"training labels: {sorted(known, key=str)}"
            )
    return parties


def feature_names(parties: Sequence[Party]) -> tuple[str, ...] | None:
    """The feature names the parties carry (checked equal by :func:`check_parties`), if any.

    Examples
    --------
    >>> feature_names([Party("a", [[0.0, 1.0]], [0], feature_names=["age", "bmi"])])
    ('age', 'bmi')
    """
    names = (getattr(p, "feature_names", None) for p in parties)
    return next((n for n in names if n is not None), None)


def party_warnings(
    parties: Sequence[Party], *, classification: bool = True, where: str | None = None
) -> list[str]:
    """Warnings about parties too small to value meaningfully (one row, one class).

    Such a party is valid, but its value rests on one row or one label: a model trained
    on it alone is a constant. ``where`` replaces ``party '<name>'`` in the message.

    Examples
    --------
    >>> party_warnings([Party("h1", [[0.0], [1.0]], [1, 1])])
    ["party 'h1' has a single class (1) in its 2 training rows; a model trained on its data alone predicts that class everywhere"]
    """  # noqa: E501
    out = []
    for party in parties:
        who = where or f"party {party.name!r}"
        if party.n_samples == 1:
            out.append(f"{who} has a single training row; its value rests on that one row")
        elif classification and np.unique(party.y).size == 1:
            out.append(
                f"{who} has a single class ({party.y[0].item()!r}) in its {party.n_samples} "
                "training rows; a model trained on its data alone predicts that class everywhere"
            )
    return out
