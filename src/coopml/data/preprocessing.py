r"""Preprocessing of tabular party data: categorical encoding, imputation and scaling.

Valuing data means fitting a model on every coalition :math:`S` of parties and scoring
it on validation data. Any statistic a preprocessing step learns (a median, a mean, a
standard deviation) is part of that model, so it is fitted the way the model is:

* **imputation and scaling** are steps of a scikit-learn ``Pipeline`` wrapped around the
  learner (:func:`preprocessing_steps`), so :class:`~sklearn.impute.SimpleImputer` and
  :class:`~sklearn.preprocessing.StandardScaler` are fitted *per coalition, on the
  coalition's training rows only*, never on validation rows;
* **categorical encoding** needs the list of categories of each column, and every
  coalition's model must see the same columns. That list is the one pooled statistic:
  declared up front, or the union of the values observed in the parties' *training*
  files (never the validation files). Given the list, one-hot and ordinal encoding are
  fixed functions of a row, applied once to every file (:class:`TabularSchema`); they
  learn nothing from any coalition, so the fast exact learners of
  :mod:`coopml.learning.fast` still apply after them. A validation value outside the
  list encodes as all zeros (one-hot) or as missing (ordinal).

A missing categorical value becomes a missing value in its encoded columns (``NaN`` in
every one-hot column of that feature, or in its ordinal code) and is imputed per
coalition like any other.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

__all__ = [
    "TabularEncoder",
    "TabularSchema",
    "accepts_missing",
    "categorical_columns",
    "observed_categories",
    "preprocessing_steps",
]

Impute = Literal["median", "mean", "most_frequent", "none"]
Categorical = Literal["onehot", "ordinal", "error"]


def accepts_missing(estimator: Any) -> bool:
    """Whether ``estimator`` fits and predicts on data with missing values (``NaN``).

    Read from scikit-learn's ``allow_nan`` tag. A ``Pipeline`` accepts them when every
    step up to its first imputer does (scikit-learn's own tag for pipelines only looks at
    the first step).

    Examples
    --------
    >>> from sklearn.ensemble import HistGradientBoostingClassifier
    >>> from sklearn.impute import SimpleImputer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> accepts_missing(LogisticRegression()), accepts_missing(HistGradientBoostingClassifier())
    (False, True)
    >>> accepts_missing(make_pipeline(SimpleImputer(), LogisticRegression()))
    True
    """
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    steps = [s for _, s in estimator.steps] if isinstance(estimator, Pipeline) else [estimator]
    for step in steps:
        if step is None or step == "passthrough":
            continue
        try:
            allow_nan = bool(get_tags(step).input_tags.allow_nan)
        except (AttributeError, TypeError, ValueError):  # not a scikit-learn estimator
            return False
        if not allow_nan:
            return False
        if type(step).__module__.startswith("sklearn.impute"):
            return True  # an imputer: nothing missing reaches the later steps
    return True


def categorical_columns(tables: Mapping[str, pd.DataFrame], features: Sequence[str]) -> list[str]:
    """The features that hold text (or categories) rather than numbers, in feature order.

    A column is categorical when its dtype is not numeric (strings, object, pandas
    ``category``); ``bool`` columns are numeric (0/1). A column that holds numbers in one
    table and text in another is an error naming both tables, the value and its row
    (typically a missing value written as text, such as ``"n/a"``).

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        ``label -> table``; labels name the tables in messages.
    features : sequence of str

    Examples
    --------
    >>> a = pd.DataFrame({"age": [30, 40], "smoker": ["no", "yes"]})
    >>> categorical_columns({"a.csv": a}, ["age", "smoker"])
    ['smoker']
    """
    found: list[str] = []
    for column in features:
        kinds = {label: _is_text(frame[column]) for label, frame in tables.items()}
        if not any(kinds.values()):
            continue
        numeric = [label for label, text in kinds.items() if not text]
        if numeric:
            texts = [label for label, text in kinds.items() if text]
            values = tables[texts[0]][column].tolist()
            marker = [
                k
                for k, v in enumerate(values)
                if isinstance(v, str) and v.strip().lower() in _MISSING_WORDS
            ]
            if marker:  # a missing value written as text
                value, row = values[marker[0]], marker[0] + 1
                fix = "write missing values as empty cells, not as text"
            else:
                value, row = _first_text(tables[texts[0]][column])
                fix = (
                    "the files disagree: write the column the same way in every file (all "
                    "numbers, or all categories)"
                )
            raise ValueError(
                f"column {column!r} holds text in {_listed(texts)} ({value!r} in data row "
                f"{row} of the first) but numbers in {_listed(numeric)}; {fix}"
            )
        found.append(column)
    return found


def observed_categories(
    frames: Sequence[pd.DataFrame], columns: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """The sorted union of the values of each categorical column over ``frames``.

    Values are compared as text; missing values are not categories.

    Examples
    --------
    >>> a = pd.DataFrame({"smoker": ["no", None]})
    >>> b = pd.DataFrame({"smoker": ["yes", "no"]})
    >>> observed_categories([a, b], ["smoker"])
    {'smoker': ('no', 'yes')}
    """
    out = {}
    for column in columns:
        values: set[str] = set()
        for frame in frames:
            values.update(str(v) for v in frame[column].dropna().unique().tolist())
        out[column] = tuple(sorted(values))
    return out


@dataclass(frozen=True)
class TabularSchema:
    """Features by name, with a fixed category list for each categorical column.

    A fixed, data-independent encoding of a table's feature columns into a float matrix:
    numeric columns pass through (missing values stay ``NaN``), categorical columns are
    one-hot (one column ``"name=category"`` per category) or ordinal encoded (the
    category's position in the list) with scikit-learn's encoders. It has the
    ``transform(DataFrame)`` method that :meth:`coopml.data.Party.from_dataframe`
    accepts as ``encoder``.

    Parameters
    ----------
    features : tuple of str
        The feature columns, in the job's order.
    categories : mapping of str to tuple of str
        The categorical columns and their categories.
    encoding : {"onehot", "ordinal"}
    declared : tuple of str, default ()
        Columns whose category list was declared: a value outside it is an error
        (elsewhere it encodes as unknown, with a warning).

    Examples
    --------
    >>> schema = TabularSchema(("age", "smoker"), {"smoker": ("no", "yes")}, "onehot")
    >>> frame = pd.DataFrame({"smoker": ["yes", None, "no"], "age": [30, 40, None]})
    >>> schema.transform(frame).tolist()
    [[30.0, 0.0, 1.0], [40.0, nan, nan], [nan, 1.0, 0.0]]
    >>> schema.get_feature_names_out()
    ['age', 'smoker=no', 'smoker=yes']
    """

    features: tuple[str, ...]
    categories: Mapping[str, tuple[str, ...]]
    encoding: Literal["onehot", "ordinal"] = "onehot"
    declared: tuple[str, ...] = ()

    def get_feature_names_out(self) -> list[str]:
        """Names of the encoded columns."""
        names: list[str] = []
        for column in self.features:
            if column in self.categories and self.encoding == "onehot":
                names.extend(f"{column}={c}" for c in self.categories[column])
            else:
                names.append(column)
        return names

    def transform(self, frame: pd.DataFrame) -> NDArray[np.float64]:
        """Encode the feature columns of ``frame`` (matched by name)."""
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

        blocks: list[NDArray[np.float64]] = []
        for column in self.features:
            series = frame[column]
            if column not in self.categories:
                blocks.append(series.to_numpy(dtype=np.float64, na_value=np.nan)[:, None])
                continue
            categories = list(self.categories[column])
            missing = series.isna().to_numpy()
            text = np.array([str(v) for v in series.fillna(categories[0]).tolist()], dtype=object)
            unknown = ~missing & ~np.isin(text, categories)
            if unknown.any():
                row = int(np.flatnonzero(unknown)[0])
                message = (
                    f"column {column!r} has the value {text[row]!r} in data row {row + 1}, "
                    f"which is not one of its categories {categories}"
                )
                if column in self.declared:
                    raise ValueError(message + "; add it to [preprocessing.categories]")
                warnings.warn(
                    message + f" (seen in no party's training data); encoded as "
                    f"{'all zeros' if self.encoding == 'onehot' else 'a missing value'}",
                    UserWarning,
                    stacklevel=2,
                )
            encoder: Any
            if self.encoding == "onehot":
                encoder = OneHotEncoder(
                    categories=[categories], handle_unknown="ignore", sparse_output=False
                )
            else:
                encoder = OrdinalEncoder(
                    categories=[categories],
                    handle_unknown="use_encoded_value",
                    unknown_value=np.nan,
                )
            encoder.fit(np.array(categories, dtype=object)[:, None])
            with warnings.catch_warnings():  # unknown values were reported above
                warnings.simplefilter("ignore", UserWarning)
                block = np.asarray(encoder.transform(text[:, None]), dtype=np.float64)
            block[missing] = np.nan
            blocks.append(block)
        return np.hstack(blocks)


class TabularEncoder(TransformerMixin, BaseEstimator):
    """A :class:`TabularSchema` as a scikit-learn transformer of DataFrames, by column name.

    The first step of an exported model (:func:`coopml.market.export_models`): it takes
    a party's raw rows as a pandas DataFrame, selects the feature columns *by name* (in
    any order; other columns, such as the target, are ignored; a missing one is an
    error) and encodes them exactly as the market did. It learns nothing: build it
    fitted with :meth:`from_schema`; ``fit`` only checks the columns.

    Parameters
    ----------
    features : tuple of str
    categories : dict of str to tuple of str
    encoding : {"onehot", "ordinal"}
    declared : tuple of str

    Examples
    --------
    >>> schema = TabularSchema(("age", "smoker"), {"smoker": ("no", "yes")}, "onehot")
    >>> encoder = TabularEncoder.from_schema(schema)
    >>> frame = pd.DataFrame({"smoker": ["yes", None], "y": [1, 0], "age": [30, None]})
    >>> encoder.transform(frame).tolist()
    [[30.0, 0.0, 1.0], [nan, nan, nan]]
    >>> encoder.feature_names_in_.tolist()
    ['age', 'smoker']
    >>> encoder.transform(frame[["smoker"]])
    Traceback (most recent call last):
    ...
    ValueError: parameter 'X' lacks the feature column(s) ['age'] that the model needs; ...
    """

    def __init__(
        self,
        features: tuple[str, ...] = (),
        categories: dict[str, tuple[str, ...]] | None = None,
        encoding: Literal["onehot", "ordinal"] = "onehot",
        declared: tuple[str, ...] = (),
    ) -> None:
        self.features = features
        self.categories = categories
        self.encoding = encoding
        self.declared = declared

    @classmethod
    def from_schema(cls, schema: TabularSchema) -> TabularEncoder:
        """The fitted encoder of ``schema``."""
        encoder = cls(
            tuple(schema.features),
            {c: tuple(v) for c, v in schema.categories.items()},
            schema.encoding,
            tuple(schema.declared),
        )
        return encoder._set_fitted()

    def _set_fitted(self) -> TabularEncoder:
        self.feature_names_in_ = np.array(self.features, dtype=object)
        self.n_features_in_ = len(self.features)
        return self

    def _schema(self) -> TabularSchema:
        return TabularSchema(
            tuple(self.features), dict(self.categories or {}), self.encoding, tuple(self.declared)
        )

    def _select(self, X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(
                f"parameter 'X' must be a pandas DataFrame with the columns "
                f"{list(self.features)} (matched by name); got {type(X).__name__}"
            )
        columns = [str(c) for c in X.columns]
        missing = [c for c in self.features if c not in columns]
        if missing:
            raise ValueError(
                f"parameter 'X' lacks the feature column(s) {missing} that the model needs; "
                f"it has {columns}"
            )
        frame = X.set_axis(columns, axis=1)[list(self.features)]
        for column in self.features:
            if column not in (self.categories or {}) and _is_text(frame[column]):
                value, row = _first_text(frame[column])
                raise ValueError(
                    f"parameter 'X': column {column!r} must hold numbers; it holds "
                    f"{value!r} in data row {row}"
                )
        return frame

    def fit(self, X: pd.DataFrame, y: Any = None) -> TabularEncoder:
        """Check that ``X`` has the feature columns; nothing is learnt."""
        self._select(X)
        return self._set_fitted()

    def transform(self, X: pd.DataFrame) -> NDArray[np.float64]:
        """Encode the feature columns of ``X`` (matched by name) as the market did."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "feature_names_in_")
        return self._schema().transform(self._select(X))

    def get_feature_names_out(self, input_features: Any = None) -> NDArray[np.object_]:
        """Names of the encoded columns."""
        return np.array(self._schema().get_feature_names_out(), dtype=object)


def preprocessing_steps(impute: Impute = "none", scale: bool = False) -> list[Any]:
    """The per-coalition steps to put in front of a learner (fitted on training rows).

    Examples
    --------
    >>> preprocessing_steps("median", scale=True)
    [SimpleImputer(keep_empty_features=True, strategy='median'), StandardScaler()]
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    steps: list[Any] = []
    if impute != "none":
        # keep_empty_features: a coalition whose rows all miss a column keeps the column
        # (filled with 0), so every coalition's model sees the same columns.
        steps.append(SimpleImputer(strategy=impute, keep_empty_features=True))
    if scale:
        steps.append(StandardScaler())
    return steps


#: Text that usually stands for a missing value.
_MISSING_WORDS = {"", "n/a", "na", "nan", "none", "null", "missing", "-", "?", ".", "unknown"}


def _listed(labels: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and 2 more``."""
    if len(labels) <= 2:
        return " and ".join(labels)
    return f"{labels[0]}, {labels[1]} and {len(labels) - 2} more"


def _is_text(series: pd.Series) -> bool:
    """A column of strings or categories (all-missing columns count as numeric)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return False
    return bool(series.notna().any())


def _first_text(series: pd.Series) -> tuple[Any, int]:
    """The first value of ``series`` that is not a number, and its 1-based data row."""
    for row, value in enumerate(series.tolist(), start=1):
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return value, row
        elif value is not None and not isinstance(value, int | float | np.number):
            return value, row
    return series.iloc[0], 1
