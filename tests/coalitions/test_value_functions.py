"""Bad value functions get a clear error naming the coalition and the function."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.coalitions import (
    CoalitionGame,
    MaxPermutations,
    monte_carlo_shapley,
    msr_banzhaf,
    stratified_shapley,
    svarm_shapley,
)

ESTIMATORS = {
    "from_function": lambda fn: CoalitionGame.from_function(4, fn),
    "monte_carlo": lambda fn: monte_carlo_shapley(
        fn, 4, stopping=MaxPermutations(4), random_state=0
    ),
    "stratified": lambda fn: stratified_shapley(fn, 4, stopping=MaxPermutations(4), random_state=0),
    "svarm": lambda fn: svarm_shapley(fn, 4, stopping=MaxPermutations(4), random_state=0),
    "msr": lambda fn: msr_banzhaf(fn, 4, stopping=MaxPermutations(64), random_state=0),
}


def returns(value):
    def value_fn(s):
        return value if len(s) == 2 else float(len(s))

    return value_fn


@pytest.mark.parametrize("run", ESTIMATORS.values(), ids=ESTIMATORS.keys())
@pytest.mark.parametrize(
    "bad",
    [None, (1.0, 2.0), 1 + 2j, np.array([1.0, 2.0]), np.float64(1.0) + 0j, "0.5", True],
    ids=["None", "tuple", "complex", "array", "numpy-complex", "str", "bool"],
)
def test_non_real_values_are_refused_naming_coalition_and_function(run, bad):
    with pytest.raises(
        TypeError, match=r"value function .*value_fn returned .* for coalition \[\d, \d\]"
    ):
        run(returns(bad))


@pytest.mark.parametrize("run", ESTIMATORS.values(), ids=ESTIMATORS.keys())
def test_exceptions_name_the_coalition_and_keep_the_cause(run):
    def value_fn(s):
        if len(s) == 3:
            raise KeyError("missing column")
        return float(len(s))

    with pytest.raises(
        RuntimeError, match=r"value_fn raised KeyError on coalition \[\d, \d, \d\]"
    ) as info:
        run(value_fn)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("run", ESTIMATORS.values(), ids=ESTIMATORS.keys())
def test_nan_is_refused(run):
    with pytest.raises(ValueError, match=r"returned nan for coalition \[\d, \d\]"):
        run(returns(float("nan")))


def test_numpy_and_int_values_are_accepted():
    game = CoalitionGame.from_function(3, lambda s: np.int64(len(s)) if s else 0)
    np.testing.assert_allclose(game.shapley().values, [1.0, 1.0, 1.0])


class BadUtility:
    n_players = 3
    names = ("a", "b", "c")

    def __init__(self, values):
        self.values = values

    def evaluate_masks(self, masks):
        return self.values(len(masks))


@pytest.mark.parametrize(
    "values, match",
    [
        (lambda k: np.array(["x"] * k), "must return real numbers"),
        (lambda k: np.ones(k, dtype=bool), "must return real numbers"),
        (lambda k: np.ones(k, dtype=complex), "must return real numbers"),
        (lambda k: np.full(k, np.inf), "returned inf for coalition"),
    ],
)
def test_bad_utilities_are_refused(values, match):
    with pytest.raises((TypeError, ValueError), match=match):
        monte_carlo_shapley(BadUtility(values), stopping=MaxPermutations(2))
