r"""Types, prior and outcomes: the type-count profile :math:`n \sim \mathrm{Multinomial}(N, p)`.

In the contract model of Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) each of
:math:`N` participants draws a private cost type :math:`i \in \{1..I\}` i.i.d. from the
prior :math:`p`; the outcome is the type-count profile :math:`n = (n_1..n_I)`, a
composition of :math:`N` into :math:`I` parts, with probability

.. math:: P(n) = \frac{N!}{\prod_i n_i!} \prod_i p_i^{n_i}.

Every expectation of the program is a weighted sum over outcomes. :func:`enumerate_outcomes`
lists all :math:`\binom{N+I-1}{I-1}` compositions with vectorised multinomial weights;
when that is too many, :func:`sample_outcomes` draws outcomes and weights them by their
empirical frequency, and :meth:`OutcomeSpace.stderr` gives Monte Carlo error bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln

from coopml._validation import RandomState, check_int, check_random_state

__all__ = [
    "OutcomeSpace",
    "check_prior",
    "compositions",
    "enumerate_outcomes",
    "multinomial_weights",
    "n_compositions",
    "sample_outcomes",
]

FloatArray = NDArray[np.float64]
MAX_ENUMERATED = 20_000_000  # compositions; beyond this, sample


def n_compositions(n_participants: int, n_types: int) -> int:
    """Number of outcomes :math:`\\binom{N+I-1}{I-1}`.

    Examples
    --------
    >>> n_compositions(10, 5)
    1001
    """
    return comb(n_participants + n_types - 1, n_types - 1)


def compositions(n_participants: int, n_types: int) -> NDArray[np.int64]:
    """All compositions of ``N`` into ``I`` non-negative parts, in lexicographic order.

    Built column by column with ``numpy.repeat`` (no Python loop over outcomes).

    Returns
    -------
    ndarray of shape (C(N+I-1, I-1), I)

    Examples
    --------
    >>> compositions(2, 3).tolist()
    [[0, 0, 2], [0, 1, 1], [0, 2, 0], [1, 0, 1], [1, 1, 0], [2, 0, 0]]
    """
    N = check_int("n_participants", n_participants, minimum=1)
    I = check_int("n_types", n_types, minimum=1)
    return _compositions(N, I).astype(np.int64)


def _compositions(N: int, I: int) -> NDArray[np.integer]:
    small = np.int8 if N < 127 else np.int32
    cols: list[NDArray[np.integer]] = []
    rem = np.array([N], dtype=np.int64)
    for _ in range(I - 1):
        counts = rem + 1
        starts = np.cumsum(counts) - counts
        parent = np.repeat(np.arange(rem.size), counts)
        value = np.arange(parent.size) - starts[parent]
        cols = [c[parent] for c in cols]
        cols.append(value.astype(small))
        rem = rem[parent] - value
    cols.append(rem.astype(small))
    return np.stack(cols, axis=1)


def check_prior(prior: ArrayLike, n_types: int | None = None) -> FloatArray:
    """Validate a prior over ``n_types`` types (any number if None: positive weights)
    and normalise it to sum to 1.

    Examples
    --------
    >>> check_prior([1, 1, 2], 3).tolist()
    [0.25, 0.25, 0.5]
    """
    try:
        p = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"parameter 'prior' must be a list of numbers; got {prior!r}") from None
    if p.ndim != 1 or p.size == 0 or (n_types is not None and p.size != n_types):
        expected = "a non-empty list" if n_types is None else f"one entry per type ({n_types})"
        raise ValueError(f"parameter 'prior' must have {expected}; got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError(
            "parameter 'prior' must hold finite probabilities > 0 (drop a type with zero "
            f"probability instead); got {p.tolist()}"
        )
    return p / p.sum()


def multinomial_weights(outcomes: ArrayLike, prior: ArrayLike) -> FloatArray:
    """Multinomial probabilities :math:`P(n)` of outcomes (rows), via log-factorials.

    Examples
    --------
    >>> multinomial_weights([[2, 0], [1, 1], [0, 2]], [0.5, 0.5]).tolist()
    [0.25, 0.5, 0.25]
    """
    n = np.asarray(outcomes)
    if not np.issubdtype(n.dtype, np.integer):
        n = n.astype(np.int64)
    p = np.asarray(prior, dtype=np.float64)
    N = int(n[0].sum()) if n.size else 0
    log_fact = gammaln(np.arange(N + 1) + 1.0)
    log_p = np.log(p)
    k = np.arange(N + 1)
    logw = np.full(n.shape[0], log_fact[N])
    for j in range(n.shape[1]):  # one gather per type from a table of k log p_j - log k!
        logw += (k * log_p[j] - log_fact)[n[:, j]]
    return np.asarray(np.exp(logw), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class OutcomeSpace:
    """Outcomes with their weights: exact (all compositions) or sampled.

    Attributes
    ----------
    counts : ndarray of shape (K, I), float64
        The type-count profiles ``n`` (integers stored as floats for the linear algebra).
    weights : ndarray of shape (K,)
        ``P(n)`` (exact) or empirical frequencies (sampled); sums to 1.
    present : ndarray of shape (K, I), float64
        Indicators ``1[n_i >= 1]``.
    presence : ndarray of shape (I,)
        ``P(n_i >= 1)`` under ``weights``.
    exact : bool
        Whether every outcome is enumerated.
    n_samples : int
        Number of draws (sampled spaces); ``0`` for exact ones.
    """

    counts: FloatArray
    weights: FloatArray
    exact: bool
    n_samples: int = 0
    present: FloatArray = field(init=False)
    presence: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        present = (self.counts > 0).astype(np.float64)
        presence = self.weights @ present
        for name, arr in (("counts", self.counts), ("weights", self.weights)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        present.setflags(write=False)
        object.__setattr__(self, "present", present)
        object.__setattr__(self, "presence", presence)

    @property
    def n_outcomes(self) -> int:
        """Number of (distinct) outcomes ``K``."""
        return int(self.counts.shape[0])

    @property
    def n_types(self) -> int:
        """Number of types ``I``."""
        return int(self.counts.shape[1])

    def expectation(self, values: ArrayLike) -> float:
        """``E[g(n)]`` for per-outcome values ``g``."""
        return float(self.weights @ np.asarray(values, dtype=np.float64))

    def conditional_expectations(self, values: ArrayLike) -> FloatArray:
        """``E[g(n) | n_i >= 1]`` for every type ``i``; shape (I,)."""
        g = np.asarray(values, dtype=np.float64)
        return np.asarray(((self.weights * g) @ self.present) / self.presence, dtype=np.float64)

    def stderr(self, values: ArrayLike) -> tuple[float, FloatArray]:
        """Monte Carlo standard errors of :meth:`expectation` and
        :meth:`conditional_expectations` (zeros for an exact space).

        The conditional ones are ratio estimators; their delta-method standard error is
        ``sqrt(sum_{n_i>=1} w (g - mean_i)^2 / P_i) / sqrt(n_samples * P_i)``.
        """
        if self.exact:
            return 0.0, np.zeros(self.n_types)
        g = np.asarray(values, dtype=np.float64)
        mean = self.expectation(g)
        se = float(np.sqrt(self.weights @ (g - mean) ** 2 / self.n_samples))
        cond = self.conditional_expectations(g)
        dev = (g[:, None] - cond[None, :]) ** 2 * self.present
        var = (self.weights @ dev) / self.presence
        return se, np.sqrt(var / (self.n_samples * self.presence))


def enumerate_outcomes(n_participants: int, prior: ArrayLike) -> OutcomeSpace:
    """Every outcome with its multinomial probability.

    Parameters
    ----------
    n_participants : int
        ``N >= 1``.
    prior : array-like of shape (I,)
        Positive type probabilities (normalised here).

    Examples
    --------
    >>> space = enumerate_outcomes(10, [0.2] * 5)
    >>> space.n_outcomes, round(float(space.weights.sum()), 12)
    (1001, 1.0)
    >>> space.presence.round(4).tolist()
    [0.8926, 0.8926, 0.8926, 0.8926, 0.8926]
    """
    N = check_int("n_participants", n_participants, minimum=1)
    p = check_prior(prior)
    K = n_compositions(N, p.size)
    if K > MAX_ENUMERATED:
        raise ValueError(
            f"C(N+I-1, I-1) = {K} outcomes for n_participants={N} and {p.size} types exceed "
            f"{MAX_ENUMERATED}; use sample_outcomes (outcomes='sampled') instead"
        )
    n = _compositions(N, p.size)
    w = multinomial_weights(n, p)
    return OutcomeSpace(counts=n.astype(np.float64), weights=w / w.sum(), exact=True)


def sample_outcomes(
    n_participants: int, prior: ArrayLike, n_samples: int, random_state: RandomState = None
) -> OutcomeSpace:
    """Monte Carlo outcomes: ``n_samples`` multinomial draws, merged into distinct outcomes
    weighted by their frequency.

    Examples
    --------
    >>> space = sample_outcomes(50, [0.5, 0.3, 0.2], n_samples=2000, random_state=0)
    >>> space.exact, space.n_samples, bool(abs(space.weights.sum() - 1) < 1e-12)
    (False, 2000, True)
    """
    N = check_int("n_participants", n_participants, minimum=1)
    p = check_prior(prior)
    S = check_int("n_samples", n_samples, minimum=2)
    rng = check_random_state(random_state)
    draws = rng.multinomial(N, p, size=S)
    unique, freq = np.unique(draws, axis=0, return_counts=True)
    if np.any(freq.astype(np.float64) @ (unique > 0) == 0):
        raise ValueError(
            f"no sampled outcome contains some type (prior {p.round(4).tolist()}); "
            f"raise n_samples (got {S})"
        )
    return OutcomeSpace(
        counts=unique.astype(np.float64), weights=freq / float(S), exact=False, n_samples=S
    )
