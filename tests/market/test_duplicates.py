"""Duplicate screening: row hashes, one index over all parties, and LSH with its recall,
cross-checked against a slow brute-force reference (the pairwise semantics of old)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

from coopml.data import Party
from coopml.market import duplicates as dup_module
from coopml.market import find_duplicates, resolve_duplicates


def _reference_scaled(parties: list[Party], tolerance: float) -> tuple[list[Any], float]:
    pooled = np.concatenate([p.X for p in parties])
    std = pooled.std(axis=0)
    std[std == 0] = 1.0
    mean = pooled.mean(axis=0)
    return [(p.X - mean) / std for p in parties], tolerance * np.sqrt(pooled.shape[1])


def _reference_near(reference: Any, rows: Any, radius: float) -> Any:
    return cdist(rows, reference).min(axis=1) <= radius


def reference_duplicates(parties: list[Party], tolerance: float = 0.05) -> dict[str, Any]:
    """The screening's semantics, pair by pair and by brute force (slow)."""
    n = len(parties)
    scaled, radius = _reference_scaled(parties, tolerance)
    rows = [[tuple(r) for r in p.X + 0.0] for p in parties]
    held = [set(r) for r in rows]
    exact = np.zeros((n, n), np.int64)
    near = np.zeros((n, n), np.int64)
    for m in range(n):
        for j in range(n):
            if m != j:
                exact[m, j] = sum(r in held[j] for r in rows[m])
                near[m, j] = _reference_near(scaled[j], scaled[m], radius).sum()
    within = np.array([len(r) - len(set(r)) for r in rows])
    return {"exact": exact, "near": near, "within": within}


def reference_resolve(
    parties: list[Party], action: str, tolerance: float = 0.05, merge_fraction: float = 0.5
) -> tuple[list[tuple[str, int]], list[dict[str, Any]]]:
    """The first-submission-wins rules with one brute-force query per kept party."""
    scaled, radius = _reference_scaled(parties, tolerance)
    kept: list[list[Any]] = []  # [name, n_rows, scaled rows]
    log: list[dict[str, Any]] = []
    for party, Z in zip(parties, scaled, strict=True):
        per_host = [_reference_near(host[2], Z, radius) for host in kept]
        if action == "merge" and kept:
            best = int(np.argmax([m.mean() for m in per_host]))
            if per_host[best].mean() >= merge_fraction:
                fresh = ~per_host[best]
                kept[best] = [
                    kept[best][0],
                    kept[best][1] + fresh.sum(),
                    np.vstack([kept[best][2], Z[fresh]]),
                ]
                log.append({"party": party.name, "action": "merged", "into": kept[best][0]})
                continue
        dup = np.logical_or.reduce(per_host) if per_host else np.zeros(len(Z), bool)
        if dup.all():
            log.append({"party": party.name, "action": "removed", "rows_dropped": int(dup.sum())})
            continue
        if dup.any():
            log.append(
                {"party": party.name, "action": "dropped_rows", "rows_dropped": int(dup.sum())}
            )
        kept.append([party.name, int((~dup).sum()), Z[~dup]])
    return [(name, int(size)) for name, size, _ in kept], log


def _assert_same(report: Any, reference: dict[str, Any]) -> None:
    np.testing.assert_array_equal(report.exact, reference["exact"])
    np.testing.assert_array_equal(report.near, reference["near"])
    np.testing.assert_array_equal(report.within, reference["within"])


def _replicated_market(n: int, d: int, seed: int, noise: float) -> list[Party]:
    """Three honest parties, a noisy copy of half of party a, an exact copy of part of b."""
    rng = np.random.default_rng(seed)
    honest = [rng.normal(size=(n, d)) for _ in range(3)]
    copy = honest[0][: n // 2] + rng.normal(scale=noise, size=(n // 2, d))
    exact = np.vstack([honest[1][: n // 4], rng.normal(size=(n // 4, d))])
    blocks = [*honest, copy, exact]
    return [
        Party(name, X, rng.integers(0, 2, len(X))) for name, X in zip("abcde", blocks, strict=True)
    ]


def test_exact_duplicates_are_hashed_by_value_within_and_across_parties() -> None:
    a = Party("a", [[0.0, 1.0], [2.0, 3.0], [2.0, 3.0], [-0.0, 1.0], [5.0, 5.0]], [0, 1, 0, 1, 0])
    b = Party("b", [[0.0, 1.0], [7.0, 8.0], [7.0, 8.0], [7.0, 8.0]], [1, 0, 1, 0])
    c = Party("c", [[2.0, 3.0], [9.0, 9.5]], [0, 1])
    report = find_duplicates([a, b, c], method="exact")
    # -0.0 equals 0.0: a holds [0, 1] twice, [2, 3] twice; b holds [7, 8] three times
    np.testing.assert_array_equal(report.within, [2, 2, 0])
    np.testing.assert_array_equal(report.exact, [[0, 2, 2], [1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(report.near, report.exact)
    assert report.within_party() == [
        {"party": "a", "exact_rows": 2},
        {"party": "b", "exact_rows": 2},
    ]
    _assert_same(report, reference_duplicates([a, b, c]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4),
    d=st.integers(1, 5),
    tolerance=st.sampled_from([0.01, 0.05, 0.2, 0.5]),
)
def test_index_screening_equals_brute_force(
    seed: int, sizes: list[int], d: int, tolerance: float
) -> None:
    rng = np.random.default_rng(seed)
    base = np.round(rng.normal(size=(8, d)), 1)  # few distinct values: exact duplicates
    parties = []
    for i, size in enumerate(sizes):
        X = base[rng.integers(0, len(base), size)]
        X = X + rng.choice([0.0, 0.001, 0.05, 0.3], size=(size, 1)) * rng.normal(size=(size, d))
        parties.append(Party(f"p{i}", X, rng.integers(0, 2, size)))
    _assert_same(
        find_duplicates(parties, tolerance=tolerance), reference_duplicates(parties, tolerance)
    )
    for action in ("drop", "merge"):
        kept, log = resolve_duplicates(parties, action, tolerance=tolerance)
        assert ([(p.name, p.n_samples) for p in kept], log) == reference_resolve(
            parties, action, tolerance
        )


def test_tolerance_is_rms_distance_per_standardised_feature() -> None:
    # pooled std of every feature is 1 by construction; probes at 0.9 and 1.1 radius
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    step = 0.05 * np.sqrt(4) * np.array([0.9, 1.1])[:, None] * np.array([[1.0, 0, 0, 0]])
    base = Party("base", X, np.arange(400) % 2)
    probes = Party("probe", X[:2] + step, [0, 1])
    for method in ("exact", "lsh"):
        report = find_duplicates([base, probes], method=method)
        assert report.near[1, 0] == 1 and report.exact[1, 0] == 0


def test_index_screening_on_replicated_market_equals_brute_force() -> None:
    parties = _replicated_market(600, 6, seed=1, noise=0.02)
    report = find_duplicates(parties, method="exact")
    _assert_same(report, reference_duplicates(parties))
    assert report.near[3, 0] == 300 and report.exact[4, 1] == 150
    for action in ("drop", "merge"):
        kept, log = resolve_duplicates(parties, action)
        assert ([(p.name, p.n_samples) for p in kept], log) == reference_resolve(parties, action)


def test_lsh_reports_recall_measured_against_exact_search() -> None:
    parties = _replicated_market(600, 20, seed=2, noise=0.02)
    exact = find_duplicates(parties, method="exact")
    lsh = find_duplicates(parties, method="lsh")
    assert exact.method == "exact" and exact.recall_estimate is None and exact.recall_rows == 0
    np.testing.assert_array_equal(lsh.exact, exact.exact)
    np.testing.assert_array_equal(lsh.within, exact.within)
    assert (lsh.near <= exact.near).all()  # LSH checks every candidate: never a false one
    assert lsh.method == "lsh" and lsh.recall_rows == 1_000 and lsh.recall_sample > 0
    assert lsh.recall_estimate is not None and lsh.recall_lower is not None
    assert lsh.recall_lower <= lsh.recall_estimate <= 1.0
    assert lsh.to_dict()["screening"]["method"] == "lsh"


def test_lsh_recall_is_the_true_recall_when_every_row_is_sampled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # one table of many hashes misses pairs near the radius; the report must say so
    monkeypatch.setattr(dup_module, "LSH_TABLES", 1)
    monkeypatch.setattr(dup_module, "LSH_HASHES", 12)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 8))
    direction = rng.normal(size=(300, 8))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    radius = 0.05 * np.sqrt(8) * X.std()
    copy = X + direction * radius * rng.uniform(0.5, 0.95, size=(300, 1))
    parties = [Party("a", X, np.arange(300) % 2), Party("b", copy, np.arange(300) % 2)]
    exact = find_duplicates(parties, method="exact")
    lsh = find_duplicates(parties, method="lsh", random_state=0)
    truth = reference_duplicates(parties)["near"]
    np.testing.assert_array_equal(exact.near, truth)
    assert lsh.recall_rows == 600 and lsh.recall_sample == truth.sum()
    assert lsh.recall_estimate == pytest.approx(lsh.near.sum() / truth.sum())
    assert lsh.recall_estimate is not None and lsh.recall_estimate < 1.0


def test_auto_searches_exactly_up_to_the_limit_then_by_lsh(monkeypatch: pytest.MonkeyPatch) -> None:
    parties = _replicated_market(200, 6, seed=4, noise=0.02)
    assert find_duplicates(parties).method == "exact"
    monkeypatch.setattr(dup_module, "EXACT_LIMIT", 100)
    report = find_duplicates(parties)
    assert report.method == "lsh" and report.recall_sample > 0
    kept, log = resolve_duplicates(parties)
    assert log[-1]["action"] == "screened" and log[-1]["method"] == "lsh"
    assert [p.name for p in kept] == ["a", "b", "c", "e"]  # d only copies a


def test_bad_method_is_named() -> None:
    a = Party("a", [[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match=r"parameter 'method' must be one of .*got 'kd'"):
        find_duplicates([a], method="kd")  # type: ignore[arg-type]


def test_missing_values_are_screened_not_refused():
    """Rows with missing cells (a [preprocessing] impute job) are screened: equal rows
    with the same cells missing are exact duplicates; a missing cell sits at its
    column's mean in the near-duplicate distance; drop and merge keep them."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    X[::7, 1] = np.nan
    a = Party("a", X, rng.integers(0, 2, 40), allow_missing=True)
    copy = Party("copy", X[:10].copy(), a.y[:10], allow_missing=True)
    other = Party("other", rng.normal(size=(30, 3)) + 50, rng.integers(0, 2, 30))
    report = find_duplicates([a, copy, other])
    assert report.exact[1, 0] == 10  # every row of copy, NaN rows included, is in a
    assert report.exact[2, 0] == 0.0 and report.near[2, 0] == 0.0
    for action in ("drop", "merge"):
        kept, _ = resolve_duplicates([a, copy, other], action)
        assert [p.name for p in kept] == ["a", "other"]
        assert np.isnan(kept[0].X).sum() == np.isnan(X).sum()
