from __future__ import annotations

from itertools import product

import numpy as np
import pytest
from scipy.stats import multinomial

from coopml.contracts import (
    compositions,
    enumerate_outcomes,
    multinomial_weights,
    n_compositions,
    sample_outcomes,
)


@pytest.mark.parametrize(("N", "I"), [(1, 1), (3, 2), (5, 3), (4, 4), (10, 5)])
def test_compositions_match_brute_force(N, I):
    comps = compositions(N, I)
    brute = sorted(c for c in product(range(N + 1), repeat=I) if sum(c) == N)
    assert [tuple(r) for r in comps.tolist()] == brute
    assert comps.shape == (n_compositions(N, I), I)


def test_weights_match_scipy_and_sum_to_one():
    n = compositions(7, 3)
    p = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(multinomial_weights(n, p), multinomial.pmf(n, 7, p), rtol=1e-12)
    space = enumerate_outcomes(7, [5, 3, 2])  # normalised
    assert space.weights.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(space.presence, 1 - (1 - p) ** 7, rtol=1e-12)


def test_conditional_expectations_by_brute_force():
    space = enumerate_outcomes(4, [0.6, 0.4])
    g = space.counts @ np.array([1.0, 3.0])
    for i in range(2):
        mask = space.counts[:, i] > 0
        expected = (space.weights[mask] * g[mask]).sum() / space.weights[mask].sum()
        assert space.conditional_expectations(g)[i] == pytest.approx(expected)
    assert space.stderr(g)[0] == 0.0


def test_sampled_space_estimates_with_error_bars():
    exact = enumerate_outcomes(12, [0.5, 0.3, 0.2])
    sampled = sample_outcomes(12, [0.5, 0.3, 0.2], n_samples=20_000, random_state=1)
    m = np.array([100.0, 200.0, 400.0])
    g_exact = np.sqrt(exact.counts @ m)
    g = np.sqrt(sampled.counts @ m)
    se, se_cond = sampled.stderr(g)
    assert abs(sampled.expectation(g) - exact.expectation(g_exact)) < 4 * se
    diff = np.abs(sampled.conditional_expectations(g) - exact.conditional_expectations(g_exact))
    assert np.all(diff < 4 * se_cond)
    assert not sampled.exact and sampled.n_samples == 20_000


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: enumerate_outcomes(0, [1.0]), "parameter 'n_participants' must be >= 1; got 0"),
        (lambda: enumerate_outcomes(3, [0.5, 0.0]), "parameter 'prior' must hold finite prob"),
        (lambda: enumerate_outcomes(3, [[0.5]]), "parameter 'prior' must have a non-empty"),
        (lambda: enumerate_outcomes(200, [0.1] * 10), "use sample_outcomes"),
        (lambda: sample_outcomes(3, [0.5, 0.5], n_samples=1), "parameter 'n_samples' must be >= 2"),
    ],
)
def test_bad_outcome_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
