"""Bargaining over the shares: the interface JSON, the numerical path against the
DERIVED closed forms, per-domain shares, and the disconnected Pareto instance."""

from __future__ import annotations

import json

import numpy as np
import pytest

from coopml.bargaining import pareto_mask
from coopml.finetuning import (
    SOLUTION_NAMES,
    FineTuningGame,
    bargain,
    disconnected_pareto_game,
    quadratic_pareto_set,
    quadratic_solution_shares,
    quadratic_utilities,
    solve_shares,
)

KEYS = {"delta", "u_generalist", "u_specialist", "alpha0", "alpha1"}


def test_interface_json_for_one_specialist():
    result = bargain(FineTuningGame.quadratic(c0=1.0, c1=3.0, revenue=2.0))
    out = json.loads(json.dumps(result.to_dict()))
    assert out["pareto_set"] == [[0.4, 1.0]]
    assert set(out["solutions"]) == set(SOLUTION_NAMES)
    derived = quadratic_solution_shares(1.0, 3.0)
    for name, sol in out["solutions"].items():
        assert KEYS <= set(sol)
        assert sol["delta"] == pytest.approx(derived[name], abs=1e-12)
        u = quadratic_utilities(1.0, 3.0, 2.0, [sol["delta"]])[0]
        assert (sol["u_generalist"], sol["u_specialist"]) == pytest.approx(tuple(u))
        assert sol["alpha0"] == pytest.approx(sol["delta"] * 2.0 / 2.0)
        assert sol["alpha1"] == pytest.approx(sol["alpha0"] + (1 - sol["delta"]) * 2.0 / 6.0)
    assert out["vertical_integration"]["welfare"] == pytest.approx(4 / 4 + 4 / 12)
    assert result.recommended.method == "nash"


def test_numerical_bargain_agrees_with_the_closed_forms():
    game = FineTuningGame.quadratic(1.0, 0.4, 1.0)
    numeric = bargain(game, method="numerical", n_grid=401)
    derived = quadratic_solution_shares(1.0, 0.4)
    assert numeric.method == "numerical"
    for name in SOLUTION_NAMES:
        assert numeric.solutions[name].delta == pytest.approx(derived[name], abs=1e-6), name
        assert numeric.solutions[name].pareto_optimal
    np.testing.assert_allclose(numeric.pareto_set, [quadratic_pareto_set(1.0, 0.4)], atol=1e-6)
    assert numeric.integrated.welfare == pytest.approx(1 / 4 + 1 / 1.6)


def test_common_shares_with_several_specialists_use_the_bargaining_toolkit():
    game = FineTuningGame.quadratic(1.0, [1.0, 2.0], [1.0, 2.0])
    result = bargain(game, n_grid=401)
    grid = np.linspace(0, 1, 4001)
    out = solve_shares(game, grid)
    U = np.column_stack([out["u_generalist"], out["u_specialists"]])
    # brute force: utilitarian share maximises the total, egalitarian the minimum
    util, egal = result.solutions["utilitarian"], result.solutions["egalitarian"]
    assert util.delta == pytest.approx(grid[np.argmax(U.sum(axis=1))], abs=1e-3)
    assert egal.delta == pytest.approx(grid[np.argmax(U.min(axis=1))], abs=1e-3)
    mask = pareto_mask(U, tol=1e-12)
    assert result.pareto_set[0][0] == pytest.approx(grid[mask][0], abs=1e-3)
    sol = result.to_dict()["solutions"]["nash"]
    assert isinstance(sol["delta"], float) and len(sol["u_specialist"]) == 2
    assert len(result.to_dataframe()) == 5


def test_per_domain_shares_on_a_lattice():
    game = FineTuningGame.quadratic(1.0, [1.0, 2.0], [1.0, 2.0])
    result = bargain(game, shares="per_domain", n_grid=5)
    assert result.deltas.shape == (25, 2)
    U = result.utilities
    util = result.solutions["utilitarian"]
    assert util.equilibrium.welfare == pytest.approx(U.sum(axis=1).max())
    assert util.pareto_optimal and result.pareto_mask.sum() > 1
    out = result.to_dict()
    assert len(out["solutions"]["nash"]["delta"]) == 2
    assert all(len(p) == 2 for p in out["pareto_set"])
    # per-domain shares do at least as well as the best common share (0.75, on the lattice)
    common = bargain(game)
    assert util.equilibrium.welfare >= common.solutions["utilitarian"].equilibrium.welfare - 1e-12


def test_disconnected_pareto_instance():
    game = disconnected_pareto_game()
    result = bargain(game, n_grid=501)
    assert len(result.pareto_set) == 2
    np.testing.assert_allclose(result.pareto_set[0], [0.0, 0.7746], atol=2e-3)
    np.testing.assert_allclose(result.pareto_set[1], [0.7959, 0.8178], atol=2e-3)
    # a brute-force non-dominated filter on a dense grid agrees
    grid = np.linspace(0, 1, 4001)
    out = solve_shares(game, grid)
    mask = pareto_mask(np.column_stack([out["u_generalist"], out["u_specialists"]]), tol=1e-10)
    inside = np.array([any(a - 2e-3 <= t <= b + 2e-3 for a, b in result.pareto_set) for t in grid])
    assert np.all(inside[mask])
    assert not np.any(mask[(grid > 0.78) & (grid < 0.79)])  # the gap


def test_validation_messages():
    game = FineTuningGame.quadratic(1.0, 1.0, 1.0)
    with pytest.raises(
        ValueError, match="parameter 'shares' must be one of 'common', 'per_domain'"
    ):
        bargain(game, shares="each")
    with pytest.raises(ValueError, match="parameter 'n_grid' must be >= 3; got 1"):
        bargain(game, n_grid=1)
    many = FineTuningGame.quadratic(1.0, [1.0] * 4, [1.0] * 4)
    with pytest.raises(ValueError, match="per-domain bargaining allows at most 200000"):
        bargain(many, shares="per_domain", n_grid=30)
