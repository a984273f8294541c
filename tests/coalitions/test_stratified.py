"""Stratified Shapley sampling against exact values of closed-form games."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.coalitions.games import airport_game, glove_game, weighted_majority_game
from coopml.coalitions.stopping import MaxEvaluations, MaxPermutations, StandardErrorBelow
from coopml.coalitions.stratified import random_coalitions, stratified_shapley


class _TableUtility:
    """A game as a mask utility (batched), counting evaluations."""

    def __init__(self, game):
        self.game, self.calls = game, 0

    n_players = property(lambda self: self.game.n_players)
    names = property(lambda self: self.game.names)

    def evaluate_masks(self, masks):
        self.calls += len(masks)
        return self.game.table[np.asarray(masks)]


@pytest.mark.parametrize("allocation", ["neyman", "equal"])
@pytest.mark.parametrize(
    "game",
    [
        airport_game(np.arange(1.0, 9.0)),
        glove_game(2, 4),
        weighted_majority_game([4, 3, 2, 1, 1], 6),
    ],
    ids=["airport", "glove", "majority"],
)
def test_estimates_are_within_a_few_standard_errors(game, allocation):
    exact = game.shapley().values
    r = stratified_shapley(
        _TableUtility(game), stopping=MaxPermutations(3000), allocation=allocation, random_state=0
    )
    z = np.abs(r.values - exact) / np.maximum(r.stderr, 1e-12)
    assert np.all((z < 5) | (np.abs(r.values - exact) < 1e-12)), (r.values, exact, r.stderr)
    assert r.method == "stratified_shapley" and not r.converged
    assert r.info["efficiency_gap"] == pytest.approx(
        r.values.sum() - (game.table[-1] - game.table[0])
    )


def test_error_shrinks_with_budget_and_results_are_reproducible():
    game = airport_game(np.arange(1.0, 11.0))
    exact = game.shapley().values
    errs = []
    for budget in (100, 3000):
        r = stratified_shapley(
            _TableUtility(game), stopping=MaxPermutations(budget), random_state=3
        )
        errs.append(np.abs(r.values - exact).max())
    assert errs[1] < errs[0]
    a = stratified_shapley(_TableUtility(game), stopping=MaxPermutations(200), random_state=5)
    b = stratified_shapley(_TableUtility(game), stopping=MaxPermutations(200), random_state=5)
    np.testing.assert_array_equal(a.values, b.values)


def test_two_players_are_exact_and_convergence_rule_fires():
    game = glove_game(1, 1)
    r = stratified_shapley(_TableUtility(game), random_state=0)
    np.testing.assert_allclose(r.values, [0.5, 0.5])
    assert r.converged and r.n_evaluations == 4
    u = _TableUtility(weighted_majority_game([3, 2, 2, 1], 5))
    rule = StandardErrorBelow(0.02) | MaxPermutations(100_000)
    r = stratified_shapley(u, stopping=rule, random_state=0)
    assert r.converged and r.stderr.max() <= 0.02
    assert r.n_evaluations <= 16 and u.calls <= 16  # memoised: each coalition once


def test_random_coalitions_are_uniform_and_exclude_the_player():
    rng = np.random.default_rng(0)
    players = np.zeros(6000, dtype=np.intp)
    masks = random_coalitions(players, np.full(6000, 2), 4, rng)
    assert not np.any(masks & 1)
    assert {int(m).bit_count() for m in masks} == {2}
    counts = np.bincount(masks, minlength=16)[[6, 10, 12]]
    assert counts.sum() == 6000 and np.all(np.abs(counts - 2000) < 200)


def test_bad_inputs():
    game = glove_game(1, 2)
    with pytest.raises(ValueError, match="parameter 'allocation' must be one of"):
        stratified_shapley(_TableUtility(game), allocation="best")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parameter 'stopping' may never fire"):
        stratified_shapley(_TableUtility(game), stopping=StandardErrorBelow(0.1))
    with pytest.raises(ValueError, match="parameter 'stopping' may never fire"):
        stratified_shapley(_TableUtility(game), stopping=MaxEvaluations(100))
    with pytest.raises(TypeError, match="parameter 'n_players' is required"):
        stratified_shapley(lambda s: 0.0)
    with pytest.raises(ValueError, match="parameter 'batch_size' must be >= 1; got 0"):
        stratified_shapley(_TableUtility(game), batch_size=0)


def test_castro_voting_game_at_100k_evaluations_is_unbiased_with_honest_errors():
    # The case that exposed the starving Neyman allocation: estimates summed to 0.465,
    # player 0 got 0.0741 +- 0.0011 against the true 0.0883.
    from coopml.coalitions import MaxEvaluations
    from coopml.coalitions.reference_games import castro_voting_reference

    game = castro_voting_reference()
    r = stratified_shapley(game, stopping=MaxEvaluations(100_000), random_state=0)
    assert r.n_evaluations <= 100_000
    assert abs(r.info["efficiency_gap"]) <= 3 * r.info["efficiency_gap_stderr"]
    assert abs(r.values.sum() - 1.0) < 0.05
    assert abs(r.values[0] - game.shapley[0]) <= 3 * r.stderr[0]
    assert np.mean(np.abs(r.values - game.shapley) <= 1.96 * r.stderr) >= 0.9
