import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.data import (
    Party,
    dirichlet_label_partition,
    iid_partition,
    make_parties,
    size_skew_partition,
)


def assert_partition(parts: list[np.ndarray], n_samples: int, n_parties: int) -> None:
    assert len(parts) == n_parties
    for part in parts:
        assert part.dtype.kind == "i"
        assert np.all(np.diff(part) > 0)  # sorted, no repeats
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(n_samples))


sizes_and_parties = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(1, n), st.integers(0, 2**32 - 1))
)


@settings(max_examples=50, deadline=None)
@given(sizes_and_parties)
def test_iid_partition_is_balanced_partition(args: tuple[int, int, int]) -> None:
    n, k, seed = args
    parts = iid_partition(n, k, random_state=seed)
    assert_partition(parts, n, k)
    lengths = [len(p) for p in parts]
    assert max(lengths) - min(lengths) <= 1


@settings(max_examples=50, deadline=None)
@given(sizes_and_parties, st.floats(0.05, 10.0), st.data())
def test_size_skew_partition_is_partition(
    args: tuple[int, int, int], concentration: float, data: st.DataObject
) -> None:
    n, k, seed = args
    min_size = data.draw(st.integers(1, n // k))
    parts = size_skew_partition(
        n, k, concentration=concentration, min_size=min_size, random_state=seed
    )
    assert_partition(parts, n, k)
    assert min(len(p) for p in parts) >= min_size


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=60),
    st.floats(0.05, 100.0),
    st.data(),
)
def test_dirichlet_partition_is_partition(
    labels: list[str], alpha: float, data: st.DataObject
) -> None:
    n = len(labels)
    k = data.draw(st.integers(1, min(n, 5)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    try:
        parts = dirichlet_label_partition(labels, k, alpha, random_state=seed)
    except ValueError as exc:  # very skewed draws may legitimately fail to fill every party
        assert "could not give each of" in str(exc)
        return
    assert_partition(parts, n, k)


def test_iid_partition_reference_and_determinism() -> None:
    parts = iid_partition(7, 3, random_state=0)
    assert [p.tolist() for p in parts] == [[2, 3, 4], [5, 6], [0, 1]]
    assert [p.tolist() for p in iid_partition(7, 3, random_state=0)] == [p.tolist() for p in parts]
    rng = np.random.default_rng(0)
    first, second = iid_partition(50, 2, rng), iid_partition(50, 2, rng)
    assert not np.array_equal(first[0], second[0])  # a Generator advances


def test_size_skew_given_sizes_and_min_size() -> None:
    parts = size_skew_partition(100, 3, sizes=[0.5, 0.3, 0.2], random_state=1)
    assert [len(p) for p in parts] == [50, 30, 20]
    parts = size_skew_partition(10, 3, sizes=[1 / 3] * 3, random_state=1)
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    parts = size_skew_partition(20, 3, sizes=[0.0, 0.05, 0.95], min_size=3, random_state=1)
    assert [len(p) for p in parts] == [3, 3, 14]


def test_size_skew_concentration_controls_inequality() -> None:
    def spread(concentration: float) -> float:
        lengths = [
            [len(p) for p in size_skew_partition(1000, 5, concentration=c, random_state=s)]
            for s, c in enumerate([concentration] * 20)
        ]
        return float(np.mean(np.std(lengths, axis=1)))

    assert spread(0.2) > 3 * spread(50.0)


def test_dirichlet_alpha_controls_label_skew() -> None:
    y = np.repeat(np.arange(4), 250)

    def mean_max_class_share(alpha: float) -> float:
        parts = dirichlet_label_partition(y, 5, alpha, random_state=0)
        return float(np.mean([np.bincount(y[p], minlength=4).max() / len(p) for p in parts]))

    assert mean_max_class_share(1000.0) < 0.35  # near the IID share of 0.25
    assert mean_max_class_share(0.05) > 0.7  # most parties dominated by one class


def test_dirichlet_min_size_and_determinism() -> None:
    y = np.repeat([0, 1], 20)
    parts = dirichlet_label_partition(y, 4, 0.3, min_size=5, random_state=2)
    assert min(len(p) for p in parts) >= 5
    again = dirichlet_label_partition(y, 4, 0.3, min_size=5, random_state=2)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_make_parties() -> None:
    X = np.arange(40.0).reshape(20, 2)
    y = np.repeat([0, 1], 10)
    val = (np.zeros((3, 2)), np.array([0, 1, 1]))
    parties = make_parties(X, y, 3, "dirichlet", validation=val, random_state=0, alpha=1.0)
    assert [p.name for p in parties] == ["party_0", "party_1", "party_2"]
    assert all(isinstance(p, Party) for p in parties)
    assert all(p.y_val is not None and p.y_val.tolist() == [0, 1, 1] for p in parties)
    pooled = np.vstack([p.X for p in parties])
    assert np.array_equal(np.sort(pooled[:, 0]), X[:, 0])
    for p in parties:  # rows keep their labels
        assert np.array_equal(p.y, y[(p.X[:, 0] // 2).astype(int)])
    named = make_parties(X, y, 2, names=["north", "south"], random_state=0)
    assert [(p.name, p.n_samples) for p in named] == [("north", 10), ("south", 10)]
    skewed = make_parties(X, y, 2, "size_skew", sizes=[0.25, 0.75], random_state=0)
    assert [p.n_samples for p in skewed] == [5, 15]
    same = make_parties(X, y, 2, "size_skew", sizes=[0.25, 0.75], random_state=0)
    assert [p.fingerprint() for p in same] == [p.fingerprint() for p in skewed]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: iid_partition(5, 0), ValueError, "'n_parties' must be >= 1; got 0"),
        (lambda: iid_partition(5, 6), ValueError, "'n_parties' must be <= 5; got 6"),
        (lambda: iid_partition(0, 1), ValueError, "'n_samples' must be >= 1; got 0"),
        (
            lambda: iid_partition(5.0, 2),  # type: ignore[arg-type]
            TypeError,
            "'n_samples' must be an integer; got 5.0",
        ),
        (
            lambda: size_skew_partition(10, 2, sizes=[0.5, 0.6]),
            ValueError,
            "'sizes' must sum to 1; got sum 1.1",
        ),
        (
            lambda: size_skew_partition(10, 3, sizes=[0.5, 0.5]),
            ValueError,
            r"'sizes' must have one entry per party \(shape \(3,\)\); got shape \(2,\)",
        ),
        (
            lambda: size_skew_partition(10, 2, sizes=[1.5, -0.5]),
            ValueError,
            r"'sizes' must be finite and >= 0; got \[1.5, -0.5\]",
        ),
        (
            lambda: size_skew_partition(10, 2, concentration=0),
            ValueError,
            "'concentration' must be finite and > 0; got 0.0",
        ),
        (
            lambda: size_skew_partition(10, 3, min_size=4),
            ValueError,
            "'min_size' must be <= 3; got 4",
        ),
        (
            lambda: dirichlet_label_partition([0, 1, 0, 1], 2, 0.0),
            ValueError,
            "'alpha' must be finite and > 0; got 0.0",
        ),
        (
            lambda: dirichlet_label_partition([0, 1, 0, 1], 2, -1),
            ValueError,
            "'alpha' must be finite and > 0; got -1.0",
        ),
        (
            lambda: dirichlet_label_partition([0, 1], 3, 1.0),
            ValueError,
            "'n_parties' must be <= 2; got 3",
        ),
        (
            lambda: dirichlet_label_partition([0, 1], 1, 1.0, max_retries=0),
            ValueError,
            "'max_retries' must be >= 1; got 0",
        ),
        (
            lambda: dirichlet_label_partition(
                [0] * 10 + [1] * 10, 5, 0.01, min_size=4, max_retries=2, random_state=0
            ),
            ValueError,
            r"could not give each of 5 parties >= 4 rows in max_retries=2 .* increase 'alpha'",
        ),
        (
            lambda: dirichlet_label_partition([[0, 1]], 1, 1.0),
            ValueError,
            r"'y' must be 1-D",
        ),
        (
            lambda: make_parties(np.zeros((4, 1)), [0, 1, 0, 1], 2, "random"),
            ValueError,
            "'method' must be one of 'dirichlet', 'iid', 'size_skew'; got 'random'",
        ),
        (
            lambda: make_parties(np.zeros((4, 1)), [0, 1, 0, 1], 2, names=["a"]),
            ValueError,
            "'names' must have 2 entries; got 1",
        ),
        (
            lambda: make_parties(np.zeros((4, 1)), [0, 1, 0], 2),
            ValueError,
            r"'y' must have one label per row of 'X' \(4\); got 3",
        ),
        (
            lambda: make_parties(np.zeros((4, 1)), [0, 1, 0, 1], 2, "dirichlet"),
            TypeError,
            "missing 1 required positional argument: 'alpha'",
        ),
        (
            lambda: make_parties(
                np.zeros((4, 1)), [0, 1, 0, 1], 2, validation=(np.zeros((1, 2)), [0])
            ),
            ValueError,
            r"'X_val' must have as many features as 'X' \(1\); got 2",
        ),
    ],
)
def test_bad_inputs(call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()  # type: ignore[operator]
