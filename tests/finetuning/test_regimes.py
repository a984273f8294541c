"""Regime maps: contribute / free-ride / abstain over cost parameters."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.finetuning import (
    FineTuningGame,
    LinearRevenue,
    PolynomialCost,
    RegimeMap,
    Specialist,
    regime_map,
    three_regimes_game,
)


def one(linear: float, fixed: float) -> FineTuningGame:
    return FineTuningGame(
        PolynomialCost.quadratic(1.0),
        (
            Specialist(
                PolynomialCost.quadratic(1.0, linear=linear, fixed=fixed), LinearRevenue(1.0)
            ),
        ),
    )


def brute_force_regime(linear: float, fixed: float, delta: float = 0.5) -> int:
    """Backward induction on a dense grid: phi_0 = a0^2, phi = fixed + linear x + x^2, r = a."""
    a0 = np.linspace(0, 2, 200001)
    x = max(0.0, ((1 - delta) - linear) / 2)  # specialist's interior KKT point
    profit = (1 - delta) * (a0 + x) - linear * x - x**2 - fixed
    joins = profit >= 0
    u_g = np.where(joins, delta * (a0 + x), 0.0) - a0**2
    k = int(np.argmax(u_g))
    return 2 if not joins[k] else (0 if x > 0 else 1)


def test_regime_boundaries_of_one_specialist():
    # at delta = 1/2 a specialist contributes iff (1 - delta) r > linear; with an entry
    # cost the generalist may over-invest to make it join (fixed = 0.13 > 0.125 below)
    linear = np.array([0.0, 0.3, 0.49, 0.51, 0.9])
    fixed = np.array([0.0, 0.1, 0.125, 0.13, 0.5])
    m = regime_map(one, linear, fixed, delta=0.5, x_label="linear", y_label="fixed")
    assert m.regimes.shape == (5, 5, 1)
    expected = np.array([[brute_force_regime(a, f) for a in linear] for f in fixed])
    np.testing.assert_array_equal(m.regimes[..., 0], expected)
    assert set(expected.ravel()) == {0, 1, 2}
    assert m.counts()["specialist"]["abstain"] == int(np.sum(expected == 2))
    frame = m.to_dataframe()
    assert len(frame) == 25 and set(frame["regime"]) == {"contribute", "free-ride", "abstain"}
    assert m.to_dict()["regimes"][0][0] == ["contribute"]


def test_three_specialists_map():
    m = regime_map(three_regimes_game, [0.0, 0.9], [0.0, 2.0], delta=0.5)
    assert isinstance(m, RegimeMap) and m.names == ("a", "b", "c")
    assert np.all(m.regimes[..., 0] == 0)  # pure quadratic: always contributes
    assert m.regimes[0, 1, 1] == 1 and m.regimes[1, 1, 2] == 2
    assert m.generalist_invests.all()


def test_validation():
    with pytest.raises(TypeError, match="parameter 'build' must be callable"):
        regime_map(None, [0.0], [0.0])
    with pytest.raises(ValueError, match="parameter 'x' must be a non-empty finite sequence"):
        regime_map(one, [], [0.0])

    def changing(x: float, y: float) -> FineTuningGame:
        return three_regimes_game() if x > 0 else one(x, y)

    with pytest.raises(ValueError, match="must return games with the same specialists"):
        regime_map(changing, [0.0, 1.0], [0.0])
