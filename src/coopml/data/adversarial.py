"""Adversarial and low-quality parties: replicas, label noise and feature noise.

Replication -- a party submitting copies of its data under extra identities -- is the
attack that collaborative ML markets must be robust to (Ohrimenko, Tople, Tschiatschek
2019; Agarwal, Dahleh, Sarkar, EC 2019). Flipped labels and noisy features are the
standard way to test that a data valuation ranks low-quality data last (Ghorbani, Zou,
ICML 2019). Every function returns a new :class:`~coopml.data.Party` and records what
it did in the party's metadata; the input party is never changed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import RandomState, check_fraction, check_positive, check_random_state
from coopml.data.party import Party

__all__ = ["corrupt_features", "corrupt_labels", "replicate_party"]


def _check_party(party: Any) -> Party:
    if not isinstance(party, Party):
        raise TypeError(f"parameter 'party' must be a Party; got {type(party).__name__}")
    return party


def _add_noise(
    X: NDArray[np.float64], rows: NDArray[np.intp], noise: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Copy of ``X`` with N(0, (noise * std_j)^2) added to feature j of ``rows``."""
    noisy = X.copy()
    std = np.nanstd(X, axis=0) if np.isnan(X).any() else X.std(axis=0)  # missing stay missing
    noisy[rows] += rng.normal(size=(rows.size, X.shape[1])) * (noise * std)
    return noisy


def _like(
    party: Party, name: str, X: NDArray[np.float64], y: NDArray[Any], metadata: dict[str, Any]
) -> Party:
    """A party with ``party``'s validation data, feature names and missing-value rule."""
    return Party(
        name,
        X,
        y,
        party.X_val,
        party.y_val,
        metadata,
        feature_names=party.feature_names,
        allow_missing=party.has_missing,
    )


def replicate_party(
    party: Party, name: str, *, noise: float = 0.0, random_state: RandomState = None
) -> Party:
    """A copy of ``party`` under another name, optionally with Gaussian feature noise.

    Parameters
    ----------
    party : Party
    name : str
        Name of the replica.
    noise : float >= 0
        Standard deviation of the noise added to each training feature, in units of that
        feature's standard deviation in ``party.X``; 0 gives an exact copy. Labels and
        validation data are copied unchanged.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    Party
        Metadata: ``party.metadata`` plus ``{"replica_of": party.name, "noise": noise}``.

    Examples
    --------
    >>> party = Party("a", [[0.0], [1.0]], [0, 1])
    >>> copy = replicate_party(party, "a_copy")
    >>> copy.fingerprint() == party.fingerprint(), copy.metadata
    (True, {'replica_of': 'a', 'noise': 0.0})
    """
    party = _check_party(party)
    noise = check_positive("noise", noise, strict=False)
    X = party.X
    if noise > 0:
        X = _add_noise(X, np.arange(party.n_samples), noise, check_random_state(random_state))
    metadata = {**party.metadata, "replica_of": party.name, "noise": noise}
    return _like(party, name, X, party.y, metadata)


def corrupt_labels(
    party: Party,
    fraction: float,
    *,
    classes: ArrayLike | None = None,
    random_state: RandomState = None,
) -> Party:
    """Flip ``round(fraction * n_samples)`` training labels, chosen at random.

    Each flipped label becomes a different class, uniformly among the others.

    Parameters
    ----------
    party : Party
    fraction : float in [0, 1]
        Share of training labels to flip (rounded half to even).
    classes : array-like of shape (n_classes,), optional
        The label set, at least two classes including every label of ``party.y``;
        default the distinct labels of ``party.y``.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    Party
        Same name; metadata adds ``"n_flipped"`` (int) and ``"flipped_indices"``
        (sorted list of row indices).

    Examples
    --------
    >>> party = Party("a", [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> noisy = corrupt_labels(party, 0.5, random_state=0)
    >>> noisy.metadata["n_flipped"], int((noisy.y != party.y).sum())
    (2, 2)
    """
    party = _check_party(party)
    fraction = check_fraction("fraction", fraction)
    labels = np.unique(party.y if classes is None else np.asarray(classes))
    if labels.size < 2:
        raise ValueError(
            f"parameter 'classes' must hold at least 2 distinct labels; got {labels.tolist()} "
            "(pass 'classes' when the party has a single class)"
        )
    unknown = set(np.unique(party.y).tolist()) - set(labels.tolist())
    if unknown:
        raise ValueError(
            f"parameter 'classes' must include every label of the party; missing {sorted(unknown)}"
        )
    rng = check_random_state(random_state)
    rows = np.sort(rng.choice(party.n_samples, round(fraction * party.n_samples), replace=False))
    current = np.searchsorted(labels, party.y[rows])
    shift = rng.integers(1, labels.size, size=rows.size)  # never 0: always another class
    y = party.y.astype(np.result_type(party.y, labels))
    y[rows] = labels[(current + shift) % labels.size]
    metadata = {**party.metadata, "n_flipped": int(rows.size), "flipped_indices": rows.tolist()}
    return _like(party, party.name, party.X, y, metadata)


def corrupt_features(
    party: Party, noise: float, *, fraction: float = 1.0, random_state: RandomState = None
) -> Party:
    """Add Gaussian noise to the training features of a random share of rows.

    Parameters
    ----------
    party : Party
    noise : float >= 0
        Noise standard deviation per feature, in units of that feature's standard
        deviation in ``party.X``.
    fraction : float in [0, 1]
        Share of rows corrupted (``round(fraction * n_samples)`` rows).
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    Party
        Same name; metadata adds ``"feature_noise"`` (float), ``"n_corrupted"`` (int) and
        ``"corrupted_indices"`` (sorted list of row indices).

    Examples
    --------
    >>> party = Party("a", [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    >>> noisy = corrupt_features(party, 0.5, fraction=0.5, random_state=0)
    >>> noisy.metadata["n_corrupted"], int((noisy.X != party.X).any(axis=1).sum())
    (2, 2)
    """
    party = _check_party(party)
    noise = check_positive("noise", noise, strict=False)
    fraction = check_fraction("fraction", fraction)
    rng = check_random_state(random_state)
    rows = np.sort(rng.choice(party.n_samples, round(fraction * party.n_samples), replace=False))
    metadata = {
        **party.metadata,
        "feature_noise": noise,
        "n_corrupted": int(rows.size),
        "corrupted_indices": rows.tolist(),
    }
    X = _add_noise(party.X, rows, noise, rng)
    return _like(party, party.name, X, party.y, metadata)
