"""Subgame-perfect equilibria of general fine-tuning games: no profitable deviation on
random instances, regimes, general cost / revenue functions, validation."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.finetuning import (
    CallableCost,
    CallableRevenue,
    FineTuningGame,
    LinearRevenue,
    PolynomialCost,
    PowerRevenue,
    Specialist,
    deviation_gains,
    regime_conditions,
    solve_shares,
    subgame_perfect_equilibrium,
    three_regimes_game,
    vertical_integration,
)


def random_game(rng: np.random.Generator, n: int) -> FineTuningGame:
    def cost(generalist: bool = False) -> PolynomialCost:
        coefs = [rng.choice([0.0, rng.uniform(0, 0.6)]), rng.uniform(0.3, 2.0)]
        if rng.random() < 0.4:
            coefs.append(rng.uniform(0, 0.5))  # cubic part
        fixed = 0.0 if rng.random() < 0.4 else rng.uniform(0, 0.3 if generalist else 0.5)
        return PolynomialCost(tuple(coefs), fixed=fixed)

    def revenue():
        if rng.random() < 0.7:
            return LinearRevenue(rng.uniform(0.5, 2.0))
        return PowerRevenue(rng.uniform(0.5, 2.0), rng.uniform(0.5, 1.0))

    return FineTuningGame(
        cost(generalist=True), tuple(Specialist(cost(), revenue(), f"s{i}") for i in range(n))
    )


@pytest.mark.parametrize("seed", range(12))
def test_no_player_gains_from_deviating_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    game = random_game(rng, n=1 + seed % 3)
    for delta in (rng.uniform(0, 1, game.n_specialists), rng.uniform()):
        eq = subgame_perfect_equilibrium(game, delta)
        scale = max(1.0, abs(eq.u_generalist), *np.abs(eq.u_specialists))
        gains = deviation_gains(game, eq, n_grid=2001)
        assert np.all(gains <= 1e-9 * scale), (gains, eq)
        # equilibrium utilities are those of the reported actions
        assert eq.u_generalist >= 0 and np.all(eq.u_specialists >= 0)


def test_deviation_check_detects_a_non_equilibrium():
    game = FineTuningGame.quadratic(1.0, 1.0, 1.0)
    eq = subgame_perfect_equilibrium(game, 0.5)
    from dataclasses import replace

    lazy = replace(eq, alpha0=0.1, u_generalist=0.05)  # the generalist under-invests
    assert deviation_gains(game, lazy)[0] > 0.1


def test_pure_quadratic_specialists_always_contribute():
    game = FineTuningGame.quadratic(1.0, [0.5, 1.0, 4.0], [1.0, 2.0, 0.5])
    out = solve_shares(game, np.linspace(0, 0.99, 50), method="numerical")
    assert np.all(out["regimes"] == 0)
    assert subgame_perfect_equilibrium(game, 1.0).regimes == ("free-ride",) * 3


def test_three_regimes_and_the_first_order_conditions():
    eq = subgame_perfect_equilibrium(three_regimes_game(), 0.5)
    assert eq.regimes == ("contribute", "free-ride", "abstain")
    assert eq.alpha[2] == 0.0 and eq.u_specialists[2] == 0.0
    assert eq.alpha[1] == pytest.approx(eq.alpha0)  # the free-rider adopts the model as is
    assert regime_conditions(three_regimes_game(), eq.alpha0, 0.5) == eq.regimes


@pytest.mark.parametrize("seed", range(8))
def test_first_order_conditions_match_best_responses_without_fixed_costs(seed):
    rng = np.random.default_rng(100 + seed)
    specialists = tuple(
        Specialist(
            PolynomialCost((rng.uniform(0, 1.5), rng.uniform(0.3, 2))),
            LinearRevenue(rng.uniform(0.5, 2)),
            f"s{i}",
        )
        for i in range(3)
    )
    game = FineTuningGame(PolynomialCost.quadratic(rng.uniform(0.5, 2)), specialists)
    delta = rng.uniform(0, 1, 3)
    eq = subgame_perfect_equilibrium(game, delta)
    assert regime_conditions(game, eq.alpha0, delta) == eq.regimes


def test_over_investment_to_induce_entry():
    # with an entry cost of 0.5 the generalist raises alpha0 until specialist c joins
    game = three_regimes_game(fixed=0.5)
    eq = subgame_perfect_equilibrium(game, 0.5)
    assert eq.regimes[2] == "free-ride" and eq.u_specialists[2] == pytest.approx(0.0, abs=1e-9)
    assert eq.alpha0 == pytest.approx(1.0, abs=1e-9)  # (1 - 0.5) * alpha0 = 0.5


def test_generalist_abstains_when_its_entry_cost_is_too_high():
    game = FineTuningGame(
        PolynomialCost.quadratic(1.0, fixed=5.0),
        (Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(1.0)),),
    )
    eq = subgame_perfect_equilibrium(game, 0.5)
    assert not eq.generalist_invests
    assert eq.u_generalist == 0 and eq.alpha0 == 0 and eq.regimes == ("abstain",)
    assert eq.welfare == 0


def test_callable_functions_match_their_polynomial_twins():
    poly = FineTuningGame(
        PolynomialCost.quadratic(1.0),
        (Specialist(PolynomialCost.quadratic(2.0, linear=0.2), LinearRevenue(1.5)),),
    )
    user = FineTuningGame(
        CallableCost(lambda a: a**2),
        (
            Specialist(
                CallableCost(lambda x: 0.2 * x + 2 * x**2), CallableRevenue(lambda a: 1.5 * a)
            ),
        ),
    )
    for delta in (0.0, 0.3, 0.8):
        a, b = subgame_perfect_equilibrium(poly, delta), subgame_perfect_equilibrium(user, delta)
        assert a.regimes == b.regimes
        assert b.alpha0 == pytest.approx(a.alpha0, abs=1e-6)
        np.testing.assert_allclose(b.alpha, a.alpha, atol=1e-6)
        assert b.u_generalist == pytest.approx(a.u_generalist, abs=1e-9)
    assert vertical_integration(user).welfare == pytest.approx(vertical_integration(poly).welfare)


def test_scalar_callables_and_concave_revenue():
    game = FineTuningGame(
        CallableCost(lambda a: float(np.expm1(a)) - a, vectorized=False),
        (Specialist(PolynomialCost.quadratic(1.0), CallableRevenue(np.log1p)),),
    )
    eq = subgame_perfect_equilibrium(game, 0.5)
    assert np.all(deviation_gains(game, eq) <= 1e-9)
    assert eq.regimes == ("contribute",)


def test_equilibrium_result_serialises():
    import json

    eq = subgame_perfect_equilibrium(three_regimes_game(), [0.2, 0.5, 0.9])
    out = json.loads(json.dumps(eq.to_dict()))
    assert out["regimes"][0] == "contribute" and out["delta"] == [0.2, 0.5, 0.9]
    assert list(eq.to_dataframe().columns) == ["specialist", "delta", "alpha", "regime", "utility"]


def test_validation_messages():
    game = FineTuningGame.quadratic(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"parameter 'delta' must lie in \[0, 1\]; got 1.5"):
        subgame_perfect_equilibrium(game, 1.5)
    with pytest.raises(
        ValueError, match=r"one share or one per specialist \(2\); got shape \(3,\)"
    ):
        subgame_perfect_equilibrium(FineTuningGame.quadratic(1.0, [1, 1], [1, 1]), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="method='numerical'"):
        subgame_perfect_equilibrium(three_regimes_game(), 0.5, method="closed_form")
    with pytest.raises(ValueError, match="parameter 'method' must be one of"):
        subgame_perfect_equilibrium(game, 0.5, method="exact")
    with pytest.raises(TypeError, match="parameter 'game' must be a FineTuningGame"):
        subgame_perfect_equilibrium("game", 0.5)
    with pytest.raises(ValueError, match=r"parameter 'c1' must be finite and > 0; got -2\.0"):
        FineTuningGame.quadratic(1.0, -2.0, 1.0)
    with pytest.raises(ValueError, match=r"parameter 'revenue' must be finite and > 0; got 0\.0"):
        FineTuningGame.quadratic(1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="must be scalars or sequences of equal length"):
        FineTuningGame.quadratic(1.0, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive coefficient of degree >= 2"):
        PolynomialCost((1.0,))
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        PolynomialCost((-1.0, 1.0))
    with pytest.raises(ValueError, match=r"parameter 'fixed' must be finite and >= 0; got -1\.0"):
        PolynomialCost.quadratic(1.0, fixed=-1.0)
    with pytest.raises(ValueError, match="parameter 'func' must be 0 at 0"):
        CallableCost(lambda x: x + 1)
    with pytest.raises(ValueError, match=r"parameter 'exponent' must lie in \(0, 1\]; got 2.0"):
        PowerRevenue(1.0, 2.0)
    with pytest.raises(TypeError, match="parameter 'cost' must be a PolynomialCost"):
        Specialist("quadratic", LinearRevenue(1.0))
    with pytest.raises(ValueError, match="must hold at least one Specialist"):
        FineTuningGame(PolynomialCost.quadratic(1.0), ())
    with pytest.raises(ValueError, match="distinct names"):
        FineTuningGame(
            PolynomialCost.quadratic(1.0),
            [Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(1.0), "x")] * 2,
        )
    with pytest.raises(ValueError, match="never outgrow its revenue"):
        FineTuningGame(
            PolynomialCost.quadratic(1.0),
            (Specialist(CallableCost(lambda x: np.log1p(x)), LinearRevenue(1.0)),),
        ).search_bounds()
    with pytest.raises(ValueError, match="parameter 'n_grid' must be >= 3"):
        deviation_gains(game, subgame_perfect_equilibrium(game, 0.5), n_grid=1)
