r"""Replication defences: find training rows that one party shares with another.

Data is copied for free, so a market must look for the same records submitted under
several identities *before* it settles (Ohrimenko, Tople & Tschiatschek 2019, §3.1,
"robustness to replication"; Agarwal, Dahleh & Sarkar 2019). Two detectors:

* **exact duplicates** — identical feature rows (compared as float64 values, so
  ``-0.0 == 0.0``), found by hashing the pooled rows once;
* **exact duplicates within a party** — a party's rows that repeat one of its own
  earlier rows (reported per party; the service drops repeated rows before valuing
  them, :mod:`coopml.service.domain.datasets`);
* **near duplicates** — rows within ``tolerance`` of a row of another party, measured
  as root-mean-square distance per feature after standardising the pooled data
  (so ``tolerance=0.05`` means "within 5 % of a standard deviation per feature").
  A copy with small added noise is caught; distinct real records almost never are.

Near duplicates come from **one index over all parties' distinct rows**: a k-d tree
(exact: every pair within the radius) or, for many rows, locality-sensitive hashing
with random projections (Datar, Immorlica, Indyk & Mirrokni 2004): each of ``L``
tables hashes a row to :math:`\lfloor (a_i^\top z + b_i) / w \rfloor`,
:math:`i = 1..k`; rows sharing a bucket in some table are candidates and every
candidate is checked exactly, so LSH never reports a false near duplicate but may
miss some. Its recall is then measured against exact search on a random sample of
rows and reported with the sample size, never assumed.

The report's similarity :math:`\mathrm{sim}(X_m, X_j)` — the fraction of party
:math:`m`'s rows with a near duplicate in party :math:`j` — also drives the
similarity-discounted payment rule.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy import sparse
from scipy.spatial import cKDTree
from scipy.stats import beta
from threadpoolctl import threadpool_limits

from coopml._validation import (
    RandomState,
    check_choice,
    check_fraction,
    check_positive,
    check_random_state,
)
from coopml.data import Party, check_parties

__all__ = [
    "EXACT_DIMENSIONS",
    "EXACT_LIMIT",
    "DuplicateReport",
    "find_duplicates",
    "resolve_duplicates",
]

ScreeningMethod = Literal["auto", "exact", "lsh"]

EXACT_LIMIT = 50_000
"""``method="auto"`` searches exactly up to this many distinct rows (a k-d tree)."""
EXACT_DIMENSIONS = 4
"""... and at any size with at most this many features (where k-d trees stay fast)."""

LSH_TABLES = 12
LSH_HASHES = 5
LSH_WIDTH = 4.0  # bucket width w, in units of the radius
RECALL_ROWS = 1_000  # rows sampled to measure the recall of LSH against exact search
_SLACK = 1e-9  # relative: index queries use a slightly larger radius, then check exactly
_CHUNK = 4_000_000  # candidate pairs checked at once (bounds memory)


@dataclass(frozen=True)
class DuplicateReport:
    """Rows that parties share, pair by pair.

    ``exact[m, j]`` (``near[m, j]``) counts the rows of party ``m`` with an exact (near)
    duplicate among party ``j``'s rows; the diagonal is zero. ``within[m]`` counts the
    rows of party ``m`` whose features repeat an earlier row of the same party.

    ``method`` is how near duplicates were searched: ``"exact"`` (every pair within
    the radius; ``near`` is exact) or ``"lsh"`` (``near`` is a lower bound).
    For LSH, ``recall_estimate`` is the fraction of near-duplicate relations (a sampled
    row, another party holding a row within the radius) that exact search finds and
    LSH found too, over ``recall_sample`` such relations in ``recall_rows`` randomly
    sampled distinct rows; ``recall_lower`` is its one-sided 95 % Clopper-Pearson
    lower bound. All are ``None`` (0 for the counts) after exact search, and
    ``recall_estimate`` is ``None`` when the sample held no near duplicate to miss.
    """

    names: tuple[str, ...]
    n_samples: NDArray[np.int64]
    exact: NDArray[np.int64]
    near: NDArray[np.int64]
    tolerance: float
    within: NDArray[np.int64] | None = None
    method: str = "exact"
    recall_estimate: float | None = None
    recall_lower: float | None = None
    recall_sample: int = 0
    recall_rows: int = 0

    @property
    def similarity(self) -> NDArray[np.float64]:
        """``sim[m, j]``: fraction of party ``m``'s rows near-duplicated in party ``j``."""
        return self.near / self.n_samples[:, None]

    @property
    def flagged(self) -> bool:
        """Whether any two parties share a row, or a party repeats one of its rows."""
        return bool(self.near.any()) or (self.within is not None and bool(self.within.any()))

    def within_party(self) -> list[dict[str, Any]]:
        """One record per party that repeats rows of its own."""
        if self.within is None:
            return []
        return [
            {"party": self.names[m], "exact_rows": int(self.within[m])}
            for m in np.flatnonzero(self.within)
        ]

    def pairs(self) -> list[dict[str, Any]]:
        """One record per ordered pair of parties that share rows."""
        out = []
        for m, j in zip(*np.nonzero(self.near), strict=True):
            out.append(
                {
                    "party": self.names[m],
                    "duplicated_in": self.names[j],
                    "exact_rows": int(self.exact[m, j]),
                    "near_rows": int(self.near[m, j]),
                    "fraction": float(self.similarity[m, j]),
                }
            )
        return out

    def screening(self) -> dict[str, Any]:
        """How near duplicates were searched, and the measured recall of LSH."""
        return {
            "method": self.method,
            "recall_estimate": self.recall_estimate,
            "recall_lower": self.recall_lower,
            "recall_sample": self.recall_sample,
            "recall_rows": self.recall_rows,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "tolerance": self.tolerance,
            "flagged": self.flagged,
            "pairs": self.pairs(),
            "within_party": self.within_party(),
            "screening": self.screening(),
        }


def find_duplicates(
    parties: Sequence[Party],
    *,
    tolerance: float = 0.05,
    method: ScreeningMethod = "auto",
    random_state: RandomState = 0,
) -> DuplicateReport:
    """Find exact and near-duplicate training rows across parties, and exact duplicate
    rows within each party.

    The pooled rows are hashed once (exact duplicates within and across parties); one
    index over the distinct rows then finds the pairs within the radius.

    Parameters
    ----------
    parties : list of Party
    tolerance : float, default 0.05
        Near-duplicate radius: RMS distance per standardised feature.
    method : {"auto", "exact", "lsh"}, default "auto"
        ``"exact"``: a k-d tree finds every pair within the radius. ``"lsh"``:
        locality-sensitive hashing proposes candidates, each checked exactly, so no
        false positive but possibly missed near duplicates; its recall is measured
        against exact search on ``RECALL_ROWS`` sampled rows and reported.
        ``"auto"``: exact up to ``EXACT_LIMIT`` distinct rows or at most
        ``EXACT_DIMENSIONS`` features, LSH above. Exact duplicates are always exact.
    random_state : int, numpy.random.Generator or None, default 0
        Seeds the LSH projections and the recall sample (unused by exact search).

    Returns
    -------
    DuplicateReport

    Examples
    --------
    >>> from coopml.data import Party, replicate_party
    >>> rng = np.random.default_rng(0)
    >>> a = Party("a", rng.normal(size=(50, 4)), rng.integers(0, 2, 50))
    >>> b = Party("b", rng.normal(size=(40, 4)), rng.integers(0, 2, 40))
    >>> copy = replicate_party(a, "a_copy", noise=0.01, random_state=0)
    >>> report = find_duplicates([a, b, copy])
    >>> [(p["party"], p["duplicated_in"], p["exact_rows"], p["near_rows"]) for p in report.pairs()]
    [('a', 'a_copy', 0, 50), ('a_copy', 'a', 0, 50)]
    >>> report.method
    'exact'
    >>> lsh = find_duplicates([a, b, copy], method="lsh")
    >>> lsh.method, lsh.recall_estimate, lsh.recall_sample, lsh.recall_rows
    ('lsh', 1.0, 100, 140)
    """
    parties = check_parties(list(parties), task="regression")
    tol = check_positive("tolerance", tolerance)
    rows = _pool(parties, tol)
    graph, screening = _near_graph(rows, _check_method(method), random_state)
    held = rows.membership  # (distinct rows, parties): how many rows each party holds
    present = (held > 0).astype(np.int64)
    exact = (held.T @ present).toarray().astype(np.int64)
    reach = ((present + graph @ present) > 0).astype(np.int64)
    near = (held.T @ reach).toarray().astype(np.int64)
    np.fill_diagonal(exact, 0)
    np.fill_diagonal(near, 0)
    sizes = np.array([p.n_samples for p in parties], dtype=np.int64)
    within = sizes - np.asarray(present.sum(axis=0), dtype=np.int64).ravel()
    names = tuple(p.name for p in parties)
    return DuplicateReport(names, sizes, exact, near, tol, within, **screening)


def resolve_duplicates(
    parties: Sequence[Party],
    action: Literal["drop", "merge"] = "drop",
    *,
    tolerance: float = 0.05,
    merge_fraction: float = 0.5,
    method: ScreeningMethod = "auto",
    random_state: RandomState = 0,
) -> tuple[list[Party], list[dict[str, Any]]]:
    """Remove replicated data before settlement.

    ``"drop"`` removes from each party the rows that near-duplicate rows of a party
    listed *earlier* (first submission wins); a party left with no rows is removed.
    ``"merge"`` folds a party whose rows are at least ``merge_fraction`` near duplicates
    of one earlier party into that party (one identity, one fee), keeping the union of
    their distinct rows. Returns the new parties and a log of what was done; when the
    near duplicates were searched by LSH (``method``, as in :func:`find_duplicates`),
    the log ends with ``{"action": "screened", "method": "lsh", ...}`` and the
    measured recall.

    Examples
    --------
    >>> from coopml.data import Party, replicate_party
    >>> a = Party("a", np.arange(20.0).reshape(10, 2), np.arange(10) % 2)
    >>> kept, log = resolve_duplicates([a, replicate_party(a, "a_copy")])
    >>> [p.name for p in kept], log[0]["action"]
    (['a'], 'removed')
    """
    check_choice("action", action, {"drop", "merge"})
    frac = check_fraction("merge_fraction", merge_fraction, open_low=True)
    parties = check_parties(list(parties), task="regression")
    rows = _pool(parties, check_positive("tolerance", tolerance))
    graph, screening = _near_graph(rows, _check_method(method), random_state)
    n_distinct = rows.Z.shape[0]
    ends = np.cumsum([p.n_samples for p in parties])
    # held[h]: which distinct rows kept party h holds (one mask for all when dropping)
    kept: list[Party] = []
    held: list[NDArray[np.bool_]] = [] if action == "merge" else [np.zeros(n_distinct, bool)]
    log: list[dict[str, Any]] = []
    for party, end in zip(parties, ends, strict=True):
        g = rows.group[end - party.n_samples : end]
        near = graph[g]  # each row's near duplicates (other distinct rows)
        per_host = [mask[g] | ((near @ mask.astype(np.int64)) > 0) for mask in held]
        if action == "merge" and kept:
            best = int(np.argmax([m.mean() for m in per_host]))
            if per_host[best].mean() >= frac:
                host, fresh = kept[best], ~per_host[best]
                kept[best] = Party(
                    host.name,
                    np.concatenate([host.X, party.X[fresh]]),
                    np.concatenate([host.y, party.y[fresh]]),
                    host.X_val,
                    host.y_val,
                    {**host.metadata, "merged": [*host.metadata.get("merged", []), party.name]},
                    feature_names=host.feature_names,
                    allow_missing=host.has_missing or party.has_missing,
                )
                held[best][g[fresh]] = True
                log.append({"party": party.name, "action": "merged", "into": host.name})
                continue
        dup = np.logical_or.reduce(per_host) if per_host else np.zeros(party.n_samples, bool)
        if dup.all():
            log.append({"party": party.name, "action": "removed", "rows_dropped": int(dup.sum())})
            continue
        if dup.any():
            meta = {**party.metadata, "rows_dropped": int(dup.sum())}
            party = Party(
                party.name,
                party.X[~dup],
                party.y[~dup],
                party.X_val,
                party.y_val,
                meta,
                feature_names=party.feature_names,
                allow_missing=party.has_missing,
            )
            log.append(
                {"party": party.name, "action": "dropped_rows", "rows_dropped": int(dup.sum())}
            )
        kept.append(party)
        if action == "merge":
            held.append(np.zeros(n_distinct, bool))
        held[-1][g[~dup]] = True
    if screening["method"] == "lsh":
        log.append({"action": "screened", **screening})
    return kept, log


def _check_method(method: Any) -> ScreeningMethod:
    check_choice("method", method, {"auto", "exact", "lsh"})
    return method


@dataclass(frozen=True)
class _Pool:
    """All parties' rows, deduplicated: ``group[i]`` is the distinct row of pooled row
    ``i`` (party ``owner[i]``); ``Z`` holds the distinct rows standardised with the
    pooled mean and standard deviation; ``radius`` is the near-duplicate radius in
    that space."""

    owner: NDArray[np.intp]
    group: NDArray[np.intp]
    Z: NDArray[np.float64]
    radius: float
    n_parties: int

    @property
    def membership(self) -> sparse.csr_array:
        """``(distinct rows, parties)``: how many rows of each party equal each row."""
        ones = np.ones(self.group.size, dtype=np.int64)
        shape = (self.Z.shape[0], self.n_parties)
        return sparse.csr_array(sparse.coo_array((ones, (self.group, self.owner)), shape=shape))


def _pool(parties: Sequence[Party], tolerance: float) -> _Pool:
    pooled = np.concatenate([p.X for p in parties], dtype=np.float64)
    pooled += 0.0  # canonical float64: -0.0 becomes 0.0
    missing = np.isnan(pooled)
    has_missing = bool(missing.any())
    if has_missing:
        pooled[missing] = np.nan  # one NaN bit pattern: equal rows hash equal
    del missing
    owner = np.repeat(np.arange(len(parties)), [p.n_samples for p in parties])
    group, first = _distinct_rows(pooled)
    mean, std = _mean_std(pooled)
    std[std == 0] = 1.0
    identity = first.size == len(pooled) and bool((first == np.arange(first.size)).all())
    Z = pooled if identity else pooled[first]  # no duplicates: standardise in place
    del pooled
    Z -= mean
    Z /= std
    if has_missing:
        # a missing cell is at its column's mean in the near-duplicate distance (exact
        # duplicates still need the same cells missing)
        np.nan_to_num(Z, copy=False, nan=0.0)
    return _Pool(owner, group, Z, tolerance * np.sqrt(Z.shape[1]), len(parties))


def _mean_std(X: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Column means and standard deviations over the present (non-missing) cells, two
    passes in blocks (no full-size copy)."""
    step = 65_536
    blocks = range(0, len(X), step)
    count = np.maximum(sum((~np.isnan(X[i : i + step])).sum(axis=0) for i in blocks), 1)
    mean = sum(np.nansum(X[i : i + step], axis=0) for i in blocks) / count
    ss = sum(np.nansum((X[i : i + step] - mean) ** 2, axis=0) for i in blocks)
    return np.asarray(mean, dtype=np.float64), np.sqrt(np.asarray(ss, dtype=np.float64) / count)


def _distinct_rows(X: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """``(group, first)``: the distinct row of each row (numbered by first occurrence)
    and the first occurrence of each distinct row. Rows are hashed by value, column by
    column, and every row is then compared with its group's first row, so a hash
    collision cannot merge different rows (it falls back to sorting)."""
    group, uniques = pd.factorize(_row_hash(X))
    first = np.empty(len(uniques), dtype=np.intp)
    first[group[::-1]] = np.arange(X.shape[0] - 1, -1, -1)
    step = 65_536
    if all(_same(X[i : i + step], X[first[group[i : i + step]]]) for i in range(0, len(X), step)):
        return group.astype(np.intp), first
    keys = np.ascontiguousarray(X).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
    _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    return inverse.astype(np.intp), first.astype(np.intp)


def _same(a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
    """Row blocks equal cell by cell, a missing cell equal to a missing cell."""
    return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())


def _row_hash(X: NDArray[Any]) -> NDArray[np.uint64]:
    """A 64-bit hash of each row's bytes (splitmix64 finaliser per column, chained)."""
    h = np.zeros(X.shape[0], dtype=np.uint64)
    for j in range(X.shape[1]):
        x = np.ascontiguousarray(X[:, j]).view(np.uint64) ^ h
        x ^= x >> np.uint64(30)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        h = x
    return h


def _near_graph(
    rows: _Pool, method: ScreeningMethod, random_state: RandomState
) -> tuple[sparse.csr_array, dict[str, Any]]:
    """The symmetric adjacency of distinct rows within the radius (no diagonal), and
    how it was searched."""
    n, d = rows.Z.shape
    if method == "auto":
        method = "exact" if n <= EXACT_LIMIT or d <= EXACT_DIMENSIONS else "lsh"
    if method == "exact":
        return _adjacency(_tree_pairs(rows.Z, rows.radius), n), {"method": "exact"}
    rng = check_random_state(random_state)
    with threadpool_limits(1, user_api="blas"):  # small products; threads only contend
        graph = _adjacency(_lsh_pairs(rows.Z, rows.radius, rng), n)
    return graph, {"method": "lsh", **_recall(rows, graph, rng)}


def _adjacency(pairs: NDArray[np.int64], n: int) -> sparse.csr_array:
    u, v = pairs // n, pairs % n
    ones = np.ones(2 * u.size, dtype=np.int64)
    both = (np.concatenate([u, v]), np.concatenate([v, u]))
    return sparse.csr_array(sparse.coo_array((ones, both), shape=(n, n)))


def _within(
    Z: NDArray[np.float64], u: NDArray[np.intp], v: NDArray[np.intp], radius: float
) -> NDArray[np.int64]:
    """The pairs ``(u, v)``, ``u < v``, within ``radius``, encoded as ``u * n + v``."""
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    out = []
    step = max(1, _CHUNK // (4 * Z.shape[1]))
    for i in range(0, lo.size, step):
        a, b = lo[i : i + step], hi[i : i + step]
        diff = Z[a] - Z[b]
        close = np.sqrt(np.einsum("ij,ij->i", diff, diff)) <= radius
        out.append(a[close].astype(np.int64) * Z.shape[0] + b[close])
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _tree_pairs(
    Z: NDArray[np.float64], radius: float, queries: NDArray[np.intp] | None = None
) -> NDArray[np.int64]:
    """Every pair of distinct rows within ``radius`` (of which one is in ``queries``,
    default all): one k-d tree over all rows."""
    tree = cKDTree(Z, compact_nodes=False, balanced_tree=False)
    everyone = queries is None  # then each pair is met twice: keep u < v
    queries = np.arange(Z.shape[0]) if queries is None else queries
    found = [np.zeros(0, np.int64)]
    step = 8_192
    for start in range(0, queries.size, step):
        u = queries[start : start + step]
        ind = tree.query_ball_point(Z[u], radius * (1 + _SLACK), return_sorted=False)
        counts = np.fromiter(map(len, ind), dtype=np.intp, count=len(ind))
        u = np.repeat(u, counts)
        v = np.concatenate(ind).astype(np.intp)
        keep = u < v if everyone else u != v
        found.append(_within(Z, u[keep], v[keep], radius))
    return np.unique(np.concatenate(found))


def _lsh_pairs(
    Z: NDArray[np.float64], radius: float, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Pairs within ``radius`` that share a bucket in some LSH table (each checked)."""
    d = Z.shape[1]
    width = LSH_WIDTH * radius
    found = [np.zeros(0, np.int64)]
    mix = rng.integers(1, 2**62, size=LSH_HASHES, dtype=np.int64) * 2 + 1
    for _ in range(LSH_TABLES):
        a = rng.normal(size=(d, LSH_HASHES))
        b = rng.uniform(0.0, width, size=LSH_HASHES)
        codes = np.floor((Z @ a + b) / width).astype(np.int64)
        key = codes @ mix  # a linear hash of the bucket: collisions only add candidates
        order = np.argsort(key)
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, key.size])
        shared = sizes > 1  # buckets of two rows or more
        for p, q in _bucket_pairs(starts[shared], sizes[shared]):
            found.append(_within(Z, order[p], order[q], radius))
    return np.unique(np.concatenate(found))


def _bucket_pairs(
    starts: NDArray[np.intp], sizes: NDArray[np.intp]
) -> Iterator[tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """All ``(p, q)``, ``p < q``, in each run ``[start, start + size)``, in blocks of
    about ``_CHUNK`` pairs."""
    if not sizes.size:
        return
    p = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
    after = np.repeat(starts + sizes, sizes) - p - 1  # partners after p in its run
    total = np.cumsum(after)
    cuts = np.searchsorted(total, np.arange(_CHUNK, total[-1] + _CHUNK, _CHUNK), side="right")
    begin = 0
    for stop in np.unique(np.append(cuts, p.size)):
        if stop <= begin:
            continue
        count = after[begin:stop]
        left = np.repeat(p[begin:stop], count)
        offset = np.arange(left.size) - np.repeat(np.cumsum(count) - count, count) + 1
        yield left, left + offset
        begin = stop


def _recall(rows: _Pool, graph: sparse.csr_array, rng: np.random.Generator) -> dict[str, Any]:
    """Recall of ``graph`` against exact search, on a random sample of distinct rows.

    A relation is (sampled row, party other than its holders with a row within the
    radius); exact duplicates are found exactly and do not count."""
    Z, radius = rows.Z, rows.radius
    n = Z.shape[0]
    sample = np.sort(rng.choice(n, size=min(n, RECALL_ROWS), replace=False))
    pairs = _tree_pairs(Z, radius, sample)
    exact_graph = _adjacency(pairs, n)
    everyone = (rows.membership > 0).astype(np.int64)
    holders = everyone[sample].toarray() > 0
    truth = ((exact_graph[sample] @ everyone).toarray() > 0) & ~holders
    found = ((graph[sample] @ everyone).toarray() > 0) & truth
    k, total = int(found.sum()), int(truth.sum())
    estimate = lower = None
    if total:
        estimate = k / total
        lower = float(beta.ppf(0.05, k, total - k + 1)) if k else 0.0
    return {
        "recall_estimate": estimate,
        "recall_lower": lower,
        "recall_sample": total,
        "recall_rows": int(sample.size),
    }
