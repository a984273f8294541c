from __future__ import annotations

from math import factorial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.coalitions.monte_carlo import (
    default_stopping,
    monte_carlo_shapley,
    permutation_marginals,
)
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    StandardErrorBelow,
)

# ---------------------------------------------------------------- reference games


def table_of(value_fn, n):
    return np.array([value_fn(frozenset(i for i in range(n) if m >> i & 1)) for m in range(1 << n)])


def brute_force_shapley(table):
    """phi_i = sum_{S not containing i} |S|! (n - |S| - 1)! / n! (v(S + i) - v(S))."""
    n = int(table.size).bit_length() - 1
    masks = np.arange(table.size)
    sizes = np.array([bin(m).count("1") for m in masks])
    weights = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = np.empty(n)
    for i in range(n):
        without = masks[(masks >> i & 1) == 0]
        phi[i] = np.sum(weights[sizes[without]] * (table[without | 1 << i] - table[without]))
    return phi


def weighted_majority(weights, quota):
    w = np.asarray(weights, dtype=float)
    return lambda s: float(w[list(s)].sum() >= quota)


def airport(costs):
    """Cost game c(S) = max_{i in S} c_i and its Littlechild-Owen Shapley value."""
    c = np.sort(np.asarray(costs, dtype=float))
    n = c.size
    steps = np.diff(c, prepend=0.0) / (n - np.arange(n))  # (c_j - c_{j-1}) / (n - j + 1)
    return (lambda s: float(c[list(s)].max()) if s else 0.0), np.cumsum(steps)


def random_game(n, seed):
    table = np.random.default_rng(seed).normal(size=1 << n)
    table[0] = 0.0
    return (lambda s: float(table[sum(1 << i for i in s)])), table


def within_4_stderr(result, exact):
    return np.all(np.abs(result.values - exact) <= 4 * result.stderr + 1e-12)


# ---------------------------------------------------------------- accuracy


def test_weighted_majority_within_4_stderr():
    value_fn = weighted_majority([5, 4, 3, 3, 2, 2, 1, 1, 1], quota=12)
    exact = brute_force_shapley(table_of(value_fn, 9))
    result = monte_carlo_shapley(value_fn, 9, stopping=MaxPermutations(3000), random_state=0)
    assert within_4_stderr(result, exact)
    assert result.values.sum() == pytest.approx(1.0, abs=1e-12)


def test_airport_game_matches_littlechild_owen():
    value_fn, exact = airport([1, 2, 2, 3, 5, 6, 8, 9, 10, 12, 15, 20])
    result = monte_carlo_shapley(value_fn, 12, stopping=MaxPermutations(3000), random_state=1)
    assert within_4_stderr(result, exact)
    assert np.abs(result.values - exact).max() < 0.15  # exact values are 0.08 .. 8.8


@pytest.mark.parametrize("n", [8, 10])
def test_random_game_within_4_stderr(n):
    value_fn, table = random_game(n, seed=n)
    result = monte_carlo_shapley(value_fn, n, stopping=MaxPermutations(2000), random_state=n)
    assert within_4_stderr(result, brute_force_shapley(table))
    assert result.values.sum() == pytest.approx(table[-1] - table[0], abs=1e-9)


def test_error_shrinks_with_budget():
    value_fn, table = random_game(10, seed=3)
    exact = brute_force_shapley(table)
    errors = [
        np.abs(
            monte_carlo_shapley(value_fn, 10, stopping=MaxPermutations(k), random_state=4).values
            - exact
        ).max()
        for k in (50, 500, 5000)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_additive_game_is_exact_beyond_62_players():
    w = np.random.default_rng(0).random(70)
    result = monte_carlo_shapley(
        lambda s: float(w[list(s)].sum()), 70, stopping=MaxPermutations(4), random_state=0
    )
    np.testing.assert_allclose(result.values, w, atol=1e-12)
    # Four identical marginals cannot prove a constant: the stderr stays honest.
    assert np.all(result.stderr > 0) and np.all(result.stderr < 1)
    with pytest.raises(ValueError, match="may never fire"):  # 2**n_players is an exact int
        monte_carlo_shapley(lambda s: 0.0, 2000, stopping=StandardErrorBelow(1.0))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**16), antithetic=st.booleans())
def test_estimate_is_efficient(n, seed, antithetic):
    value_fn, table = random_game(n, seed)
    table[0] = 0.5
    result = monte_carlo_shapley(
        value_fn, n, stopping=MaxPermutations(6), antithetic=antithetic, random_state=seed
    )
    assert result.values.sum() == pytest.approx(table[-1] - table[0], abs=1e-9)
    assert result.n_evaluations <= 2**n


# ---------------------------------------------------------------- variance, randomness


def test_antithetic_lowers_stderr_on_monotone_game():
    w = np.random.default_rng(5).random(20)

    def value_fn(s):  # saturating, like a learning curve
        return float(1.0 - np.exp(-3.0 * w[list(s)].sum() / w.sum()))

    runs = {
        a: monte_carlo_shapley(
            value_fn, 20, stopping=MaxEvaluations(6000), antithetic=a, random_state=0
        )
        for a in (True, False)
    }
    assert abs(runs[True].n_evaluations - runs[False].n_evaluations) < 300
    assert runs[True].stderr.mean() < 0.7 * runs[False].stderr.mean()  # measured: 0.48


def test_same_seed_same_values_and_seeds_differ():
    value_fn, _ = random_game(8, seed=0)
    run = [
        monte_carlo_shapley(value_fn, 8, stopping=MaxPermutations(200), random_state=s)
        for s in (7, 7, 8)
    ]
    np.testing.assert_array_equal(run[0].values, run[1].values)
    np.testing.assert_array_equal(run[0].stderr, run[1].stderr)
    assert not np.array_equal(run[0].values, run[2].values)


def test_generator_random_state_advances():
    value_fn, _ = random_game(6, seed=0)
    rng = np.random.default_rng(0)
    a = monte_carlo_shapley(value_fn, 6, stopping=MaxPermutations(40), random_state=rng)
    b = monte_carlo_shapley(value_fn, 6, stopping=MaxPermutations(40), random_state=rng)
    c = monte_carlo_shapley(value_fn, 6, stopping=MaxPermutations(40), random_state=0)
    assert not np.array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.values, c.values)


def test_n_jobs_does_not_change_the_result():
    w = np.arange(1.0, 15.0)

    def value_fn(s):
        return float(np.log1p(w[list(s)].sum()))

    kwargs = {"stopping": MaxPermutations(300), "batch_size": 50, "random_state": 3}
    serial = monte_carlo_shapley(value_fn, 14, n_jobs=1, **kwargs)
    parallel = monte_carlo_shapley(value_fn, 14, n_jobs=2, **kwargs)
    np.testing.assert_array_equal(serial.values, parallel.values)
    np.testing.assert_array_equal(serial.stderr, parallel.stderr)
    assert serial.n_evaluations == parallel.n_evaluations
    assert serial.info == parallel.info


# ---------------------------------------------------------------- utility-object path


class FakeUtility:
    """Bitmask utility that records every call."""

    def __init__(self, n, seed=0):
        self.n_players = n
        self.names = tuple(f"p{i}" for i in range(n))
        self.value_fn, self.table = random_game(n, seed)
        self.calls = []

    def evaluate_masks(self, masks):
        assert masks.dtype == np.int64
        self.calls.append(masks.copy())
        return self.table[masks]


def test_utility_path_memoises_and_batches():
    utility = FakeUtility(9)
    result = monte_carlo_shapley(
        utility, stopping=MaxPermutations(400), batch_size=20, random_state=2
    )
    evaluated = np.concatenate(utility.calls)
    assert evaluated.size == np.unique(evaluated).size == result.n_evaluations
    assert len(utility.calls) <= result.info["n_permutations"] // 40  # <= one call per batch
    assert result.names == utility.names
    same = monte_carlo_shapley(
        utility.value_fn, 9, stopping=MaxPermutations(400), batch_size=20, random_state=2
    )
    np.testing.assert_array_equal(result.values, same.values)
    assert within_4_stderr(result, brute_force_shapley(utility.table))


def test_memoisation_saturates_at_all_coalitions():
    utility = FakeUtility(4)
    result = monte_carlo_shapley(utility, stopping=MaxPermutations(500), random_state=0)
    assert result.n_evaluations == 16
    assert np.concatenate(utility.calls).size == 16


def test_max_evaluations_counts_distinct_coalitions():
    utility = FakeUtility(12)
    result = monte_carlo_shapley(
        utility, stopping=MaxEvaluations(500), batch_size=4, random_state=0
    )
    assert 500 - 2 * 12 < result.n_evaluations <= 500  # never overrun
    assert result.info["stopped_by"] == "MaxEvaluations(500)"


# ---------------------------------------------------------------- result and stopping


def test_result_fields_and_default_stopping():
    value_fn, _ = random_game(5, seed=1)
    result = monte_carlo_shapley(value_fn, 5, random_state=0, names="abcde")
    assert result.method == "monte_carlo_shapley"
    assert result.names == tuple("abcde")
    assert set(result.info) == {
        "n_permutations",
        "n_samples",
        "stopped_by",
        "antithetic",
        "n_failures",
        "failures",
    }
    assert result.info["n_permutations"] == 2 * result.info["n_samples"]
    assert result.info["stopped_by"] in str(default_stopping())
    assert result.converged == ("StandardErrorBelow" in result.info["stopped_by"])
    assert result.to_dataframe().shape == (5, 3)


def test_convergence_rule_sets_converged():
    value_fn, _ = random_game(6, seed=1)
    rule = MaxPermutations(10_000) | StandardErrorBelow(0.5)
    result = monte_carlo_shapley(value_fn, 6, stopping=rule, batch_size=2, random_state=0)
    assert result.converged
    assert result.info["stopped_by"] == "StandardErrorBelow(0.5)"
    assert np.all(result.stderr <= 0.5)
    assert result.info["n_samples"] >= 8  # never before min_samples

    budget = monte_carlo_shapley(value_fn, 6, stopping=MaxPermutations(20), random_state=0)
    assert not budget.converged


def test_single_sample_has_a_finite_stderr():
    result = monte_carlo_shapley(
        lambda s: float(len(s) ** 2), 3, stopping=MaxPermutations(1), antithetic=False
    )
    assert np.all(np.isfinite(result.stderr)) and np.all(result.stderr > 0)
    assert result.info["n_permutations"] == 1


def test_never_pivotal_players_keep_an_honest_stderr():
    # A 30-player voting game: at 40 permutations most small players are never pivotal,
    # and the textbook standard error would be exactly 0 for them.
    weights = np.r_[np.full(3, 10.0), np.ones(27)]
    vote = lambda s: float(weights[list(s)].sum() >= 29)  # noqa: E731
    result = monte_carlo_shapley(vote, 30, stopping=MaxPermutations(40), random_state=1)
    assert np.all(result.stderr > 0)
    zero = result.values == 0
    assert zero.any() and np.all(1.96 * result.stderr[zero] > 1 / 40)


def test_max_time_stops_slow_value_fn():
    import time

    def slow(s):
        time.sleep(0.002)
        return float(len(s) ** 2)

    start = time.perf_counter()
    result = monte_carlo_shapley(
        slow, 30, stopping=MaxTime(0.2) | MaxPermutations(10**6), batch_size=1, random_state=0
    )
    assert time.perf_counter() - start < 1.0
    assert result.info["stopped_by"] == "MaxTime(0.2)"
    assert not result.converged


def test_callers_rule_is_not_mutated():
    from coopml.coalitions.stopping import RankStable

    rule = RankStable(3) | MaxPermutations(100)
    value_fn, _ = random_game(5, seed=0)
    monte_carlo_shapley(value_fn, 5, stopping=rule, batch_size=2, random_state=0)
    assert rule.left._streak == 0


# ---------------------------------------------------------------- permutation_marginals


def test_permutation_marginals_rows_sum_to_grand_value():
    value_fn, table = random_game(6, seed=9)
    perms = np.array([np.random.default_rng(i).permutation(6) for i in range(5)])
    marginals = permutation_marginals(value_fn, 6, perms)
    np.testing.assert_allclose(marginals.sum(axis=1), table[-1] - table[0], atol=1e-12)
    # player perms[r, 0] contributes v({it})
    for r in range(5):
        assert marginals[r, perms[r, 0]] == table[1 << perms[r, 0]]


@pytest.mark.parametrize(
    "perms", [[[0, 1, 1]], [[0, 1]], [0, 1, 2], [[0.0, 1.0, 2.0]], [[0, 1, 3]]]
)
def test_permutation_marginals_rejects_bad_permutations(perms):
    with pytest.raises(ValueError, match=r"orderings of 0\.\.2"):
        permutation_marginals(lambda s: 0.0, 3, perms)


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs():
    value_fn = weighted_majority([1, 1, 1], 2)
    with pytest.raises(TypeError, match="'n_players' is required"):
        monte_carlo_shapley(value_fn)
    with pytest.raises(ValueError, match="'n_players' must be >= 1; got 0"):
        monte_carlo_shapley(value_fn, 0)
    with pytest.raises(TypeError, match="'value_fn_or_utility' must be a callable"):
        monte_carlo_shapley([1, 2, 3], 3)
    with pytest.raises(TypeError, match="'stopping' must be a StoppingRule"):
        monte_carlo_shapley(value_fn, 3, stopping=100)
    with pytest.raises(ValueError, match="'stopping' may never fire"):
        monte_carlo_shapley(value_fn, 3, stopping=StandardErrorBelow(0.01))
    with pytest.raises(ValueError, match=r"at most 2\*\*n_players"):
        monte_carlo_shapley(value_fn, 3, stopping=MaxEvaluations(9))
    with pytest.raises(ValueError, match="may never fire"):
        monte_carlo_shapley(value_fn, 3, stopping=MaxTime(1) & StandardErrorBelow(0.1))
    with pytest.raises(ValueError, match="'batch_size' must be >= 1; got 0"):
        monte_carlo_shapley(value_fn, 3, batch_size=0)
    with pytest.raises(ValueError, match="'n_jobs' must be >= 1; got 0"):
        monte_carlo_shapley(value_fn, 3, n_jobs=0)
    with pytest.raises(TypeError, match="'antithetic' must be a bool"):
        monte_carlo_shapley(value_fn, 3, antithetic="yes")
    with pytest.raises(ValueError, match="'names' must have 3 entries; got 2"):
        monte_carlo_shapley(value_fn, 3, names=["a", "b"])
    with pytest.raises(ValueError, match="'random_state' must be a non-negative"):
        monte_carlo_shapley(value_fn, 3, random_state=-1)


def test_bad_utilities_and_values():
    with pytest.raises(ValueError, match="must be finite"):
        monte_carlo_shapley(lambda s: np.nan if len(s) == 2 else 1.0, 3, random_state=0)
    utility = FakeUtility(4)
    with pytest.raises(ValueError, match="equal the utility's n_players \\(4\\)"):
        monte_carlo_shapley(utility, 5)
    utility = FakeUtility(4)
    utility.evaluate_masks = lambda masks: np.zeros(1)
    with pytest.raises(ValueError, match=r"evaluate_masks must return shape \(\d+,\)"):
        monte_carlo_shapley(utility, random_state=0)
