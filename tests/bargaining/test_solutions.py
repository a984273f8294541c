"""Bargaining solutions on curves, finite sets and convex sets: reference values,
brute-force cross-checks and validation."""

from __future__ import annotations

import numpy as np
import pytest

from coopml.bargaining import (
    SOLUTIONS,
    ConvexUtilitySet,
    FiniteUtilitySet,
    ParetoSet,
    UtilityCurve,
    egalitarian,
    ideal_point,
    kalai_smorodinsky,
    nash_bargaining,
    pareto_frontier,
    pareto_mask,
    utilitarian,
)


def segment() -> UtilityCurve:
    return UtilityCurve(lambda t: np.column_stack([t, 1 - t]))


def disk_quarter(radius: float = 1.0) -> ConvexUtilitySet:
    import cvxpy as cp

    return ConvexUtilitySet(2, lambda u: (u, [u >= 0, cp.norm(u, 2) <= radius]))


def test_segment_reference_values():
    for solve in (nash_bargaining, kalai_smorodinsky, egalitarian):
        s = solve(segment())
        assert s.parameter == pytest.approx(0.5, abs=1e-8)
        assert s.pareto_optimal and s.agreement
    s = nash_bargaining(segment(), [0.2, 0.0])
    assert s.parameter == pytest.approx(0.6, abs=1e-8)  # midpoint of the gains
    assert nash_bargaining(segment(), weights=[3.0, 1.0]).parameter == pytest.approx(0.75, abs=1e-8)


def test_curve_matches_convex_set_on_the_same_frontier():
    theta = UtilityCurve(lambda t: np.column_stack([np.cos(t), np.sin(t)]), (0.0, np.pi / 2))
    disk = disk_quarter()
    for solve in SOLUTIONS.values():
        a, b = solve(theta, [0.1, 0.3]), solve(disk, [0.1, 0.3])
        np.testing.assert_allclose(a.utilities, b.utilities, atol=1e-5)
        assert a.pareto_optimal and b.pareto_optimal
    # Nash on the quarter disk with d = 0 is the 45-degree point
    np.testing.assert_allclose(nash_bargaining(disk).utilities, [2**-0.5, 2**-0.5], atol=1e-6)


def brute(points: np.ndarray, d: np.ndarray, score) -> int:
    best, arg = -np.inf, -1
    for k, u in enumerate(points):
        g = u - d
        value = score(g)
        if value > best + 1e-12 or (
            abs(value - best) <= 1e-12 and arg >= 0 and g.sum() > (points[arg] - d).sum()
        ):
            best, arg = value, k
    return arg


@pytest.mark.parametrize("seed", range(6))
def test_finite_sets_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 1, size=(40, 3))
    d = rng.uniform(0, 0.3, size=3)
    problem = FiniteUtilitySet(points)

    def nash(g):
        return np.sum(np.log(g)) if np.all(g > 0) else -np.inf

    def egal(g):
        return g.min() if g.min() >= 0 else -np.inf

    def util(g):
        return g.sum() if g.min() >= 0 else -np.inf

    ideal = np.max(points[np.all(points >= d, axis=1)], axis=0)
    np.testing.assert_allclose(ideal_point(problem, d), ideal)

    def ks(g):
        return np.min(g / (ideal - d)) if g.min() >= 0 else -np.inf

    for solve, score in (
        (nash_bargaining, nash),
        (egalitarian, egal),
        (utilitarian, util),
        (kalai_smorodinsky, ks),
    ):
        s = solve(problem, d)
        assert s.index == brute(points, d, score)
        assert s.point == s.index
        expected_pareto = not any(
            np.all(v >= s.utilities) and np.any(v > s.utilities) for v in points
        )
        assert s.pareto_optimal == expected_pareto


@pytest.mark.parametrize("seed", range(4))
def test_pareto_mask_matches_double_loop(seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 5, size=(60, 2 + seed % 2)).astype(float)  # many ties
    expected = [not any(np.all(q >= p) and np.any(q > p) for q in points) for p in points]
    assert pareto_mask(points).tolist() == expected
    frontier = pareto_frontier(FiniteUtilitySet(points))
    assert frontier.indices.tolist() == np.flatnonzero(expected).tolist()


def test_finite_outcome_labels_and_no_agreement():
    s = nash_bargaining(FiniteUtilitySet([[1, 0], [0.5, 0.5], [0, 1]], outcomes=["x", "y", "z"]))
    assert s.point == "y" and s.index == 1
    none = nash_bargaining(FiniteUtilitySet([[1, 0], [0, 1]]))  # no strictly positive gains
    assert not none.agreement and none.point is None
    np.testing.assert_array_equal(none.utilities, [0, 0])
    assert egalitarian(FiniteUtilitySet([[1, 0], [0, 1]])).agreement  # weak gains are enough


def test_convex_no_agreement_when_disagreement_is_outside():
    s = nash_bargaining(disk_quarter(), [2.0, 2.0])
    assert not s.agreement and s.pareto_optimal is False
    assert not egalitarian(disk_quarter(), [2.0, 2.0]).agreement


def test_utilitarian_flat_frontier_is_pareto_and_weighted():
    box = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u <= 1]))
    s = utilitarian(box)
    np.testing.assert_allclose(s.utilities, [1, 1], atol=1e-6)
    tri = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] + u[1] <= 1]))
    np.testing.assert_allclose(utilitarian(tri, weights=[2, 1]).utilities, [1, 0], atol=1e-6)


def test_egalitarian_breaks_ties_toward_pareto():
    box = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] <= 1, u[1] <= 2]))
    s = egalitarian(box)
    np.testing.assert_allclose(s.utilities, [1, 2], atol=1e-5)
    assert s.pareto_optimal and s.info["level"] == pytest.approx(1.0, abs=1e-6)


def test_convex_decision_variable_is_reported():
    import cvxpy as cp

    # two goods split between two players: x = share of each good to player 0
    values = np.array([[3.0, 1.0], [1.0, 2.0]])

    def build(x):
        u = cp.hstack([values[0] @ x, values[1] @ (1 - x)])
        return u, [x >= 0, x <= 1]

    s = nash_bargaining(ConvexUtilitySet(2, build, dim=2))
    assert s.point.shape == (2,)
    np.testing.assert_allclose(
        s.utilities, [values[0] @ s.point, values[1] @ (1 - s.point)], atol=1e-6
    )


def test_curve_pareto_frontier_disconnected_and_interval_refinement():
    curve = UtilityCurve(lambda t: np.column_stack([t, 1 - t + 0.3 * (t > 0.5)]), n_grid=1001)
    intervals = pareto_frontier(curve).intervals
    assert len(intervals) == 2
    np.testing.assert_allclose(intervals[0], [0.0, 0.2], atol=1e-3)
    np.testing.assert_allclose(intervals[1], [0.5, 1.0], atol=1e-3)
    quasi = UtilityCurve(lambda t: np.column_stack([t * (1 - t), 1 - (t - 0.2) ** 2]))
    # quasi-concave: the interval between the two maximisers, refined beyond the grid
    np.testing.assert_allclose(pareto_frontier(quasi).intervals, [(0.2, 0.5)], atol=1e-9)


def test_curve_pareto_set_holds_isolated_points():
    # on [0.5, 1] player 1 stays at 0 while player 0 peaks at 0.70031 (between grid
    # points): that peak beats every share where player 1 gains, its neighbours do not
    def flat(t):
        return np.column_stack(
            [np.where(t < 0.5, t, 0.6 - (t - 0.70031) ** 2), np.where(t < 0.5, 1 - t, 0.0)]
        )

    frontier = pareto_frontier(UtilityCurve(flat))
    assert len(frontier.intervals) == 1 and len(frontier.isolated) == 1
    np.testing.assert_allclose(frontier.intervals[0], [0.0, 0.5], atol=1e-9)
    assert frontier.isolated[0] == pytest.approx(0.70031, abs=1e-7)
    assert frontier.contains(frontier.isolated[0]) and not frontier.contains(0.7)
    assert not frontier.connected
    assert frontier.points[-1] == frontier.isolated[0]
    assert str(frontier.pareto_set) == "[0.0000, 0.5000] ∪ {0.7003}"

    # an outcome attained only at a jump (t = 1/3, off the grid) dominates the whole curve:
    # found once the jump is declared a breakpoint, sampled exactly and on both sides
    def spike(t):
        return np.where((t == 1 / 3)[:, None], 1.0, np.column_stack([t, 1 - t]) / 2)

    assert pareto_frontier(UtilityCurve(spike, n_grid=1001)).intervals == ((0.0, 1.0),)
    exact = pareto_frontier(UtilityCurve(spike, n_grid=1001, breakpoints=[1 / 3]))
    assert exact.intervals == () and exact.isolated == (1 / 3,)


def test_pareto_set_object():
    s = ParetoSet([(0.6, 0.8), (0.1, 0.1), (0.0, 0.2)], points=[0.9])
    assert s.intervals == ((0.0, 0.2), (0.6, 0.8)) and s.points == (0.1, 0.9)
    assert list(s) == [(0.0, 0.2), (0.1, 0.1), (0.6, 0.8), (0.9, 0.9)] and len(s) == 4
    assert s[0] == (0.0, 0.2) and s.to_list()[-1] == [0.9, 0.9]
    assert s.to_dict() == {"intervals": [[0.0, 0.2], [0.6, 0.8]], "points": [0.1, 0.9]}
    assert s.contains(0.7) and s.contains(0.9) and not s.contains(0.85)
    assert s.format(1) == "[0.0, 0.2] ∪ {0.1} ∪ [0.6, 0.8] ∪ {0.9}"
    assert str(ParetoSet()) == "∅" and ParetoSet().connected
    with pytest.raises(ValueError, match=r"low <= high; got \(0.5, 0.2\)"):
        ParetoSet([(0.5, 0.2)])
    with pytest.raises(TypeError, match="must hold \\(low, high\\) pairs"):
        ParetoSet([0.5])
    with pytest.raises(ValueError, match=r"parameter 'breakpoints' must lie in \[0.0, 1.0\]"):
        UtilityCurve(lambda t: np.column_stack([t, 1 - t]), breakpoints=[1.5])


def test_convex_frontier_points_are_pareto_and_on_the_boundary():
    frontier = pareto_frontier(disk_quarter(2.0), n_points=9)
    assert frontier.n_points == 9
    np.testing.assert_allclose(np.linalg.norm(frontier.utilities, axis=1), 2.0, atol=1e-6)
    three = ConvexUtilitySet(3, lambda u: (u, [u >= 0, sum(u[i] for i in range(3)) <= 1]))
    f3 = pareto_frontier(three, n_points=10)
    assert f3.n_points >= 10
    np.testing.assert_allclose(f3.utilities.sum(axis=1), 1.0, atol=1e-6)
    assert f3.to_dataframe().shape[1] == 4


def test_results_serialise():
    import json

    s = nash_bargaining(disk_quarter())
    out = json.loads(json.dumps(s.to_dict()))
    assert out["method"] == "nash" and len(out["point"]) == 2
    f = pareto_frontier(segment())
    assert json.loads(json.dumps(f.to_dict()))["intervals"] == [[0.0, 1.0]]


def test_validation_messages():
    with pytest.raises(TypeError, match="parameter 'problem' must be a UtilityCurve"):
        nash_bargaining([[1, 2]])
    with pytest.raises(
        ValueError, match=r"parameter 'disagreement' must have one entry per player \(2\); got 3"
    ):
        nash_bargaining(segment(), [0, 0, 0])
    with pytest.raises(ValueError, match="parameter 'weights' must be > 0"):
        utilitarian(segment(), weights=[1, -1])
    with pytest.raises(ValueError, match="parameter 'disagreement' must be finite"):
        egalitarian(segment(), [np.nan, 0])
    with pytest.raises(ValueError, match="parameter 'interval' must be finite with low < high"):
        UtilityCurve(lambda t: np.column_stack([t, t]), (1.0, 0.0))
    with pytest.raises(ValueError, match="parameter 'n_grid' must be >= 3; got 2"):
        UtilityCurve(lambda t: np.column_stack([t, t]), n_grid=2)
    with pytest.raises(TypeError, match="parameter 'utilities' must be callable"):
        UtilityCurve([1, 2])
    with pytest.raises(
        ValueError, match=r"must map 5 parameters to an array of shape \(5, n_players\)"
    ):
        UtilityCurve(lambda t: t, n_grid=5)
    with pytest.raises(ValueError, match="at least 2 players"):
        UtilityCurve(lambda t: t[:, None])
    with pytest.raises(ValueError, match="finite utilities"), np.errstate(divide="ignore"):
        UtilityCurve(lambda t: np.column_stack([t, 1 / t]))
    with pytest.raises(
        ValueError, match=r"shape \(n_outcomes >= 1, n_players >= 2\); got shape \(3,\)"
    ):
        FiniteUtilitySet([1, 2, 3])
    with pytest.raises(
        ValueError, match=r"parameter 'outcomes' must have one entry per row \(2\); got 1"
    ):
        FiniteUtilitySet([[1, 2], [2, 1]], outcomes=["a"])
    with pytest.raises(ValueError, match="parameter 'n_players' must be >= 2; got 1"):
        ConvexUtilitySet(1, lambda u: (u, []))
    with pytest.raises(ValueError, match="parameter 'build' must return 2 utilities"):
        nash_bargaining(ConvexUtilitySet(2, lambda u: (u[0], [u >= 0, u <= 1])))
    with pytest.raises(ValueError, match="must describe a bounded utility set"):
        utilitarian(ConvexUtilitySet(2, lambda u: (u, [u >= 0])))
    with pytest.raises(ValueError, match="parameter 'utilities' must have shape"):
        pareto_mask([1, 2])
    with pytest.raises(ValueError, match="parameter 'tol' must be >= 0"):
        pareto_mask([[1, 2]], tol=-1)
    with pytest.raises(ValueError, match="parameter 'n_points' must be >= 1"):
        pareto_frontier(segment(), n_points=0)


def test_weights_lattice_for_many_players():
    four = ConvexUtilitySet(4, lambda u: (u, [u >= 0, sum(u[i] for i in range(4)) <= 1]))
    assert pareto_frontier(four, n_points=4).n_points >= 4
