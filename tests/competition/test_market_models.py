"""Cournot and Bertrand equilibria: closed forms, exit, deviation checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coopml.competition import (
    bertrand_equilibrium,
    cournot_equilibrium,
    equilibrium_deviation_gain,
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
