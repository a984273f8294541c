"""Cournot and Bertrand equilibria: closed forms, exit, deviation checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.competition import (
    BertrandMarket,
    CournotMarket,
    MarketModel,
    bertrand_equilibrium,
    cournot_equilibrium,
    deviation_gain,
    equilibrium_deviation_gain,
    equilibrium_profits,
    solve_equilibrium,
)

costs_st = st.lists(st.floats(0.0, 1.2), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(costs=costs_st, gamma=st.floats(0.0, 1.0))
def test_cournot_is_an_equilibrium(costs: list[float], gamma: float) -> None:
    eq = cournot_equilibrium(1.0, costs, gamma)
    assert equilibrium_deviation_gain(eq) <= 1e-8
    assert np.all(eq.quantities[~eq.active] == 0)
    assert np.all(eq.quantities[eq.active] > 0)


@settings(max_examples=40, deadline=None)
@given(costs=costs_st, gamma=st.floats(0.0, 0.98))
def test_bertrand_is_an_equilibrium(costs: list[float], gamma: float) -> None:
    eq = bertrand_equilibrium(1.0, costs, gamma)
    assert equilibrium_deviation_gain(eq) <= 1e-8
    assert np.all(eq.quantities[eq.active] > 0)


def test_deviation_check_detects_a_non_equilibrium() -> None:
    eq = cournot_equilibrium(1.0, [0.1, 0.2], 0.5)
    fake = type(eq)(**{**eq.__dict__, "quantities": eq.quantities * 1.1})
    assert equilibrium_deviation_gain(fake) > 1e-5


def test_cournot_closed_form_and_surplus() -> None:
    m, g = np.array([1.0, 0.8, 0.9]), 0.6
    eq = cournot_equilibrium(1.0, 1.0 - m, g)
    big_q = m.sum() / (2 + 2 * g)
    q = (m - g * big_q) / (2 - g)
    np.testing.assert_allclose(eq.quantities, q)
    np.testing.assert_allclose(eq.profits, q**2)
    b = (1 - g) * np.eye(3) + g
    np.testing.assert_allclose(eq.prices, 1.0 - b @ q)
    utility = q.sum() - 0.5 * q @ b @ q
    assert eq.consumer_surplus == pytest.approx(utility - eq.prices @ q)
    assert eq.welfare == pytest.approx(eq.consumer_surplus + eq.profits.sum())


def test_cournot_exit() -> None:
    eq = cournot_equilibrium(1.0, [0.0, 0.9], 1.0)  # 2*0.1 < 1*1: the second firm exits
    assert eq.active.tolist() == [True, False]
    np.testing.assert_allclose(eq.quantities, [0.5, 0.0])
    assert eq.profits[0] == pytest.approx(0.25)
    assert eq.to_dict()["prices"][1] is None


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.9])
def test_bertrand_duopoly_closed_form(gamma: float) -> None:
    a, c = 1.0, np.array([0.1, 0.25])
    eq = bertrand_equilibrium(a, c, gamma)
    p = ((2 + gamma) * a * (1 - gamma) + 2 * c + gamma * c[::-1]) / (4 - gamma**2)
    np.testing.assert_allclose(eq.prices, p)
    q = (a * (1 - gamma) - p + gamma * p[::-1]) / (1 - gamma**2)
    np.testing.assert_allclose(eq.profits, (p - c) * q)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="parameter 'gamma' must lie in"):
        cournot_equilibrium(1.0, [0.1], 1.5)
    with pytest.raises(ValueError, match="parameter 'gamma' must be < 1"):
        bertrand_equilibrium(1.0, [0.1, 0.2], 1.0)
    with pytest.raises(ValueError, match="parameter 'costs'"):
        cournot_equilibrium(1.0, [np.nan], 0.5)
    with pytest.raises(TypeError, match="parameter 'a'"):
        cournot_equilibrium("1", [0.1], 0.5)  # type: ignore[arg-type]


# ---- user-supplied market models, numerical equilibria ------------------------------


class NumericCournot(CournotMarket):
    """The built-in Cournot market without its closed form: solved numerically."""

    equilibrium_actions = None  # type: ignore[assignment]


class NumericBertrand(BertrandMarket):
    equilibrium_actions = None  # type: ignore[assignment]


class LogitBertrand:
    """A user model: price competition with logit demand (outside good), not linear.

    Share ``s_i = exp(a_i - p_i) / (1 + sum_j exp(a_j - p_j))``, profit ``(p_i - c_i) s_i``.
    """

    def profits(self, p: np.ndarray, a: np.ndarray, c: np.ndarray) -> np.ndarray:
        u = np.exp(a - p)
        return (p - c) * u / (1 + u.sum(axis=-1, keepdims=True))

    def action_bounds(self, a: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(c, float), np.asarray(c, float) + 10.0


@settings(max_examples=15, deadline=None)
@given(
    costs=st.lists(st.floats(0.0, 0.4), min_size=2, max_size=4),
    gamma=st.floats(0.0, 1.0),
    method=st.sampled_from(["best_response", "root"]),
)
def test_numerical_cournot_matches_closed_form(
    costs: list[float], gamma: float, method: str
) -> None:
    eq = solve_equilibrium(NumericCournot(gamma), 1.0, costs, method=method)
    assert eq.converged and eq.method.startswith(method)
    assert eq.max_deviation_gain <= 1e-8
    exact = cournot_equilibrium(1.0, costs, gamma)
    np.testing.assert_allclose(eq.actions, exact.quantities, atol=1e-6)
    np.testing.assert_allclose(eq.profits, exact.profits, atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(costs=st.lists(st.floats(0.0, 0.3), min_size=2, max_size=3), gamma=st.floats(0.0, 0.9))
def test_numerical_bertrand_matches_closed_form(costs: list[float], gamma: float) -> None:
    exact = bertrand_equilibrium(1.0, costs, gamma)
    if not exact.active.all():
        return
    eq = solve_equilibrium(NumericBertrand(gamma), 1.0, costs)
    assert eq.converged and eq.max_deviation_gain <= 1e-8
    np.testing.assert_allclose(eq.actions, exact.prices, atol=1e-6)
    closed = solve_equilibrium(BertrandMarket(gamma), 1.0, costs)
    assert closed.method == "closed_form" and closed.converged


@settings(max_examples=15, deadline=None)
@given(
    a=st.lists(st.floats(0.0, 2.0), min_size=2, max_size=4),
    c=st.floats(0.0, 1.0),
    method=st.sampled_from(["best_response", "root"]),
)
def test_user_model_equilibrium_has_no_profitable_deviation(
    a: list[float], c: float, method: str
) -> None:
    market = LogitBertrand()
    costs = np.full(len(a), c)
    eq = solve_equilibrium(market, a, costs, method=method)
    assert isinstance(market, MarketModel)
    assert eq.converged
    assert deviation_gain(market, eq.actions, a, costs, n_grid=1001) <= 1e-8
    # logit first-order condition: p_i - c_i = 1 / (1 - s_i)
    u = np.exp(np.asarray(a) - eq.actions)
    share = u / (1 + u.sum())
    np.testing.assert_allclose(eq.actions - costs, 1 / (1 - share), rtol=1e-6)


def test_numerical_solver_reports_failure() -> None:
    eq = solve_equilibrium(LogitBertrand(), [1.0, 2.0, 0.5], [0.0, 0.0, 0.0], max_iter=1)
    assert not eq.converged
    fake = [0.5, 0.5]
    assert deviation_gain(CournotMarket(0.5), fake, [1.0, 1.0], [0.0, 0.0]) > 1e-3
    with pytest.raises(TypeError, match="parameter 'market' must have methods"):
        solve_equilibrium(object(), [1.0], [0.0])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parameter 'method' must be one of"):
        solve_equilibrium(LogitBertrand(), [1.0], [0.0], method="newton")


def test_closed_forms_with_firm_specific_intercepts() -> None:
    """Only a_i - c_i matters for quantities and profits; prices shift with a_i."""
    a, c = np.array([1.0, 0.9, 0.95]), np.array([0.1, 0.0, 0.05])
    for solve in (cournot_equilibrium, bertrand_equilibrium):
        shifted = solve(a, c, 0.6)
        base = solve(1.0, c + (1.0 - a), 0.6)
        np.testing.assert_allclose(shifted.quantities, base.quantities)
        np.testing.assert_allclose(shifted.profits, base.profits)
        np.testing.assert_allclose(shifted.prices, base.prices - (1.0 - a))
        assert equilibrium_deviation_gain(shifted) <= 1e-10
    np.testing.assert_allclose(
        equilibrium_profits(a, c, 0.6, "bertrand"), bertrand_equilibrium(a, c, 0.6).profits
    )
