"""Complete-information benchmark, exclusion, realisation, simulation, learning curves."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.contracts import ContractProblem, proportional_rewards, solve_contract
from coopml.contracts.accuracy import PowerLawCurve
from coopml.contracts.complete_information import complete_information, information_cost
from coopml.contracts.exclusion import solve_with_exclusion
from coopml.contracts.learning_curve import (
    LearningCurvePoints,
    fit_learning_curve,
    measure_learning_curve,
)
from coopml.contracts.simulation import simulate_mechanism

from .conftest import SCENARIOS


def test_complete_information_fixed_point(two_type):
    problem, res = two_type
    bench = complete_information(problem)
    space = problem.outcome_space()
    c, f = problem.costs, problem.reservation.utilities
    values = problem.valuation(problem.curve(bench.total_contributions))
    m_n = (values[:, None] - f) / c
    np.testing.assert_allclose(
        (space.counts * m_n).sum(axis=1), bench.total_contributions, rtol=1e-9
    )
    # the largest fixed point: slightly more data breaks IR for someone
    S = bench.total_contributions * 1.001
    assert np.all(
        (space.counts * (problem.valuation(problem.curve(S))[:, None] - f) / c).sum(axis=1) < S
    )
    assert information_cost(res, bench) < 0
    assert round(bench.expected_model_value, 2) == 94.33


@pytest.mark.parametrize("scenario", [1, 2, 3])
def test_information_cost_and_rents(scenario):
    problem = ContractProblem(10, SCENARIOS[scenario], [0.2] * 5)
    res = solve_contract(problem)
    assert information_cost(res, complete_information(problem)) <= 0
    assert np.all(res.information_rents >= -1e-9)


def test_exclusion_threshold_and_all_agree():
    problem = ContractProblem(6, [0.3, 0.05, 0.02], [0.6, 0.2, 0.2])
    thr = solve_with_exclusion(problem)
    everything = solve_with_exclusion(problem, candidates="all")
    assert len(everything.tried) == 7 and len(thr.tried) == 3
    assert everything.best.expected_accuracy >= thr.best.expected_accuracy - 1e-12
    best = max(v for _, v in everything.tried if v is not None)
    assert everything.best.expected_accuracy == pytest.approx(best)
    assert everything.best.verified


def test_exclusion_bad_candidates():
    with pytest.raises(ValueError, match="parameter 'candidates' must be one of 'all', "):
        solve_with_exclusion(ContractProblem(2, [0.2, 0.1], [0.5, 0.5]), candidates="best")


def test_proportional_rewards_never_exceed_the_model(two_type):
    problem, res = two_type
    space = problem.outcome_space()
    rho = proportional_rewards(
        res.contributions, res.rewards, space, problem.curve, problem.valuation
    )
    values = problem.valuation(problem.curve(space.counts @ res.contributions))
    assert np.nanmax(rho - values[:, None]) <= 1e-12
    means = np.nansum(space.weights[:, None] * rho, axis=0) / space.presence
    np.testing.assert_allclose(means, res.rewards, rtol=1e-12)
    assert np.isnan(rho[space.counts[:, 0] == 0, 0]).all()


def test_simulation_reproduces_expected_rewards(scenario1):
    problem, res = scenario1
    sim = simulate_mechanism(problem, res, n_rounds=5000, random_state=0)
    assert np.all(np.abs(sim.mean_rewards - res.rewards) < 4 * sim.stderr + 1e-9)
    assert sim.to_dataframe().shape == (5000, 1 + 5 + 5)
    again = simulate_mechanism(problem, res, n_rounds=5000, random_state=0)
    np.testing.assert_array_equal(sim.counts, again.counts)


def test_simulation_with_a_real_learner():
    from sklearn.naive_bayes import GaussianNB

    curve = PowerLawCurve(a_max=0.95, scale=5.0, exponent=0.8)
    problem = ContractProblem(3, [0.004, 0.002], [0.5, 0.5], curve=curve)
    res = solve_contract(problem)
    sim = simulate_mechanism(
        problem,
        res,
        n_rounds=6,
        learner=GaussianNB(),
        dataset="iris",
        rows_per_unit=0.02,
        random_state=0,
    )
    assert sim.measured
    assert np.all(sim.model_values > 50)  # trained models really classify iris
    finite = ~np.isnan(sim.realised)
    assert np.all(sim.realised[finite] <= sim.model_values[:, None].repeat(2, 1)[finite] + 15)


def test_fit_learning_curve_recovers_a_power_law():
    sizes = np.array([10.0, 30, 100, 300, 1000, 3000])
    truth = PowerLawCurve(a_max=0.93, scale=40.0, exponent=0.6)
    fit = fit_learning_curve(LearningCurvePoints(sizes, truth(sizes), np.zeros(6)))
    assert fit.a_max == pytest.approx(0.93, rel=1e-4)
    assert fit.scale == pytest.approx(40.0, rel=1e-3)
    assert fit.exponent == pytest.approx(0.6, rel=1e-3)


def test_measured_learning_curve_is_increasing_and_pluggable():
    pts = measure_learning_curve("iris", sizes=[6, 15, 40, 100], n_repeats=4, random_state=0)
    curve = fit_learning_curve(pts)
    assert curve(100.0) > curve(6.0)
    assert np.all(np.abs(curve(pts.sizes) - pts.scores) < 0.15)
    res = solve_contract(ContractProblem(4, [0.01, 0.005], [0.5, 0.5], curve=curve))
    assert res.verified


def test_learning_curve_bad_inputs():
    with pytest.raises(ValueError, match="parameter 'dataset' must be a classification"):
        measure_learning_curve("diabetes")
    with pytest.raises(ValueError, match=r"parameter 'sizes' must be integers in \[2, "):
        measure_learning_curve("iris", sizes=[1, 5])
