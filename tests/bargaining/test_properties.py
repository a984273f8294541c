"""Defining properties of the bargaining solutions on random convex problems (hypothesis).

Random problems: ``S = {u >= 0 : ||u / a||_p <= 1}`` (strictly convex, comprehensive in
the positive orthant) for random semi-axes ``a`` and ``p``, with a random disagreement
point inside.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coopml.bargaining import (
    ConvexUtilitySet,
    egalitarian,
    ideal_point,
    kalai_smorodinsky,
    nash_bargaining,
    utilitarian,
)

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 2e-5


@st.composite
def problems(draw, symmetric=False):
    n = draw(st.integers(2, 3))
    p = draw(st.sampled_from([1.5, 2.0, 3.0]))
    if symmetric:
        a = np.full(n, draw(st.floats(0.5, 3.0)))
        d = np.full(n, draw(st.floats(0.0, 0.2)) * a[0] / n)
    else:
        a = np.array(draw(st.lists(st.floats(0.5, 3.0), min_size=n, max_size=n)))
        d = np.array(draw(st.lists(st.floats(0.0, 0.2), min_size=n, max_size=n))) * a / n
    return n, p, a, d


def pnorm_set(n, p, a, scale=None, shift=None):
    scale = np.ones(n) if scale is None else scale
    shift = np.zeros(n) if shift is None else shift

    def build(x):
        return cp.multiply(scale, x) + shift, [x >= 0, cp.pnorm(cp.multiply(1 / a, x), p) <= 1]

    return ConvexUtilitySet(n, build, dim=n)


def on_boundary(u, p, a):
    return abs(np.sum(np.abs(u / a) ** p) ** (1 / p) - 1) < 1e-6


@SETTINGS
@given(problems())
def test_nash_is_pareto_optimal_and_maximises_the_product(problem):
    n, p, a, d = problem
    s = nash_bargaining(pnorm_set(n, p, a), d)
    assert s.agreement and s.pareto_optimal and s.converged
    assert on_boundary(s.utilities, p, a)
    # no boundary point sampled around it has a larger product of gains
    rng = np.random.default_rng(0)
    dirs = np.abs(s.utilities + rng.normal(scale=0.05, size=(200, n)))
    dirs /= (np.sum((dirs / a) ** p, axis=1) ** (1 / p))[:, None]
    gains = dirs - d
    ok = np.all(gains > 0, axis=1)
    assert np.all(np.sum(np.log(gains[ok]), axis=1) <= np.sum(np.log(s.gains)) + 1e-9)


@FEW
@given(problems(symmetric=True))
def test_symmetric_problems_have_symmetric_solutions(problem):
    n, p, a, d = problem
    S = pnorm_set(n, p, a)
    for solve in (nash_bargaining, kalai_smorodinsky, egalitarian, utilitarian):
        u = solve(S, d).utilities
        np.testing.assert_allclose(u, np.full(n, u.mean()), atol=TOL)


@FEW
@given(
    problems(),
    st.lists(st.floats(0.3, 4.0), min_size=3, max_size=3),
    st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
)
def test_nash_and_ks_are_invariant_to_affine_rescaling(problem, scale, shift):
    n, p, a, d = problem
    scale, shift = np.array(scale[:n]), np.array(shift[:n])
    base, moved = pnorm_set(n, p, a), pnorm_set(n, p, a, scale, shift)
    for solve in (nash_bargaining, kalai_smorodinsky):
        s0, s1 = solve(base, d), solve(moved, scale * d + shift)
        np.testing.assert_allclose(s1.utilities, scale * s0.utilities + shift, atol=TOL * 4)
        np.testing.assert_allclose(s1.point, s0.point, atol=TOL * 4)


@SETTINGS
@given(problems())
def test_kalai_smorodinsky_gains_are_proportional_to_ideal_gains(problem):
    n, p, a, d = problem
    S = pnorm_set(n, p, a)
    ideal = ideal_point(S, d)
    # the ideal point of {||u/a||_p <= 1, u >= d}: a_i (1 - sum_{j != i} (d_j/a_j)^p)^(1/p)
    expected = np.array(
        [a[i] * (1 - np.sum(np.delete((d / a) ** p, i))) ** (1 / p) for i in range(n)]
    )
    np.testing.assert_allclose(ideal, expected, atol=TOL)
    s = kalai_smorodinsky(S, d)
    ratios = s.gains / (ideal - d)
    np.testing.assert_allclose(ratios, np.full(n, ratios.mean()), atol=TOL)
    assert s.pareto_optimal and on_boundary(s.utilities, p, a)


@FEW
@given(problems())
def test_egalitarian_gains_are_equal_and_utilitarian_is_maximal(problem):
    n, p, a, d = problem
    S = pnorm_set(n, p, a)
    e = egalitarian(S, d)
    np.testing.assert_allclose(e.gains, np.full(n, e.gains.mean()), atol=TOL)
    assert e.pareto_optimal
    u = utilitarian(S, d)
    # the utilitarian total beats every other solution's total
    for other in (e, nash_bargaining(S, d), kalai_smorodinsky(S, d)):
        assert u.utilities.sum() >= other.utilities.sum() - 1e-7
    assert np.all(u.utilities >= d - 1e-8)
