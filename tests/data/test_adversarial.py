import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.data import Party, corrupt_features, corrupt_labels, replicate_party


@pytest.fixture
def party() -> Party:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1]
    return Party("a", X, np.arange(200) % 3, X_val=X[:5], y_val=np.zeros(5, int), metadata={"k": 1})


def test_replicate_exact(party: Party) -> None:
    copy = replicate_party(party, "a_copy")
    assert copy.name == "a_copy"
    assert copy.fingerprint() == party.fingerprint()
    assert copy.metadata == {"k": 1, "replica_of": "a", "noise": 0.0}
    assert party.metadata == {"k": 1}


def test_replicate_with_noise_scales_with_feature_std(party: Party) -> None:
    before = party.fingerprint()
    near = replicate_party(party, "b", noise=0.1, random_state=0)
    diff_std = (near.X - party.X).std(axis=0)
    np.testing.assert_allclose(diff_std, 0.1 * party.X.std(axis=0), rtol=0.15)
    assert np.array_equal(near.y, party.y)
    assert near.X_val is not None and party.X_val is not None
    assert np.array_equal(near.X_val, party.X_val)
    assert near.metadata["noise"] == 0.1
    assert party.fingerprint() == before
    again = replicate_party(party, "b", noise=0.1, random_state=0)
    assert again.fingerprint() == near.fingerprint()


def test_corrupt_labels(party: Party) -> None:
    noisy = corrupt_labels(party, 0.25, random_state=0)
    flipped = np.flatnonzero(noisy.y != party.y)
    assert flipped.tolist() == noisy.metadata["flipped_indices"]
    assert noisy.metadata["n_flipped"] == 50
    assert noisy.metadata["k"] == 1
    assert set(noisy.y.tolist()) == {0, 1, 2}
    assert noisy.name == "a" and np.array_equal(noisy.X, party.X)
    # new labels are spread over both other classes
    moves = {(int(a), int(b)) for a, b in zip(party.y[flipped], noisy.y[flipped], strict=True)}
    assert moves == {(a, b) for a in range(3) for b in range(3) if a != b}
    assert np.array_equal(corrupt_labels(party, 0.25, random_state=0).y, noisy.y)


def test_corrupt_labels_strings_and_given_classes() -> None:
    single = Party("s", [[0.0], [1.0], [2.0]], ["cat", "cat", "cat"])
    noisy = corrupt_labels(single, 1.0, classes=["cat", "dog", "hippo"], random_state=1)
    assert set(noisy.y.tolist()) <= {"dog", "hippo"}
    assert noisy.metadata["n_flipped"] == 3


@settings(max_examples=40, deadline=None)
@given(
    st.integers(2, 40),
    st.integers(2, 5),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_corrupt_labels_flips_exactly_round_fraction(
    n: int, n_classes: int, fraction: float, seed: int
) -> None:
    party = Party("p", np.zeros((n, 1)), np.arange(n) % n_classes)
    noisy = corrupt_labels(party, fraction, classes=range(n_classes), random_state=seed)
    assert int((noisy.y != party.y).sum()) == round(fraction * n)


def test_corrupt_features(party: Party) -> None:
    noisy = corrupt_features(party, 1.0, fraction=0.1, random_state=0)
    changed = np.flatnonzero((noisy.X != party.X).any(axis=1))
    assert changed.tolist() == noisy.metadata["corrupted_indices"]
    assert noisy.metadata["n_corrupted"] == 20
    assert noisy.metadata["feature_noise"] == 1.0
    assert np.array_equal(noisy.y, party.y)
    untouched = corrupt_features(party, 1.0, fraction=0.0, random_state=0)
    assert untouched.fingerprint() == party.fingerprint()
    assert corrupt_features(party, 1.0, random_state=0).metadata["n_corrupted"] == 200


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda p: replicate_party(p, "b", noise=-0.1),
            ValueError,
            "'noise' must be finite and >= 0",
        ),
        (lambda p: replicate_party(p, ""), ValueError, "'name' must be a non-empty string"),
        (lambda p: replicate_party(p.X, "b"), TypeError, "'party' must be a Party; got ndarray"),
        (lambda p: corrupt_labels(p, 1.5), ValueError, r"'fraction' must lie in \[0, 1\]; got 1.5"),
        (
            lambda p: corrupt_labels(p, 0.5, classes=[0, 1]),
            ValueError,
            r"'classes' must include every label of the party; missing \[2\]",
        ),
        (
            lambda p: corrupt_labels(Party("s", [[0.0]], [1]), 0.5),
            ValueError,
            r"'classes' must hold at least 2 distinct labels; got \[1\]",
        ),
        (
            lambda p: corrupt_features(p, np.nan),
            ValueError,
            "'noise' must be finite and >= 0; got nan",
        ),
        (
            lambda p: corrupt_features(p, 1.0, fraction=-0.1),
            ValueError,
            r"'fraction' must lie in \[0, 1\]",
        ),
    ],
)
def test_bad_inputs(party: Party, call: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call(party)  # type: ignore[operator]
