import numpy as np
import pytest

from coopml.data import Dataset, list_datasets, load_dataset, train_validation_split


@pytest.mark.parametrize(
    ("name", "shape", "task", "n_classes"),
    [
        ("breast_cancer", (569, 30), "classification", 2),
        ("digits", (1797, 64), "classification", 10),
        ("wine", (178, 13), "classification", 3),
        ("iris", (150, 4), "classification", 3),
        ("diabetes", (442, 10), "regression", None),
    ],
)
def test_load_dataset(name: str, shape: tuple[int, int], task: str, n_classes: int | None) -> None:
    data = load_dataset(name)
    assert isinstance(data, Dataset)
    assert (data.name, data.task, data.X.shape, data.y.shape) == (name, task, shape, shape[:1])
    assert data.X.dtype == np.float64
    assert len(data.feature_names) == shape[1]
    assert data.description and "\n" not in data.description
    assert not data.X.flags.writeable and not data.y.flags.writeable
    if n_classes is None:
        assert data.target_names is None
        assert data.y.dtype == np.float64
    else:
        assert data.target_names is not None and len(data.target_names) == n_classes
        assert np.unique(data.y).tolist() == list(range(n_classes))


def test_list_datasets() -> None:
    assert list_datasets() == ["breast_cancer", "diabetes", "digits", "iris", "wine"]


def test_unknown_dataset_lists_available_names() -> None:
    with pytest.raises(
        ValueError, match=r"'name' must be one of 'breast_cancer', .*'wine'; got 'mnist'"
    ):
        load_dataset("mnist")


def test_split_is_stratified_deterministic_and_covering() -> None:
    data = load_dataset("wine")
    X_tr, X_val, _, y_val = train_validation_split(data.X, data.y, 0.5, random_state=3)
    assert (len(X_tr), len(X_val)) == (89, 89)
    # stratified: class counts in each half differ by at most one from half the total
    assert np.all(np.abs(np.bincount(y_val) - np.bincount(data.y) / 2) <= 1)
    rows = np.sort(np.vstack([X_tr, X_val]), axis=0)
    assert np.array_equal(rows, np.sort(data.X, axis=0))
    again = train_validation_split(data.X, data.y, 0.5, random_state=3)
    assert np.array_equal(again[1], X_val)
    other = train_validation_split(data.X, data.y, 0.5, random_state=4)
    assert not np.array_equal(other[1], X_val)


def test_split_regression_and_generator_seed() -> None:
    data = load_dataset("diabetes")
    rng = np.random.default_rng(0)
    _, _, y_tr, y_val = train_validation_split(data.X, data.y, 0.25, random_state=rng)
    assert (len(y_tr), len(y_val)) == (331, 111)
    assert y_val.dtype == np.float64


def test_split_unstratified_allows_singleton_class() -> None:
    X = np.arange(20.0).reshape(10, 2)
    y = np.array([0] * 9 + [1])
    with pytest.raises(ValueError, match="least populated class"):
        train_validation_split(X, y, 0.3, random_state=0)
    _, X_val, _, _ = train_validation_split(X, y, 0.3, random_state=0, stratify=False)
    assert len(X_val) == 3


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_split_bad_fraction(fraction: float) -> None:
    with pytest.raises(
        ValueError, match=rf"'validation_fraction' must lie in \(0, 1\); got {fraction}"
    ):
        train_validation_split(np.zeros((4, 1)), [0, 1, 0, 1], fraction)


def test_split_bad_lengths() -> None:
    with pytest.raises(ValueError, match=r"'y' must have one label per row of 'X' \(4\); got 3"):
        train_validation_split(np.zeros((4, 1)), [0, 1, 0])
