"""DERIVED closed forms of the quadratic game against the numerical solver and the
bargaining toolkit, over random parameters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.bargaining import SOLUTIONS, UtilityCurve, pareto_frontier
from coopml.finetuning import (
    FineTuningGame,
    quadratic_egalitarian_share,
    quadratic_equilibrium,
    quadratic_kalai_smorodinsky_share,
    quadratic_nash_share,
    quadratic_pareto_set,
    quadratic_solution_shares,
    quadratic_utilitarian_share,
    quadratic_utilities,
    quadratic_vertical_integration,
    solve_shares,
    vertical_integration,
)

positive = st.floats(0.1, 10.0)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    positive,
    st.lists(positive, min_size=3, max_size=3),
    st.lists(st.floats(0.2, 5.0), min_size=3, max_size=3),
    st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3),
)
def test_numerical_spe_matches_closed_form(n, c0, c, r, delta):
    game = FineTuningGame.quadratic(c0, c[:n], r[:n])
    exact = solve_shares(game, np.array([delta[:n]]), method="closed_form")
    numeric = solve_shares(game, np.array([delta[:n]]), method="numerical")
    for key in ("alpha0", "alpha", "u_generalist", "u_specialists"):
        scale = max(1.0, float(np.max(np.abs(exact[key]))))
        np.testing.assert_allclose(numeric[key], exact[key], atol=1e-7 * scale, err_msg=key)
    formula = quadratic_equilibrium(c0, c[:n], r[:n], delta[:n])
    np.testing.assert_allclose(formula["alpha"], exact["alpha"][0])
    # the n-specialist formula alpha0* = sum_j delta_j r_j / (2 c0)
    assert formula["alpha0"] == pytest.approx(np.dot(delta[:n], r[:n]) / (2 * c0))


@settings(max_examples=20, deadline=None)
@given(positive, positive, st.floats(0.2, 5.0))
def test_one_specialist_utilities_and_vertical_integration(c0, c1, r):
    deltas = np.linspace(0, 1, 11)
    u = quadratic_utilities(c0, c1, r, deltas)
    game = FineTuningGame.quadratic(c0, c1, r)
    out = solve_shares(game, deltas, method="numerical")
    np.testing.assert_allclose(out["u_generalist"], u[:, 0], atol=1e-8 * r * r / min(c0, c1))
    np.testing.assert_allclose(out["u_specialists"][:, 0], u[:, 1], atol=1e-8 * r * r / min(c0, c1))
    exact = quadratic_vertical_integration(c0, [c1], [r])
    numeric = vertical_integration(game, method="numerical")
    assert numeric.welfare == pytest.approx(exact["welfare"], rel=1e-9)
    assert numeric.alpha0 == pytest.approx(exact["alpha0"], rel=1e-6)
    np.testing.assert_allclose(numeric.alpha, exact["alpha"], rtol=1e-6)
    # integration is at least as good as any split
    assert exact["welfare"] >= u.sum(axis=1).max() - 1e-12


def curve(c0: float, c1: float) -> UtilityCurve:
    return UtilityCurve(lambda t: quadratic_utilities(c0, c1, 1.0, t), n_grid=1001)


@pytest.mark.parametrize("kappa", [0.1, 0.35, 0.8, 1.0, 1.6, 4.0, 25.0])
def test_bargaining_toolkit_reproduces_the_derived_shares(kappa):
    c = curve(1.0, kappa)
    derived = quadratic_solution_shares(1.0, kappa)
    for name, solve in SOLUTIONS.items():
        s = solve(c)
        assert s.parameter == pytest.approx(derived[name], abs=1e-6), name
        assert s.pareto_optimal
    np.testing.assert_allclose(
        pareto_frontier(c).intervals, [quadratic_pareto_set(1.0, kappa)], atol=1e-7
    )


@pytest.mark.parametrize("c0,c1", [(1.0, 3.0), (2.0, 0.5), (1.0, 2.0), (3.0, 3.0)])
def test_reference_values(c0, c1):
    low, high = quadratic_pareto_set(c0, c1)
    if c1 > c0:
        assert (low, high) == ((c1 - c0) / (2 * c1 - c0), 1.0)
    elif c1 < c0:
        assert (low, high) == (0.0, c0 / (2 * c0 - c1))
    else:
        assert (low, high) == (0.0, 1.0)
    assert quadratic_utilitarian_share(c0, c1) == pytest.approx(c1 / (c0 + c1))
    e = quadratic_egalitarian_share(c0, c1)
    assert 3 * (c1 - c0) * e**2 + (4 * c0 - 2 * c1) * e - c0 == pytest.approx(0.0, abs=1e-12)
    u = quadratic_utilities(c0, c1, 1.0, [e])[0]
    assert u[0] == pytest.approx(u[1])
    # Nash maximises the product on a fine grid; KS equalises the normalised gains
    grid = np.linspace(0, 1, 200001)
    U = quadratic_utilities(c0, c1, 1.0, grid)
    assert quadratic_nash_share(c0, c1) == pytest.approx(grid[np.argmax(U.prod(axis=1))], abs=1e-5)
    ks = quadratic_kalai_smorodinsky_share(c0, c1)
    v = quadratic_utilities(c0, c1, 1.0, [ks])[0] / U.max(axis=0)
    assert v[0] == pytest.approx(v[1])


@settings(max_examples=20, deadline=None)
@given(positive, positive, st.floats(0.1, 10.0))
def test_solutions_depend_on_kappa_only_and_swap_symmetry(c0, c1, factor):
    a = quadratic_solution_shares(c0, c1)
    b = quadratic_solution_shares(c0 * factor, c1 * factor)
    swapped = quadratic_solution_shares(c1, c0)
    for name in a:
        assert b[name] == pytest.approx(a[name], abs=1e-9)
        assert swapped[name] == pytest.approx(1 - a[name], abs=1e-9)
    low, high = quadratic_pareto_set(c0, c1)
    s_low, s_high = quadratic_pareto_set(c1, c0)
    assert (low, high) == pytest.approx((1 - s_high, 1 - s_low))


def test_closed_form_validation():
    with pytest.raises(ValueError, match=r"parameter 'c0' must be finite and > 0; got -1\.0"):
        quadratic_pareto_set(-1.0, 1.0)
    with pytest.raises(ValueError, match=r"parameter 'c1' must be finite and > 0; got 0\.0"):
        quadratic_utilities(1.0, 0.0, 1.0, [0.5])
    with pytest.raises(ValueError, match="parameter 'c' must be finite and > 0"):
        quadratic_equilibrium(1.0, [1.0, -1.0], [1.0, 1.0], 0.5)
