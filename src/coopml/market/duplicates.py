r"""Replication defences: find training rows that one party shares with another.

Data is copied for free, so a market must look for the same records submitted under
several identities *before* it settles (Ohrimenko, Tople & Tschiatschek 2019, §3.1,
"robustness to replication"; Agarwal, Dahleh & Sarkar 2019). Two detectors:

* **exact duplicates** — identical feature rows, found by hashing rows;
* **exact duplicates within a party** — a party's rows that repeat one of its own
  earlier rows (reported per party; the service drops repeated rows before valuing
  them, :mod:`coopml.service.domain.datasets`);
* **near duplicates** — rows within ``tolerance`` of a row of another party, measured
  as root-mean-square distance per feature after standardising the pooled data
  (so ``tolerance=0.05`` means "within 5 % of a standard deviation per feature").
  A copy with small added noise is caught; distinct real records almost never are.

The report's similarity :math:`\mathrm{sim}(X_m, X_j)` — the fraction of party
:math:`m`'s rows with a near duplicate in party :math:`j` — also drives the
similarity-discounted payment rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.neighbors import NearestNeighbors

from coopml._validation import check_choice, check_fraction, check_positive
from coopml.data import Party, check_parties

__all__ = ["DuplicateReport", "find_duplicates", "resolve_duplicates"]


@dataclass(frozen=True)
class DuplicateReport:
    """Rows that parties share, pair by pair.

    ``exact[m, j]`` (``near[m, j]``) counts the rows of party ``m`` with an exact (near)
    duplicate among party ``j``'s rows; the diagonal is zero. ``within[m]`` counts the
    rows of party ``m`` whose features repeat an earlier row of the same party.
    """

    names: tuple[str, ...]
    n_samples: NDArray[np.int64]
    exact: NDArray[np.int64]
    near: NDArray[np.int64]
    tolerance: float
    within: NDArray[np.int64] | None = None

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

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "tolerance": self.tolerance,
            "flagged": self.flagged,
            "pairs": self.pairs(),
            "within_party": self.within_party(),
        }


def find_duplicates(parties: Sequence[Party], *, tolerance: float = 0.05) -> DuplicateReport:
    """Find exact and near-duplicate training rows across parties, and exact duplicate
    rows within each party.

    Parameters
    ----------
    parties : list of Party
    tolerance : float, default 0.05
        Near-duplicate radius: RMS distance per standardised feature.

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
    """
    parties = check_parties(list(parties), task="regression")
    tol = check_positive("tolerance", tolerance)
    n = len(parties)
    scaled, radius = _standardise(parties, tol)
    keys = [_row_keys(p.X) for p in parties]
    exact = np.zeros((n, n), dtype=np.int64)
    near = np.zeros((n, n), dtype=np.int64)
    for j in range(n):
        for m in range(n):
            if m != j:
                exact[m, j] = np.isin(keys[m], keys[j]).sum()
                near[m, j] = _near_mask(scaled[j], scaled[m], radius).sum()
    near = np.maximum(near, exact)
    sizes = np.array([p.n_samples for p in parties], dtype=np.int64)
    within = np.array([k.size - np.unique(k).size for k in keys], dtype=np.int64)
    return DuplicateReport(tuple(p.name for p in parties), sizes, exact, near, tol, within)


def resolve_duplicates(
    parties: Sequence[Party],
    action: Literal["drop", "merge"] = "drop",
    *,
    tolerance: float = 0.05,
    merge_fraction: float = 0.5,
) -> tuple[list[Party], list[dict[str, Any]]]:
    """Remove replicated data before settlement.

    ``"drop"`` removes from each party the rows that near-duplicate rows of a party
    listed *earlier* (first submission wins); a party left with no rows is removed.
    ``"merge"`` folds a party whose rows are at least ``merge_fraction`` near duplicates
    of one earlier party into that party (one identity, one fee), keeping the union of
    their distinct rows. Returns the new parties and a log of what was done.

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
    scaled, radius = _standardise(parties, check_positive("tolerance", tolerance))
    kept: list[tuple[Party, NDArray[np.float64]]] = []
    log: list[dict[str, Any]] = []
    for party, Z in zip(parties, scaled, strict=True):
        per_host = [_near_mask(Z_host, Z, radius) for _, Z_host in kept]
        if action == "merge" and kept:
            best = int(np.argmax([m.mean() for m in per_host]))
            if per_host[best].mean() >= frac:
                host, Z_host = kept[best]
                fresh = ~per_host[best]
                merged = Party(
                    host.name,
                    np.concatenate([host.X, party.X[fresh]]),
                    np.concatenate([host.y, party.y[fresh]]),
                    host.X_val,
                    host.y_val,
                    {**host.metadata, "merged": [*host.metadata.get("merged", []), party.name]},
                )
                kept[best] = (merged, np.concatenate([Z_host, Z[fresh]]))
                log.append({"party": party.name, "action": "merged", "into": host.name})
                continue
        dup = np.logical_or.reduce(per_host) if per_host else np.zeros(party.n_samples, bool)
        if dup.all():
            log.append({"party": party.name, "action": "removed", "rows_dropped": int(dup.sum())})
            continue
        if dup.any():
            meta = {**party.metadata, "rows_dropped": int(dup.sum())}
            party = Party(party.name, party.X[~dup], party.y[~dup], party.X_val, party.y_val, meta)
            log.append(
                {"party": party.name, "action": "dropped_rows", "rows_dropped": int(dup.sum())}
            )
        kept.append((party, Z[~dup]))
    return [p for p, _ in kept], log


def _row_keys(X: NDArray[np.float64]) -> NDArray[Any]:
    rows = np.ascontiguousarray(X)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def _standardise(
    parties: Sequence[Party], tolerance: float
) -> tuple[list[NDArray[np.float64]], float]:
    """Each party's rows standardised with the pooled mean and std, and the radius."""
    pooled = np.concatenate([p.X for p in parties])
    std = pooled.std(axis=0)
    std[std == 0] = 1.0
    mean = pooled.mean(axis=0)
    return [(p.X - mean) / std for p in parties], tolerance * np.sqrt(pooled.shape[1])


def _near_mask(
    reference: NDArray[np.float64], rows: NDArray[np.float64], radius: float
) -> NDArray[np.bool_]:
    """Which of ``rows`` lie within ``radius`` of some row of ``reference``."""
    distance, _ = NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(rows)
    return np.asarray(distance[:, 0] <= radius)
