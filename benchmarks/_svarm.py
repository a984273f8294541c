r"""Prototype (benchmarks only, not coopml API): stratified SVARM Shapley estimator.

Kolpaczki, Bengs, Muschalik & Hüllermeier, "Approximating the Shapley value without
marginal contributions", AAAI 2024. With

.. math::

    \varphi_i = \frac1n \sum_{\ell=0}^{n-1} \bigl(\varphi^+_{i,\ell} - \varphi^-_{i,\ell}\bigr),

:math:`\varphi^+_{i,\ell}` the mean of :math:`v(A)` over coalitions :math:`A \ni i` of
size :math:`\ell + 1` and :math:`\varphi^-_{i,\ell}` the mean over :math:`A \not\ni i`
of size :math:`\ell`, *one* evaluation of a sampled coalition of size :math:`s` updates
a stratum of every player (``+`` for its members, ``-`` for the others), instead of
one marginal of one player. Sizes 0, 1, n-1 and n are evaluated exactly (2n + 2
coalitions); a warm-up gives every other stratum one sample (partitions of a random
permutation into blocks of the size, or complements of such blocks); then sizes
:math:`s \in [2, n-2]` are drawn with probability proportional to
:math:`1/s + 1/(n-s)` and coalitions uniformly within a size. This is a sketch written
to measure the idea on the Monte Carlo benchmark; it has no standard errors or
stopping rules.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray


def stratified_svarm(
    evaluate: Callable[[NDArray[np.int64]], NDArray[np.float64]],
    n: int,
    budget: int,
    seed: int,
    batch: int = 256,
    record: Callable[[int, NDArray[np.float64]], None] | None = None,
) -> NDArray[np.float64]:
    """Estimate Shapley values with about ``budget`` distinct evaluations.

    ``evaluate(masks)`` returns the values of int64 bitmasks; distinct coalitions are
    memoised here, and ``record(n_distinct, estimate)`` is called after every batch.
    """
    rng = np.random.default_rng(seed)
    bits = np.int64(1) << np.arange(n, dtype=np.int64)
    full = np.int64((1 << n) - 1)
    cache: dict[int, float] = {}

    def values(masks: NDArray[np.int64]) -> NDArray[np.float64]:
        new = np.array(sorted({int(m) for m in masks.tolist()} - cache.keys()), dtype=np.int64)
        if new.size:
            cache.update(zip(new.tolist(), evaluate(new).tolist(), strict=True))
        return np.array([cache[int(m)] for m in masks.tolist()])

    sums = np.zeros((2, n, n))  # [plus/minus, player, ell]
    counts = np.zeros((2, n, n))

    def members_of(masks: NDArray[np.int64]) -> NDArray[np.bool_]:
        return ((masks[:, None] >> np.arange(n)) & 1).astype(bool)

    def add(masks: NDArray[np.int64]) -> None:
        v = values(masks)
        member = members_of(masks)
        size = member.sum(axis=1)
        b, i = np.nonzero(member)
        np.add.at(sums[0], (i, size[b] - 1), v[b])
        np.add.at(counts[0], (i, size[b] - 1), 1)
        b, i = np.nonzero(~member)
        np.add.at(sums[1], (i, size[b]), v[b])
        np.add.at(counts[1], (i, size[b]), 1)

    # exact sizes 0, 1, n - 1, n
    add(np.concatenate([[np.int64(0), full], bits, full ^ bits]))
    # warm-up: every stratum of sizes 2 .. n-2 gets a sample
    for s in range(2, n - 1):
        k = min(s, n - s)
        perm = rng.permutation(n)
        blocks = [perm[j : j + k] for j in range(0, n - n % k, k)]
        if n % k:
            blocks.append(perm[-k:])
        masks = np.array([bits[blk].sum() for blk in blocks], dtype=np.int64)
        add(masks if k == s else full ^ masks)
    sizes = np.arange(2, n - 1)
    p = 1.0 / sizes + 1.0 / (n - sizes)
    p /= p.sum()

    def estimate() -> NDArray[np.float64]:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return np.asarray(np.nansum(means[0] - means[1], axis=1) / n)

    if record is not None:
        record(len(cache), estimate())
    while len(cache) < budget:
        draw = rng.choice(sizes, size=batch, p=p)
        keys = rng.random((batch, n)).argsort(axis=1)  # uniform subsets of each size
        member = keys < draw[:, None]
        add((member * bits).sum(axis=1).astype(np.int64))
        if record is not None:
            record(len(cache), estimate())
    return estimate()
