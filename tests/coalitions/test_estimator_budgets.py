"""Every estimator: budgets are kept, any number of players, honest errors at the limits."""

from __future__ import annotations

import time

import numpy as np
import pytest

from coopml._bitmask import decode_masks
from coopml.coalitions import (
    MaxEvaluations,
    MaxPermutations,
    monte_carlo_shapley,
    msr_banzhaf,
    stratified_shapley,
    svarm_shapley,
)

ESTIMATORS = {
    "monte_carlo": monte_carlo_shapley,
    "stratified": stratified_shapley,
    "svarm": svarm_shapley,
    "msr": msr_banzhaf,
}


class LinearUtility:
    """v(S) = w(S) + c [|S| >= q]: additive plus a threshold bonus, any number of players."""

    def __init__(self, w, bonus=0.0, quota=0):
        self.w, self.bonus, self.quota = np.asarray(w, dtype=float), bonus, quota
        self.n_players = self.w.size
        self.names = tuple(f"p{i}" for i in range(self.n_players))

    def evaluate_masks(self, masks):
        member = decode_masks(masks, self.n_players)
        return member @ self.w + self.bonus * (member.sum(axis=1) >= self.quota)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("n, budget", [(50, 1_000), (50, 20_000), (20, 5_000)])
def test_evaluation_budgets_are_kept_within_5_percent(name, n, budget):
    utility = LinearUtility(np.linspace(0.1, 1.0, n), bonus=1.0, quota=n // 2)
    result = ESTIMATORS[name](utility, stopping=MaxEvaluations(budget), random_state=0)
    assert 0.95 * budget <= result.n_evaluations <= budget
    assert result.info["stopped_by"] == f"MaxEvaluations({budget})"


@pytest.mark.parametrize("name", ["stratified", "svarm"])
def test_budgets_below_the_exact_strata_and_pilot_are_refused(name):
    utility = LinearUtility(np.ones(1000))
    with pytest.raises(ValueError, match=r"needs at least \d+ for 1000 players"):
        ESTIMATORS[name](utility, stopping=MaxEvaluations(2_000), random_state=0)


def test_permutation_budgets_are_kept():
    utility = LinearUtility(np.linspace(0.1, 1.0, 12), bonus=1.0, quota=6)
    r = monte_carlo_shapley(utility, stopping=MaxPermutations(101), random_state=0)
    assert r.info["n_permutations"] == 100  # antithetic pairs: never past the budget
    r = msr_banzhaf(utility, stopping=MaxPermutations(1000), random_state=0)
    assert r.info["n_samples"] == 1000


@pytest.mark.parametrize("name", ESTIMATORS)
def test_a_thousand_players(name):
    rng = np.random.default_rng(0)
    w = rng.random(1000)
    utility = LinearUtility(w)
    budget = {"monte_carlo": 6_000, "stratified": 10_000, "svarm": 20_000, "msr": 6_000}[name]
    start = time.perf_counter()
    result = ESTIMATORS[name](utility, stopping=MaxEvaluations(budget), random_state=0)
    assert time.perf_counter() - start < 60
    assert result.values.shape == (1000,) and result.n_evaluations <= budget
    assert np.all(np.isfinite(result.stderr)) and np.all(result.stderr > 0)
    # Additive game: every value concept gives w; the intervals must cover it.
    covered = np.abs(result.values - w) <= 1.96 * result.stderr + 1e-9
    assert covered.mean() >= 0.9


def test_stratified_bins_follow_the_budget():
    utility = LinearUtility(np.linspace(0.1, 1.0, 50), bonus=1.0, quota=25)
    small = stratified_shapley(utility, stopping=MaxEvaluations(3_000), random_state=0)
    large = stratified_shapley(utility, stopping=MaxEvaluations(100_000), random_state=0)
    assert small.info["n_strata"] < large.info["n_strata"] == 48
    fixed = stratified_shapley(utility, stopping=MaxEvaluations(3_000), n_strata=2, random_state=0)
    assert fixed.info["n_strata"] == 2
    with pytest.raises(ValueError, match="'n_strata' must be <= 48"):
        stratified_shapley(utility, stopping=MaxEvaluations(3_000), n_strata=49)
