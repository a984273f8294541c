"""Stratified SVARM (Kolpaczki et al. 2024) against exact Shapley values."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.coalitions import svarm_shapley
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import (
    additive_game,
    airport_game,
    airport_shapley,
    glove_game,
    unanimity_game,
    weighted_majority_game,
)
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    RankStable,
    StandardErrorBelow,
)
from coopml.coalitions.svarm import default_svarm_stopping


class _TableUtility:
    """A game as a batched mask utility, recording the size of every call."""

    def __init__(self, game: CoalitionGame) -> None:
        self.game, self.calls = game, []

    n_players = property(lambda self: self.game.n_players)
    names = property(lambda self: self.game.names)

    def evaluate_masks(self, masks):
        self.calls.append(len(masks))
        return self.game.table[np.asarray(masks)]


def _random_game(n: int, seed: int) -> CoalitionGame:
    rng = np.random.default_rng(seed)
    table = rng.normal(size=2**n)
    table[0] = 0.0
    return CoalitionGame(table=table, names=tuple(f"p{i}" for i in range(n)))


GAMES = {
    "airport": airport_game(np.arange(1.0, 9.0)),
    "glove": glove_game(2, 4),
    "majority": weighted_majority_game([4, 3, 2, 1, 1, 1], 7),
    "unanimity": unanimity_game(7, [1, 3, 4]),
    "random8": _random_game(8, 0),
    "random10": _random_game(10, 1),
}


@pytest.mark.parametrize("name", list(GAMES))
def test_estimates_are_within_a_few_standard_errors(name):
    game = GAMES[name]
    exact = game.shapley().values
    r = svarm_shapley(_TableUtility(game), stopping=MaxPermutations(3000), random_state=0)
    assert r.method == "svarm_shapley" and r.names == game.names
    assert r.info["warm_up_done"] and np.all(np.isfinite(r.stderr))
    z = np.abs(r.values - exact) / np.maximum(r.stderr, 1e-12)
    assert z.max() < 4.5, (r.values, exact, r.stderr)
    # efficiency: the gap is of the order of the standard errors, and reported exactly
    total = game.table[-1] - game.table[0]
    assert r.info["efficiency_gap"] == pytest.approx(r.values.sum() - total, abs=1e-12)
    assert abs(r.info["efficiency_gap"]) < 4 * np.sqrt(np.sum(r.stderr**2)) + 1e-9


def test_converges_to_exact_as_the_budget_grows():
    game = GAMES["random10"]
    exact = game.shapley().values
    errors, ses = [], []
    for budget in (500, 4000, 32_000):
        r = svarm_shapley(game, stopping=MaxPermutations(budget), random_state=1)
        errors.append(np.abs(r.values - exact).max())
        ses.append(r.stderr.max())
    assert ses[0] > ses[1] > ses[2]
    assert errors[2] < errors[0] / 3
    assert ses[2] < ses[0] / 4  # stderr shrinks like 1/sqrt(samples)


def test_small_games_are_exact():
    glove = glove_game(1, 2)
    for n, game in [(1, additive_game([2.5])), (2, glove_game(1, 1)), (3, glove)]:
        r = svarm_shapley(game, random_state=0)
        assert r.n_evaluations == 2**n and r.converged
        assert r.info["stopped_by"] == "exact (n <= 3)"
        np.testing.assert_allclose(r.values, game.shapley().values, atol=1e-12)
        np.testing.assert_array_equal(r.stderr, 0.0)


def test_symmetric_and_null_players():
    # players 0, 1, 2 are symmetric carriers; 3..7 are null players
    game = unanimity_game(8, [0, 1, 2])
    r = svarm_shapley(game, stopping=MaxPermutations(4000), random_state=3)
    assert np.ptp(r.values[:3]) < 4 * r.stderr[:3].max()
    assert np.all(np.abs(r.values[3:]) < 4 * r.stderr[3:] + 1e-12)
    assert np.abs(r.values[3:]).max() < 0.05


def test_additive_game():
    # additive: E[phi^+_{i,l}] - E[phi^-_{i,l}] = (w_i + l w̄_{-i}) - l w̄_{-i} = w_i
    w = np.linspace(0.0, 1.0, 9)
    r = svarm_shapley(additive_game(w), stopping=MaxPermutations(5000), random_state=0)
    assert np.abs(r.values - w).max() < 4 * r.stderr.max() + 1e-9
    assert r.values[0] == pytest.approx(0.0, abs=4 * r.stderr[0] + 1e-9)


def test_seeds_reproduce_and_differ():
    game = GAMES["random8"]
    a = svarm_shapley(game, stopping=MaxPermutations(1000), random_state=7)
    b = svarm_shapley(game, stopping=MaxPermutations(1000), random_state=7)
    c = svarm_shapley(game, stopping=MaxPermutations(1000), random_state=8)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert a.n_evaluations == b.n_evaluations
    assert not np.array_equal(a.values, c.values)
    g = svarm_shapley(game, stopping=MaxPermutations(1000), random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(g.values, a.values)


def test_callable_and_utility_agree():
    game = GAMES["airport"]
    from coopml._bitmask import mask_of

    def value(s: frozenset[int]) -> float:
        return float(game.table[mask_of(s)])

    a = svarm_shapley(value, 8, stopping=MaxPermutations(800), random_state=2)
    b = svarm_shapley(_TableUtility(game), stopping=MaxPermutations(800), random_state=2)
    np.testing.assert_allclose(a.values, b.values, atol=1e-12)
    assert a.names == tuple(str(i) for i in range(8))


_AIRPORT_TABLE = GAMES["airport"].table


def _airport_value(s: frozenset[int]) -> float:  # module level: picklable for joblib
    return float(_AIRPORT_TABLE[sum(1 << i for i in s)])


def test_parallel_executor_gives_identical_results():
    rule = MaxPermutations(1500)
    a = svarm_shapley(_airport_value, 8, stopping=rule, random_state=4)
    b = svarm_shapley(_airport_value, 8, stopping=rule, executor="joblib", n_jobs=2, random_state=4)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.stderr, b.stderr)
    assert a.n_evaluations == b.n_evaluations


def test_batches_are_evaluated_together_and_memoised():
    utility = _TableUtility(GAMES["random8"])
    r = svarm_shapley(utility, stopping=MaxPermutations(2000), batch_size=300, random_state=0)
    assert sum(utility.calls) == r.n_evaluations <= 2**8
    assert max(utility.calls) <= 300


def test_budget_rules_are_respected():
    game = GAMES["random10"]
    r = svarm_shapley(game, stopping=MaxEvaluations(600), batch_size=50, random_state=0)
    assert 570 <= r.n_evaluations <= 600 and not r.converged  # never overrun
    assert r.info["stopped_by"] == "MaxEvaluations(600)"
    r = svarm_shapley(game, stopping=MaxPermutations(700), batch_size=64, random_state=0)
    assert r.info["n_coalitions"] == 700 + 2 * 10 + 2  # drawn after the exact strata
    r = svarm_shapley(game, stopping=MaxTime(1e-9), batch_size=4, random_state=0)
    assert r.info["stopped_by"] == "MaxTime(1e-09)" and not r.converged
    assert not r.info["warm_up_done"]  # stopped after the first batch


def test_convergence_rules_fire():
    game = airport_game(np.arange(1.0, 11.0))
    rule = StandardErrorBelow(0.05) | MaxPermutations(200_000)
    r = svarm_shapley(game, stopping=rule, random_state=0)
    assert r.converged and r.info["stopped_by"] == "StandardErrorBelow(0.05)"
    assert r.stderr.max() <= 0.05
    assert str(rule) == "StandardErrorBelow(0.05) | MaxPermutations(200000)"  # not consumed
    r = svarm_shapley(game, stopping=RankStable(3) | MaxPermutations(200_000), random_state=0)
    assert r.converged and r.info["stopped_by"] == "RankStable(3)"
    r = svarm_shapley(game, random_state=0)  # default rule
    assert str(default_svarm_stopping()) in {
        "MaxPermutations(100000) | StandardErrorBelow(0.01, relative_to='max')"
    }
    assert r.converged and r.stderr.max() <= 0.01 * np.abs(r.values).max()


def test_many_players_with_a_callable():
    costs = np.linspace(1.0, 10.0, 100)

    def runway(s: frozenset[int]) -> float:
        return max((costs[i] for i in s), default=0.0)

    r = svarm_shapley(runway, 100, stopping=MaxPermutations(6000), random_state=0)
    assert r.n_players == 100 and r.info["warm_up_done"]
    exact = airport_shapley(costs)
    assert np.abs(r.values - exact).max() < 5 * r.stderr.max()


def test_a_thousand_players_runs_with_python_int_masks():
    w = np.random.default_rng(0).random(1000)
    r = svarm_shapley(
        lambda s: float(sum(w[i] for i in s)), 1000, stopping=MaxPermutations(600), random_state=0
    )
    assert r.values.shape == (1000,) and not r.info["warm_up_done"]
    assert np.all(np.isinf(r.stderr))  # some strata have no sample yet
    assert r.n_evaluations >= 600


def test_bad_inputs_give_clear_errors():
    game = GAMES["glove"]
    with pytest.raises(TypeError, match="n_players"):
        svarm_shapley(lambda s: 0.0)
    with pytest.raises(TypeError, match="value_fn_or_utility"):
        svarm_shapley(42, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="executor"):
        svarm_shapley(game, executor="threads")
    with pytest.raises(ValueError, match="batch_size"):
        svarm_shapley(game, batch_size=0)
    with pytest.raises(ValueError, match="may never fire"):
        svarm_shapley(game, stopping=StandardErrorBelow(0.1))
    with pytest.raises(ValueError, match="may never fire"):
        svarm_shapley(game, stopping=MaxEvaluations(10_000))
    with pytest.raises(TypeError, match="stopping"):
        svarm_shapley(game, stopping="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_players"):
        svarm_shapley(_TableUtility(game), n_players=5)
    with pytest.raises(ValueError, match="names"):
        svarm_shapley(game, names=["a"])
    with pytest.raises(ValueError, match="finite"):
        svarm_shapley(lambda s: float("nan") if len(s) == 2 else 0.0, 5, random_state=0)
