"""MSR Banzhaf against exact Banzhaf values of closed-form games."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.coalitions.games import airport_game, weighted_majority_game
from coopml.coalitions.msr_banzhaf import msr_banzhaf
from coopml.coalitions.stopping import MaxPermutations, StandardErrorBelow


@pytest.mark.parametrize(
    "game",
    [weighted_majority_game([4, 3, 2, 1, 1, 1], 7), airport_game(np.arange(1.0, 8.0))],
    ids=["majority", "airport"],
)
def test_estimates_are_within_a_few_standard_errors(game):
    exact = game.banzhaf().values
    fn = lambda s: game.value(s)  # noqa: E731
    r = msr_banzhaf(fn, game.n_players, stopping=MaxPermutations(6000), random_state=0)
    assert np.all(np.abs(r.values - exact) < 5 * r.stderr), (r.values, exact, r.stderr)
    assert r.info["n_samples"] >= 6000 and r.n_evaluations <= 2**game.n_players


def test_every_sample_updates_every_player_and_seed_reproduces():
    game = weighted_majority_game([1.0] * 12, 7)
    fn = lambda s: game.value(s)  # noqa: E731
    a = msr_banzhaf(fn, 12, stopping=MaxPermutations(512), batch_size=512, random_state=4)
    b = msr_banzhaf(fn, 12, stopping=MaxPermutations(512), batch_size=512, random_state=4)
    np.testing.assert_array_equal(a.values, b.values)
    # one batch of 512 coalitions informs all 12 players: stderr of order 1/sqrt(256)
    assert a.stderr.max() < 0.1 and a.info["n_samples"] == 512


def test_convergence_rule_and_bad_inputs():
    game = weighted_majority_game([2, 1, 1], 3)
    fn = lambda s: game.value(s)  # noqa: E731
    r = msr_banzhaf(
        fn, 3, stopping=StandardErrorBelow(0.01) | MaxPermutations(10**6), random_state=0
    )
    assert r.converged and r.stderr.max() <= 0.01
    with pytest.raises(ValueError, match="parameter 'stopping' may never fire"):
        msr_banzhaf(fn, 3, stopping=StandardErrorBelow(0.01))
    with pytest.raises(ValueError, match="parameter 'batch_size' must be >= 1"):
        msr_banzhaf(fn, 3, batch_size=0)
    with pytest.raises(TypeError, match="parameter 'value_fn_or_utility' must be a callable"):
        msr_banzhaf(3.0)  # type: ignore[arg-type]


def test_a_rare_coalition_never_sampled_does_not_look_certain():
    # 100-player airport game, 14 players need the longest runway: a coalition without
    # any of them has probability 2**-14, so 2,000 samples all cost 10. The textbook
    # standard error is then 0 around estimates of 0; the true values are not.
    from coopml.coalitions import MaxEvaluations
    from coopml.coalitions.reference_games import airport_reference

    costs = np.random.default_rng(0).integers(1, 11, size=100).astype(float)
    game = airport_reference(costs)
    r = msr_banzhaf(game, stopping=MaxEvaluations(2_000), random_state=0)
    assert np.all(r.stderr > 0)
    assert np.mean(np.abs(r.values - game.banzhaf) <= 1.96 * r.stderr) >= 0.9
