"""The convex first-moment program: reference numbers, cross-checks and properties."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq, linprog, minimize_scalar, root

from coopml.contracts import (
    ContractProblem,
    least_rent_rewards,
    reservation_utilities,
    solve_contract,
    verify_contract,
)
from coopml.contracts._moments import Moments
from coopml.contracts.complete_information import complete_information, information_cost

from .conftest import SCENARIOS, rng_problem

# The authors' published output for scenario 1 and the spec's two-type point.
PAPER_M1 = [391.01769307, 391.78419325, 392.3847326, 393.14830179, 424.68693801]
PAPER_T1 = [84.97363539, 85.09627542, 85.16834014, 85.22942568, 86.49097113]


def test_reservation_reference_numbers(scenario1):
    problem, _ = scenario1
    res = problem.reservation
    assert res.utilities.round(2).tolist() == [6.77, 13.15, 20.75, 30.34, 44.16]
    assert round(float(res.contributions[-1]), 1) == 445.7
    two = reservation_utilities([0.02, 0.01], problem.curve, problem.valuation)
    # the spec quotes 1148.5 (the authors' L-BFGS-B stop); the first-order condition
    # below pins the maximiser at 1148.39
    assert two.contributions.round(1).tolist() == [715.6, 1148.4]
    assert two.utilities.round(2).tolist() == [55.26, 64.16]
    # first-order condition v'(a) a'(m) = c at the reservation contribution
    _, d1, _ = problem.curve.derivatives(two.contributions)
    np.testing.assert_allclose(100 * d1, [0.02, 0.01], rtol=1e-6)


def test_scenario1_reference_values(scenario1):
    problem, res = scenario1
    assert res.verified and res.info["optimal"]
    assert round(res.expected_model_value, 2) == 86.48
    assert res.reservation_utilities.round(2).tolist() == [6.77, 13.15, 20.75, 30.34, 44.16]
    # the most efficient type gets the full model in expectation, contributes less than
    # alone (445.7) and gets a far better model than alone
    assert round(float(res.rewards[-1]), 2) == 86.49
    assert res.contributions[-1] < problem.reservation.contributions[-1]
    assert res.max_rewards[-1] == pytest.approx(res.rewards[-1], abs=1e-6)
    # the exact optimum: types 1-4 pool (costs equally spaced, uniform prior)
    assert res.contributions.round(2).tolist() == [391.91, 391.91, 391.91, 391.91, 425.39]
    assert res.rewards.round(2).tolist() == [85.15, 85.15, 85.15, 85.15, 86.49]


def test_paper_menu_is_feasible_but_not_optimal(scenario1):
    """The published scenario-1 menu satisfies every constraint but is an early stop of
    the authors' solver: our menu has a strictly higher objective."""
    problem, res = scenario1
    report = verify_contract(problem, PAPER_M1, PAPER_T1, tol=1e-4)
    assert report.passed
    np.testing.assert_allclose(res.contributions, PAPER_M1, rtol=4e-3)
    np.testing.assert_allclose(res.rewards, PAPER_T1, rtol=3e-3)
    moments = Moments(problem.outcome_space(), problem.curve, problem.valuation)
    paper = moments.at(np.array(PAPER_M1)).value
    assert res.expected_accuracy > paper + 2e-8


def test_scenario1_matches_kkt_root(scenario1):
    """Independent check: solve stationarity with only BC_5 active (Newton root)."""
    problem, res = scenario1
    c, f = problem.costs, problem.reservation.utilities
    moments = Moments(problem.outcome_space(), problem.curve, problem.valuation)
    chain = np.zeros(5)  # t_5 = f_1 + c_1 m_1 + sum_k c_k (m_k - m_{k-1})
    chain[0] = c[0]
    for k in range(1, 5):
        chain[k] += c[k]
        chain[k - 1] -= c[k]

    def kkt(z):
        m, lam = z[:5], z[5]
        mom = moments.at(m)
        stat = mom.grad - lam * (chain - mom.jac[4])
        return np.concatenate([1e4 * stat, [mom.tbar[4] - f[0] - chain @ m]])

    sol = root(kkt, np.r_[PAPER_M1, 1e-3], method="hybr", options={"xtol": 1e-13})
    assert sol.success
    np.testing.assert_allclose(res.contributions, sol.x[:5], rtol=1e-7)


def _two_type_brute_force(problem):
    """1-D search: given m_1, the largest m_2 satisfying BC_2 with the chain rewards."""
    c, f = problem.costs, problem.reservation.utilities
    moments = Moments(problem.outcome_space(), problem.curve, problem.valuation)

    def m2_max(m1):
        def gap(m2):
            return moments.at(np.array([m1, m2])).tbar[1] - (f[0] + c[0] * m1 + c[1] * (m2 - m1))

        return brentq(gap, m1, 1e5, xtol=1e-11)

    best = minimize_scalar(
        lambda m1: -moments.at(np.array([m1, m2_max(m1)])).value,
        bounds=(1800.0, 1950.0),
        method="bounded",
        options={"xatol": 1e-9},
    )
    return np.array([best.x, m2_max(best.x)]), -best.fun


def test_two_type_point_against_brute_force(two_type):
    problem, res = two_type
    m_bf, value_bf = _two_type_brute_force(problem)
    np.testing.assert_allclose(res.contributions, m_bf, rtol=1e-6)
    assert res.expected_accuracy == pytest.approx(value_bf, abs=1e-12)
    assert res.contributions.round(1).tolist() == [1915.8, 1917.9]
    # the spec's (1909.0, 1924.7) is feasible but has a lower objective
    m_spec = np.array([1909.0, 1924.7])
    c, f = problem.costs, problem.reservation.utilities
    t_spec = least_rent_rewards(m_spec, c, f)
    assert verify_contract(problem, m_spec, t_spec, tol=1e-2).passed
    np.testing.assert_allclose(res.contributions, m_spec, rtol=4e-3)


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_formulations_agree(scenario):
    problem = ContractProblem(10, SCENARIOS[scenario], [0.2] * 5)
    full = solve_contract(problem, formulation="full")
    simple = solve_contract(problem, formulation="simplified")
    np.testing.assert_allclose(full.contributions, simple.contributions, rtol=1e-6)
    np.testing.assert_allclose(full.rewards, simple.rewards, rtol=1e-6)
    assert full.expected_accuracy == pytest.approx(simple.expected_accuracy, abs=1e-11)
    assert full.info["optimal"] and simple.info["optimal"]


def test_scenario3_badly_scaled_is_fast_and_verified():
    problem = ContractProblem(10, SCENARIOS[3], [0.2] * 5)
    start = time.perf_counter()
    res = solve_contract(problem)
    assert time.perf_counter() - start < 5.0
    assert res.verified and res.info["optimal"]
    assert res.contributions.round(1).tolist() == [104.4, 104.4, 1166.6, 1166.6, 11740.7]
    assert res.binding["IR"] == ["1", "3", "5"] and res.binding["BC"] == ["5"]


def _check_properties(problem, res):
    order = problem.efficiency_order
    m, t = res.contributions[order], res.rewards[order]
    assert np.all(np.diff(m) >= -1e-6 * m.max()), "contributions monotone in efficiency"
    assert np.all(np.diff(t) >= -1e-6), "rewards monotone in efficiency"
    top, bottom = order[-1], order[0]
    assert res.max_rewards[top] - res.rewards[top] <= 1e-6, "BC binds for the most efficient"
    assert res.utilities[bottom] - res.reservation_utilities[bottom] <= 1e-6, "IR binds"
    assert np.all(res.information_rents >= -1e-9)
    assert information_cost(res, complete_information(problem)) <= 1e-9


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_properties_on_paper_scenarios(scenario):
    problem = ContractProblem(10, SCENARIOS[scenario], [0.2] * 5)
    _check_properties(problem, solve_contract(problem))


@given(seed=st.integers(0, 10_000), n_types=st.sampled_from([2, 3]))
@settings(max_examples=8, deadline=None)
def test_properties_on_random_problems(seed, n_types):
    problem = rng_problem(seed, n_types)
    full = solve_contract(problem)
    _check_properties(problem, full)
    simple = solve_contract(problem, formulation="simplified")
    np.testing.assert_allclose(full.contributions, simple.contributions, rtol=1e-5)


def test_pooling_when_p1_large():
    res = solve_contract(ContractProblem(10, [0.02, 0.01], [0.9, 0.1]))
    assert res.contributions[0] == pytest.approx(res.contributions[1], rel=1e-9)
    low = solve_contract(ContractProblem(10, [0.02, 0.01], [0.1, 0.9]))
    assert low.contributions[1] > 3 * low.contributions[0]


def test_costs_in_any_order_give_the_same_menu(scenario1):
    problem, res = scenario1
    perm = [3, 0, 4, 2, 1]
    shuffled = ContractProblem(10, problem.costs[perm], [0.2] * 5)
    res2 = solve_contract(shuffled)
    np.testing.assert_allclose(res2.contributions, res.contributions[perm], rtol=1e-7)


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_least_rent_rewards_match_linear_program(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    c = np.sort(rng.uniform(0.01, 1.0, k))[::-1]
    m = np.sort(rng.uniform(0, 100, k))
    f = rng.uniform(0, 10, k)
    t = least_rent_rewards(m, c, f)
    # LP: min sum t s.t. t_i >= f_i + c_i m_i, t_i - t_j >= c_i (m_i - m_j)
    rows, rhs = [], []
    for i in range(k):
        row = np.zeros(k)
        row[i] = -1
        rows.append(row)
        rhs.append(-(f[i] + c[i] * m[i]))
        for j in range(k):
            if i != j:
                row = np.zeros(k)
                row[i], row[j] = -1, 1
                rows.append(row)
                rhs.append(-c[i] * (m[i] - m[j]))
    lp = linprog(np.ones(k), A_ub=np.array(rows), b_ub=rhs, bounds=(None, None))
    np.testing.assert_allclose(t, lp.x, atol=1e-7)


def test_sampled_outcomes_approximate_the_exact_menu(scenario1):
    problem, exact = scenario1
    res = solve_contract(problem, outcomes="sampled", n_samples=50_000, random_state=0)
    assert res.info["outcomes"] == "sampled" and res.stderr["expected_model_value"] > 0
    diff = abs(res.expected_model_value - exact.expected_model_value)
    assert diff < 4 * res.stderr["expected_model_value"] + 1e-3
    np.testing.assert_allclose(res.contributions, exact.contributions, rtol=5e-2)


def test_coarse_to_fine_path_on_many_outcomes():
    problem = ContractProblem(20, np.linspace(1.0, 0.4, 6), [1 / 6] * 6)
    assert problem.n_outcomes > 50_000
    res = solve_contract(problem)
    assert res.verified and res.info["optimal"] and res.info["outcomes"] == "exact"


def test_excluded_types_and_keep_out():
    problem = ContractProblem(10, SCENARIOS[3], [0.2] * 5)
    serve = np.array([False, False, True, True, True])
    res = solve_contract(problem, serve=serve)
    assert res.verified and res.contributions[:2].tolist() == [0.0, 0.0]
    f = problem.reservation.utilities
    for e in (0, 1):  # excluded types prefer training alone to every option
        assert np.all(f[e] >= res.rewards[serve] - problem.costs[e] * res.contributions[serve])
    assert res.utilities[:2].tolist() == f[:2].tolist()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"formulation": "dual"}, "parameter 'formulation' must be one of 'full', 'simplified'"),
        ({"serve": [True, False]}, "parameter 'serve' must be 5 booleans"),
        ({"serve": np.zeros(5, bool)}, "parameter 'serve' must serve at least one type"),
        ({"tol": 0.0}, "parameter 'tol' must be finite and > 0"),
        ({"outcomes": "some"}, "parameter 'outcomes' must be one of"),
    ],
)
def test_bad_solver_arguments(scenario1, kwargs, match):
    problem, _ = scenario1
    with pytest.raises((ValueError, TypeError), match=match):
        solve_contract(problem, **kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((10, [0.2, -0.1], [0.5, 0.5]), "parameter 'costs' must hold finite numbers > 0"),
        ((10, [0.2, 0.2], [0.5, 0.5]), "parameter 'costs' must hold distinct values"),
        ((10, [0.2, 0.1], [0.5]), r"parameter 'prior' must have one entry per type \(2\)"),
        ((0, [0.2, 0.1], [0.5, 0.5]), "parameter 'n_participants' must be >= 1"),
    ],
)
def test_bad_problem_inputs(args, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ContractProblem(*args)


def test_unbounded_curve_is_a_clear_error():
    from coopml.contracts import CustomCurve

    linear = CustomCurve(lambda M: M, lambda M: np.ones_like(M), lambda M: np.zeros_like(M))
    problem = ContractProblem(3, [0.02, 0.01], [0.5, 0.5], curve=linear)
    with pytest.raises(ValueError, match="training alone is unbounded"):
        solve_contract(problem)


def test_verification_detects_every_violation(two_type):
    problem, res = two_type
    m, t = res.contributions, res.rewards
    assert verify_contract(problem, m, t).passed
    assert verify_contract(problem, m, t - np.array([1.0, 0.0])).ir > 0.9  # type 1 below f
    assert verify_contract(problem, m, t + np.array([0.0, 1.0])).bc > 0.9  # over the cap
    assert verify_contract(problem, m, t + np.array([0.5, 0.0])).ic > 0.4  # type 2 mimics 1
    assert verify_contract(problem, m, t + np.array([0.0, 1.0])).realised > 0.9
    assert verify_contract(problem, -m, t).nonnegativity > 0
