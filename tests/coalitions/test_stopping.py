from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    RankStable,
    SamplerState,
    StandardErrorBelow,
    StoppingRule,
)


def state(
    n_samples=10,
    n_permutations=None,
    n_evaluations=100,
    elapsed=1.0,
    means=(1.0, 2.0, 3.0),
    stderr=(0.1, 0.1, 0.1),
    previous_means=None,
):
    return SamplerState(
        n_samples=n_samples,
        n_permutations=n_samples if n_permutations is None else n_permutations,
        n_evaluations=n_evaluations,
        elapsed=elapsed,
        means=np.asarray(means, dtype=float),
        stderr=np.asarray(stderr, dtype=float),
        previous_means=None if previous_means is None else np.asarray(previous_means, float),
    )


class Flag(StoppingRule):
    """Test rule that fires when told to."""

    def __init__(self, fire: bool, converges: bool) -> None:
        self.fire, self.converges = fire, converges

    def check(self, state):
        return self if self.fire else None

    def __str__(self):
        return f"Flag({self.fire}, {self.converges})"


# ---------------------------------------------------------------- leaf rules


def test_budget_rules_fire_at_their_limit():
    assert not MaxEvaluations(100)(state(n_evaluations=99))
    assert MaxEvaluations(100)(state(n_evaluations=100))
    assert not MaxPermutations(20)(state(n_samples=10, n_permutations=19))
    assert MaxPermutations(20)(state(n_samples=10, n_permutations=20))
    assert not MaxTime(2.5)(state(elapsed=2.4))
    assert MaxTime(2.5)(state(elapsed=2.5))
    for rule in (MaxEvaluations(1), MaxPermutations(1), MaxTime(1)):
        assert not rule.converges


def test_standard_error_below_absolute_and_relative():
    rule = StandardErrorBelow(0.1)
    assert rule.converges
    assert rule(state(stderr=(0.1, 0.05, 0.0)))
    assert not rule(state(stderr=(0.1, 0.11, 0.0)))
    assert not rule(state(n_samples=7, stderr=(0.0, 0.0, 0.0)))  # min_samples = 8
    assert StandardErrorBelow(0.1, min_samples=2)(state(n_samples=2, stderr=(0.0, 0.0, 0.0)))
    assert not rule(state(stderr=(np.nan, 0.0, 0.0)))
    # total = 6: threshold 0.06; max = 3: threshold 0.03
    total, largest = StandardErrorBelow(0.01, "total"), StandardErrorBelow(0.01, "max")
    assert total(state(stderr=(0.06, 0.0, 0.0)))
    assert not total(state(stderr=(0.061, 0.0, 0.0)))
    assert largest(state(stderr=(0.03, 0.0, 0.0)))
    assert not largest(state(stderr=(0.031, 0.0, 0.0)))
    assert total(state(means=(0.0, 0.0, 0.0), stderr=(0.0, 0.0, 0.0)))


def test_rank_stable_counts_consecutive_unchanged_rankings():
    rule = RankStable(2)
    assert rule.converges
    assert not rule(state(means=(1, 2, 3)))  # no previous means
    assert not rule(state(means=(1, 2, 3.1), previous_means=(1, 2, 3)))  # streak 1
    assert not rule(state(means=(2.5, 2, 3), previous_means=(1, 2, 3.1)))  # changed: 0
    assert not rule(state(means=(2.6, 2, 3), previous_means=(2.5, 2, 3)))  # 1
    assert rule(state(means=(2.7, 2, 3), previous_means=(2.6, 2, 3)))  # 2: fires
    assert rule(state(means=(2.8, 2, 3), previous_means=(2.7, 2, 3)))  # keeps firing
    assert not rule(state(means=(1, 2, 3), previous_means=(2.8, 2, 3)))


# ---------------------------------------------------------------- composition


@given(a=st.booleans(), b=st.booleans(), ca=st.booleans(), cb=st.booleans())
def test_composition_truth_table_and_converged(a, b, ca, cb):
    left, right = Flag(a, ca), Flag(b, cb)
    either, both = left | right, left & right
    assert either(state()) == (a or b)
    assert both(state()) == (a and b)
    fired = either.check(state())
    if fired is not None:
        assert fired.converges == ((a and ca) or (b and cb))
    fired = both.check(state())
    if fired is not None:
        assert fired.converges == (ca or cb)


def test_check_returns_the_part_that_fired():
    rule = MaxEvaluations(1000) | StandardErrorBelow(0.01) | MaxTime(60)
    assert rule.check(state(n_evaluations=10, stderr=(1, 1, 1), elapsed=0)) is None
    fired = rule.check(state(n_evaluations=10, stderr=(0, 0, 0), elapsed=0))
    assert str(fired) == "StandardErrorBelow(0.01)" and fired.converges
    fired = rule.check(state(n_evaluations=1000, stderr=(1, 1, 1), elapsed=60))
    assert str(fired) == "MaxEvaluations(1000) | MaxTime(60)" and not fired.converges
    fired = rule.check(state(n_evaluations=1000, stderr=(0, 0, 0), elapsed=0))
    assert fired.converges  # a convergence rule took part
    both = MaxPermutations(100) & StandardErrorBelow(0.01)
    assert both.check(state(n_samples=200, stderr=(1, 1, 1))) is None
    assert both.check(state(n_samples=50, stderr=(0, 0, 0))) is None
    fired = both.check(state(n_samples=200, stderr=(0, 0, 0)))
    assert str(fired) == str(both) and fired.converges


def test_composites_check_every_part():
    rank = RankStable(2)
    rule = MaxTime(1) | rank
    rule(state(elapsed=5, means=(1, 2, 3), previous_means=(1, 2, 3)))
    assert rank._streak == 1  # evaluated although MaxTime already fired


def test_str_is_readable():
    assert str(MaxEvaluations(1000) | StandardErrorBelow(0.001)) == (
        "MaxEvaluations(1000) | StandardErrorBelow(0.001)"
    )
    rule = (MaxPermutations(10) | MaxTime(1.5)) & RankStable(3) | StandardErrorBelow(
        0.01, relative_to="max", min_samples=20
    )
    assert str(rule) == (
        "((MaxPermutations(10) | MaxTime(1.5)) & RankStable(3)) | "
        "StandardErrorBelow(0.01, relative_to='max', min_samples=20)"
    )
    assert repr(MaxTime(60)) == "MaxTime(60)"


def test_bounded_requires_a_budget_on_every_branch():
    assert MaxPermutations(5)._bounded(8)
    assert MaxEvaluations(8)._bounded(8) and not MaxEvaluations(9)._bounded(8)
    assert not (StandardErrorBelow(1) | RankStable(1))._bounded(8)
    assert (StandardErrorBelow(1) | MaxTime(1))._bounded(8)
    assert not (StandardErrorBelow(1) & MaxTime(1))._bounded(8)
    assert (MaxPermutations(5) & MaxTime(1))._bounded(8)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: MaxEvaluations(0), ValueError, "parameter 'n' must be >= 1; got 0"),
        (lambda: MaxPermutations(2.5), TypeError, "parameter 'n' must be an integer"),
        (lambda: MaxTime(0), ValueError, "parameter 'seconds' must be finite and > 0"),
        (lambda: MaxTime("1"), TypeError, "parameter 'seconds' must be a real number"),
        (lambda: StandardErrorBelow(-1), ValueError, "parameter 'tol' must be finite and > 0"),
        (lambda: StandardErrorBelow(0.1, "mean"), ValueError, "'relative_to' must be one of"),
        (lambda: StandardErrorBelow(0.1, min_samples=1), ValueError, "'min_samples' must be >= 2"),
        (lambda: RankStable(0), ValueError, "parameter 'n_checks' must be >= 1; got 0"),
        (lambda: MaxTime(1) | 3, TypeError, "unsupported operand"),
        (lambda: MaxTime(1) & None, TypeError, "unsupported operand"),
    ],
)
def test_invalid_parameters(make, error, match):
    with pytest.raises(error, match=match):
        make()
