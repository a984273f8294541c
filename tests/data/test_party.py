import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import ArrayLike
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder

from coopml.data import Party, check_parties


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 40, 50, 60],
            "color": ["red", "green", "red", "blue"],
            "income": [1.0, 2.0, 3.0, 4.0],
            "label": ["no", "yes", "yes", "no"],
        }
    )


# ---------------------------------------------------------------- construction
def test_arrays_are_copied_and_read_only() -> None:
    X = np.array([[1.0, 2.0], [3.0, 4.0]])
    y = np.array([0, 1])
    party = Party("a", X, y, X_val=X, y_val=y)
    X[0, 0] = 99.0
    y[0] = 7
    assert party.X[0, 0] == 1.0
    assert party.y[0] == 0
    assert party.X_val is not None and party.X_val[0, 0] == 1.0
    for array in (party.X, party.y, party.X_val, party.y_val):
        assert array is not None and not array.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        party.X[0, 0] = 5.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        party.name = "b"  # type: ignore[misc]


def test_pickle_round_trip_stays_read_only() -> None:
    party = Party("a", [[1.0, 2.0]], ["x"], X_val=[[0.0, 0.0]], y_val=["x"], metadata={"k": 1})
    clone = pickle.loads(pickle.dumps(party))
    assert clone.fingerprint() == party.fingerprint()
    assert (clone.name, clone.metadata) == ("a", {"k": 1})
    assert clone.X_val is not None and not clone.X.flags.writeable
    assert not clone.X_val.flags.writeable


def test_shapes_dtypes_and_repr() -> None:
    party = Party("a", [[1, 2, 3], [4, 5, 6]], ["x", "y"], X_val=[[0, 0, 0]], y_val=["x"])
    assert (party.n_samples, party.n_features) == (2, 3)
    assert party.X.dtype == np.float64
    assert party.y.tolist() == ["x", "y"]
    assert repr(party) == "Party(name='a', n_samples=2, n_features=3, n_val=1)"


def test_metadata_is_copied() -> None:
    meta = {"source": "crm"}
    party = Party("a", [[1.0]], [1], metadata=meta)
    meta["source"] = "changed"
    assert party.metadata == {"source": "crm"}
    assert Party("b", [[1.0]], [1]).metadata == {}


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        (pd.Series(["a", "b"]), ["a", "b"]),  # pandas string column (object array)
        (np.array([1, 2], dtype=object), [1, 2]),
        ([True, False], [True, False]),
        ([0.5, 1.5], [0.5, 1.5]),
    ],
)
def test_label_types(y: ArrayLike, expected: list[object]) -> None:
    assert Party("a", [[1.0], [2.0]], y).y.tolist() == expected


def test_fingerprint_is_stable_and_content_based() -> None:
    party = Party("a", [[1.0, 2.0], [3.0, 4.0]], [0, 1])
    # pinned: the digest must not change between runs, processes or releases
    assert party.fingerprint() == (
        "3b131dfb410dbf8fa14a2de311f317f494aa4d1f2fb3636404d804a84de4c90e"
    )
    assert Party("renamed", party.X, party.y, metadata={"k": 1}).fingerprint() == (
        party.fingerprint()
    )
    assert Party("a", [[1.0, 2.0], [3.0, 4.5]], [0, 1]).fingerprint() != party.fingerprint()
    assert Party("a", [[1.0, 2.0], [3.0, 4.0]], [1, 0]).fingerprint() != party.fingerprint()
    assert Party("a", [[1.0, 2.0, 3.0, 4.0]], [0]).fingerprint() != party.fingerprint()
    with_val = Party("a", party.X, party.y, X_val=[[0.0, 0.0]], y_val=[0])
    assert with_val.fingerprint() != party.fingerprint()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"name": ""}, ValueError, "parameter 'name' must be a non-empty string; got ''"),
        ({"name": 3}, TypeError, "parameter 'name' must be a non-empty string; got 3"),
        (
            {"X": np.zeros((0, 2)), "y": []},
            ValueError,
            r"'X' must be non-empty; got shape \(0, 2\)",
        ),
        ({"X": [1.0, 2.0]}, ValueError, "'X' must be 2-D .* got a 1-D array"),
        ({"y": [0, 1, 1]}, ValueError, r"'y' must have one label per row of 'X' \(2\); got 3"),
        ({"X": [[1.0], [np.nan]]}, ValueError, "'X' must be finite .* nan at row 1, column 0"),
        ({"X": [[1.0], [np.inf]]}, ValueError, "'X' must be finite .* inf at row 1"),
        ({"y": [0.5, np.nan]}, ValueError, "'y' must be finite .* nan at index 1"),
        ({"y": ["a", None]}, ValueError, "'y' has a missing label in data row 2"),
        ({"y": np.array(["a", 1], dtype=object)}, TypeError, "'y' mixes text and number"),
        ({"y": [[0], [1]]}, ValueError, r"'y' must be 1-D \(n_samples,\); got shape \(2, 1\)"),
        ({"X": [["a"], ["b"]]}, TypeError, "'X' must contain numeric features only"),
        (
            {"X_val": [[1.0]]},
            ValueError,
            "'X_val' and 'y_val' must be given together.*only 'X_val'",
        ),
        ({"y_val": [1]}, ValueError, "must be given together.*only 'y_val'"),
        (
            {"X_val": [[1.0, 2.0]], "y_val": [1]},
            ValueError,
            r"'X_val' must have as many features as 'X' \(1\); got 2",
        ),
        (
            {"X_val": [[1.0]], "y_val": [1, 0]},
            ValueError,
            r"'y_val' must have one label per row of 'X_val' \(1\); got 2",
        ),
    ],
)
def test_bad_inputs(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"name": "a", "X": [[1.0], [2.0]], "y": [0, 1]} | kwargs
    with pytest.raises(error, match=match):
        Party(**args)  # type: ignore[arg-type]


# ---------------------------------------------------------------- DataFrame / files
def test_from_dataframe_default_and_explicit_features(frame: pd.DataFrame) -> None:
    numeric = frame.drop(columns="color")
    party = Party.from_dataframe("a", numeric, "label", metadata={"src": "x"})
    assert party.X.tolist() == [[30.0, 1.0], [40.0, 2.0], [50.0, 3.0], [60.0, 4.0]]
    assert party.y.tolist() == ["no", "yes", "yes", "no"]
    assert party.metadata == {"src": "x"}
    swapped = Party.from_dataframe("a", frame, "label", features=["income", "age"])
    assert swapped.X[0].tolist() == [1.0, 30.0]


def test_from_dataframe_with_validation(frame: pd.DataFrame) -> None:
    val = frame.iloc[:2]
    party = Party.from_dataframe("a", frame, "label", features=["age"], validation=val)
    assert party.X_val is not None and party.X_val.tolist() == [[30.0], [40.0]]
    assert party.y_val is not None and party.y_val.tolist() == ["no", "yes"]


def test_from_dataframe_with_fitted_encoder_sparse_output(frame: pd.DataFrame) -> None:
    encoder = ColumnTransformer(
        [("onehot", OneHotEncoder(), ["color"])], remainder="passthrough", sparse_threshold=1.0
    ).fit(frame.drop(columns="label"))
    assert hasattr(encoder.transform(frame.drop(columns="label")), "toarray")  # really sparse
    party = Party.from_dataframe("a", frame, "label", encoder=encoder, validation=frame)
    # one-hot blue, green, red, then age and income
    assert party.X[0].tolist() == [0.0, 0.0, 1.0, 30.0, 1.0]
    assert party.n_features == 5
    assert party.X_val is not None and party.X_val.shape == (4, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"target": "missing"},
            ValueError,
            r"party 'a': parameter 'target' must name a column; got 'missing'; available columns: "
            r"\['age', 'color', 'income', 'label'\]",
        ),
        (
            {},
            TypeError,
            r"party 'a': column 'color' is not numeric \(it holds 'red' in data row 1\); set "
            r"\[preprocessing\] categorical = \"onehot\" .* pass 'encoder'",
        ),
        ({"features": ["age", "label"]}, ValueError, "'features' must not contain the target"),
        ({"features": ["age", "weight"]}, ValueError, r"party 'a' lacks the columns \['weight'\]"),
        (
            {"features": ["age"], "validation": pd.DataFrame({"age": [1]})},
            ValueError,
            r"party 'a' validation lacks the columns \['label'\]; available columns: \['age'\]",
        ),
        (
            {"encoder": ColumnTransformer([("onehot", OneHotEncoder(), ["color"])])},
            ValueError,
            "'encoder' must be fitted .* got an unfitted ColumnTransformer",
        ),
        ({"encoder": object()}, TypeError, "'encoder' must have a transform"),
    ],
)
def test_from_dataframe_bad_inputs(
    frame: pd.DataFrame, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    args: dict[str, object] = {"target": "label"} | kwargs
    with pytest.raises(error, match=match):
        Party.from_dataframe("a", frame, **args)  # type: ignore[arg-type]


def test_from_dataframe_rejects_missing_values_and_non_frames(frame: pd.DataFrame) -> None:
    frame.loc[2, "income"] = np.nan
    match = r"party 'a': column 'income' has 1 missing .* data row 3; set \[preprocessing\] impute"
    with pytest.raises(ValueError, match=match):
        Party.from_dataframe("a", frame, "label", features=["age", "income"])
    with pytest.raises(TypeError, match="'df' must be a pandas DataFrame; got ndarray"):
        Party.from_dataframe("a", np.zeros((2, 2)), "label")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_from_files_round_trip(tmp_path: Path, frame: pd.DataFrame, kind: str) -> None:
    path = tmp_path / f"train.{kind}"
    val_path = tmp_path / f"val.{kind}"
    numeric = frame.drop(columns="color")
    getattr(numeric, f"to_{kind}")(path, index=False)
    getattr(numeric.iloc[:1], f"to_{kind}")(val_path, index=False)
    loader = getattr(Party, f"from_{kind}")
    party = loader("a", path, "label", validation=val_path)
    expected = Party.from_dataframe("a", numeric, "label", validation=numeric.iloc[:1])
    assert party.fingerprint() == expected.fingerprint()
    with pytest.raises(FileNotFoundError, match=r"party 'a' \(.*nope\." + kind + r"\): no such"):
        loader("a", tmp_path / f"nope.{kind}", "label")
    with pytest.raises(ValueError, match=r"party 'a' \(.*train.*\): parameter 'target' must"):
        loader("a", path, "y")


# ---------------------------------------------------------------- check_parties
def _parties() -> list[Party]:
    return [Party("a", [[0.0], [1.0]], [0, 1]), Party("b", [[2.0]], [2])]


def test_check_parties_accepts_and_returns_list() -> None:
    parties = _parties()
    result = check_parties(tuple(parties), validation=([[0.0], [1.0]], [2, 0]))
    assert result == parties
    regression = [Party("a", [[0.0]], [0.5], X_val=[[1.0]], y_val=[9.0])]
    assert check_parties(regression, task="regression") == regression


@pytest.mark.parametrize(
    ("parties", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "'parties' must hold at least one Party; got none"),
        ([object()], {}, TypeError, "'parties' must hold Party objects; got object"),
        (
            [Party("a", [[0.0]], [0]), Party("a", [[1.0]], [1])],
            {},
            ValueError,
            r"'parties' must have distinct names; duplicated: \['a'\]",
        ),
        (
            [Party("a", [[0.0]], [0]), Party("b", [[1.0, 2.0]], [1])],
            {},
            ValueError,
            r"same number of features; got \{'a': 1, 'b': 2\}",
        ),
        (
            _parties(),
            {"validation": ([[0.0], [0.0]], [1, 5])},
            ValueError,
            r"validation labels \[5\] occur in no party's training labels; "
            r"training labels: \[0, 1, 2\]",
        ),
        (
            [Party("a", [[0.0]], ["x"], X_val=[[1.0]], y_val=["z"])],
            {},
            ValueError,
            r"validation labels \['z'\]",
        ),
        (
            _parties(),
            {"validation": ([[0.0, 1.0]], [1])},
            ValueError,
            r"'validation' must have as many features as the parties \(1\); got 2",
        ),
        (_parties(), {"task": "ranking"}, ValueError, "'task' must be one of .* got 'ranking'"),
    ],
)
def test_check_parties_bad_inputs(
    parties: list[Party], kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        check_parties(parties, **kwargs)  # type: ignore[arg-type]
