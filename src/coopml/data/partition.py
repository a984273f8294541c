r"""Split one dataset among simulated parties: IID, size skew and Dirichlet label skew.

The functional core returns index arrays: a list of ``n_parties`` sorted integer arrays
that partition ``range(n_samples)`` (disjoint and covering). :func:`make_parties` turns
them into :class:`~coopml.data.Party` objects.

* IID: a uniformly random permutation cut into near-equal parts.
* Size (quantity) skew: party shares :math:`q \sim \mathrm{Dir}(\beta \mathbf{1})`, or
  given, as in the "quantity skew" setting of Li, Diao, Chen, He (ICDE 2022).
* Label skew: for every class :math:`k` the shares of its samples across parties are
  :math:`p_k \sim \mathrm{Dir}_J(\alpha \mathbf{1})` -- the split of Hsu, Qi, Brown
  (2019, arXiv 1909.06335) in the per-class form of Yurochkin et al. (ICML 2019). Small
  :math:`\alpha` gives each party few classes; :math:`\alpha \to \infty` approaches IID.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import (
    RandomState,
    check_2d_features,
    check_choice,
    check_int,
    check_names,
    check_positive,
    check_random_state,
)
from coopml.data.party import Party, _check_labels

__all__ = ["dirichlet_label_partition", "iid_partition", "make_parties", "size_skew_partition"]


def _apportion(total: int, shares: NDArray[np.float64]) -> NDArray[np.intp]:
    """Integer counts summing to ``total``, proportional to ``shares`` (largest remainder)."""
    raw = shares * total
    counts = np.floor(raw).astype(np.intp)
    order = np.argsort(counts - raw, kind="stable")  # largest fractional part first
    counts[order[: total - counts.sum()]] += 1
    return counts


def _split(order: NDArray[np.intp], counts: NDArray[np.intp]) -> list[NDArray[np.intp]]:
    return [np.sort(part) for part in np.split(order, np.cumsum(counts)[:-1])]


def iid_partition(
    n_samples: int, n_parties: int, random_state: RandomState = None
) -> list[NDArray[np.intp]]:
    """Random near-equal split of ``range(n_samples)`` (part sizes differ by at most 1).

    Parameters
    ----------
    n_samples : int
    n_parties : int, 1 <= n_parties <= n_samples
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    list of ndarray of shape (n_j,)
        Sorted row indices of each party.

    Examples
    --------
    >>> [part.tolist() for part in iid_partition(7, 3, random_state=0)]
    [[2, 3, 4], [5, 6], [0, 1]]
    """
    n = check_int("n_samples", n_samples, minimum=1)
    n_parties = check_int("n_parties", n_parties, minimum=1, maximum=n)
    order = check_random_state(random_state).permutation(n)
    return [np.sort(part) for part in np.array_split(order, n_parties)]


def size_skew_partition(
    n_samples: int,
    n_parties: int,
    *,
    sizes: ArrayLike | None = None,
    concentration: float = 1.0,
    min_size: int = 1,
    random_state: RandomState = None,
) -> list[NDArray[np.intp]]:
    r"""Random split with unequal part sizes.

    Shares are ``sizes`` if given, else drawn from :math:`\mathrm{Dir}(\beta\mathbf{1})`
    with :math:`\beta` = ``concentration``. Counts are the shares times ``n_samples``
    rounded by largest remainder; then parties below ``min_size`` get rows from the
    largest party, one at a time.

    Parameters
    ----------
    n_samples : int
    n_parties : int, 1 <= n_parties <= n_samples // min_size
    sizes : array-like of shape (n_parties,), optional
        Non-negative proportions summing to 1.
    concentration : float > 0
        Dirichlet parameter when ``sizes`` is None; small values give very unequal sizes.
    min_size : int >= 1
        Fewest rows per party.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    list of ndarray of shape (n_j,)
        Sorted row indices of each party.

    Examples
    --------
    >>> parts = size_skew_partition(10, 2, sizes=[0.2, 0.8], random_state=0)
    >>> [len(part) for part in parts]
    [2, 8]
    """
    n = check_int("n_samples", n_samples, minimum=1)
    n_parties = check_int("n_parties", n_parties, minimum=1, maximum=n)
    min_size = check_int("min_size", min_size, minimum=1, maximum=n // n_parties)
    rng = check_random_state(random_state)
    if sizes is None:
        shares = rng.dirichlet(np.full(n_parties, check_positive("concentration", concentration)))
    else:
        shares = np.asarray(sizes, dtype=np.float64)
        if shares.shape != (n_parties,):
            raise ValueError(
                f"parameter 'sizes' must have one entry per party (shape ({n_parties},)); "
                f"got shape {shares.shape}"
            )
        if not (np.all(np.isfinite(shares)) and np.all(shares >= 0)):
            raise ValueError(f"parameter 'sizes' must be finite and >= 0; got {shares.tolist()}")
        if not np.isclose(shares.sum(), 1.0, rtol=0.0, atol=1e-6):
            raise ValueError(f"parameter 'sizes' must sum to 1; got sum {shares.sum()}")
        shares = shares / shares.sum()
    counts = _apportion(n, shares)
    while counts.min() < min_size:
        counts[counts.argmin()] += 1
        counts[counts.argmax()] -= 1
    return _split(rng.permutation(n), counts)


def dirichlet_label_partition(
    y: ArrayLike,
    n_parties: int,
    alpha: float,
    *,
    min_size: int = 1,
    max_retries: int = 100,
    random_state: RandomState = None,
) -> list[NDArray[np.intp]]:
    r"""Label-skewed split: each class is shared out with proportions :math:`\mathrm{Dir}(\alpha)`.

    For each class the shares are rounded to counts by largest remainder and the class's
    rows, shuffled, are dealt out accordingly. The whole draw is repeated until every
    party has at least ``min_size`` rows.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.
    n_parties : int, 1 <= n_parties <= n_samples // min_size
    alpha : float > 0
        Concentration; 0.1 is strongly skewed, 100 is close to IID.
    min_size : int >= 1
        Fewest rows per party.
    max_retries : int >= 1
        Most draws before giving up with a ValueError.
    random_state : int, numpy.random.Generator or None

    Returns
    -------
    list of ndarray of shape (n_j,)
        Sorted row indices of each party.

    Examples
    --------
    >>> y = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> parts = dirichlet_label_partition(y, 2, alpha=0.5, random_state=0)
    >>> sorted(np.concatenate(parts).tolist()) == list(range(8))
    True
    """
    labels = _check_labels("y", y, None)
    n = labels.shape[0]
    n_parties = check_int("n_parties", n_parties, minimum=1, maximum=n)
    min_size = check_int("min_size", min_size, minimum=1, maximum=n // n_parties)
    alpha = check_positive("alpha", alpha)
    max_retries = check_int("max_retries", max_retries, minimum=1)
    rng = check_random_state(random_state)
    _, codes = np.unique(labels, return_inverse=True)
    members = [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]
    owner = np.empty(n, dtype=np.intp)
    for _ in range(max_retries):
        for rows in members:
            counts = _apportion(rows.size, rng.dirichlet(np.full(n_parties, alpha)))
            owner[rng.permutation(rows)] = np.repeat(np.arange(n_parties), counts)
        if np.bincount(owner, minlength=n_parties).min() >= min_size:
            return [np.flatnonzero(owner == j) for j in range(n_parties)]
    raise ValueError(
        f"could not give each of {n_parties} parties >= {min_size} rows in "
        f"max_retries={max_retries} Dirichlet draws with alpha={alpha}; increase 'alpha' or "
        "'max_retries', or lower 'min_size' or 'n_parties'"
    )


def make_parties(
    X: ArrayLike,
    y: ArrayLike,
    n_parties: int,
    method: str = "iid",
    *,
    names: Sequence[str] | None = None,
    validation: tuple[ArrayLike, ArrayLike] | None = None,
    random_state: RandomState = None,
    **method_kwargs: Any,
) -> list[Party]:
    """Split ``(X, y)`` among ``n_parties`` simulated parties.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    n_parties : int, 1 <= n_parties <= n_samples
    method : {"iid", "size_skew", "dirichlet"}
        Uses :func:`iid_partition`, :func:`size_skew_partition` or
        :func:`dirichlet_label_partition` (which needs ``alpha=...``).
    names : list of str, optional
        Default ``["party_0", "party_1", ...]``.
    validation : tuple (X_val, y_val), optional
        Attached to every party as its validation data.
    random_state : int, numpy.random.Generator or None
    **method_kwargs
        Passed to the partition function, e.g. ``alpha=0.5`` or ``sizes=[0.2, 0.8]``.

    Returns
    -------
    list of Party

    Examples
    --------
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> y = np.array([0, 1] * 5)
    >>> make_parties(X, y, 2, "size_skew", sizes=[0.3, 0.7], random_state=0)
    [Party(name='party_0', n_samples=3, n_features=2, n_val=0),
     Party(name='party_1', n_samples=7, n_features=2, n_val=0)]
    """
    features = check_2d_features("X", X)
    labels = _check_labels("y", y, features.shape[0], "X")
    method = check_choice("method", method, ("iid", "size_skew", "dirichlet"))
    n_parties = check_int("n_parties", n_parties, minimum=1)
    names = [f"party_{j}" for j in range(n_parties)] if names is None else names
    party_names = check_names("names", names, n_parties)
    X_val, y_val = (None, None) if validation is None else map(np.asarray, validation)
    if method == "iid":
        parts = iid_partition(len(labels), n_parties, random_state, **method_kwargs)
    elif method == "size_skew":
        parts = size_skew_partition(
            len(labels), n_parties, random_state=random_state, **method_kwargs
        )
    else:
        parts = dirichlet_label_partition(
            labels, n_parties, random_state=random_state, **method_kwargs
        )
    return [
        Party(name, features[rows], labels[rows], X_val, y_val)
        for name, rows in zip(party_names, parts, strict=True)
    ]
