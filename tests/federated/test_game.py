"""The per-round synthetic-data game: potential identity, equilibrium, optimum, transfers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from coopml.federated.game import (
    AccuracyCurve,
    RoundGame,
    best_response_dynamics,
    nash_equilibrium,
    potential,
    redistribution,
    social_optimum,
    social_welfare,
    utilities,
    weights,
)

CURVE = AccuracyCurve(A_max=0.95, a=2.0, b=0.5)


def random_game(seed: int, N: int | None = None) -> RoundGame:
    rng = np.random.default_rng(seed)
    N = int(rng.integers(2, 7)) if N is None else N
    return RoundGame(
        n=rng.integers(50, 400, N).astype(float),
        h0=rng.uniform(0.05, 0.8, N),
        theta=rng.uniform(0.5, 2.0, N),
        gamma=rng.uniform(0.0, 0.3, N),
        c=rng.uniform(1e-5, 3e-4, N),
        kappa=float(rng.uniform(0.3, 1.0)),
        mu=float(rng.uniform(0.05, 0.5)),
        s_max=rng.uniform(100, 800, N),
        curve=AccuracyCurve(
            float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.5, 5)), float(rng.uniform(0.2, 1))
        ),
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), data=st.data())
def test_weighted_potential_identity(seed: int, data: st.DataObject) -> None:
    g = random_game(seed)
    s_max = np.asarray(g.s_max)
    rng = np.random.default_rng(seed + 1)
    s = rng.uniform(0, 1, g.N) * s_max
    i = data.draw(st.integers(0, g.N - 1))
    s2 = s.copy()
    s2[i] = data.draw(st.floats(0, 1)) * s_max[i]
    lhs = utilities(g, s)[i] - utilities(g, s2)[i]
    rhs = weights(g)[i] * (potential(g, s) - potential(g, s2))
    assert lhs == pytest.approx(rhs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_equilibrium_is_best_response_fixed_point(seed: int) -> None:
    g = random_game(seed)
    ne = nash_equilibrium(g)
    assert ne.converged
    brd = best_response_dynamics(g, s0=np.asarray(g.s_max) * 0.5)
    assert brd.converged
    np.testing.assert_allclose(brd.s, ne.s, atol=1e-5 * max(1.0, float(ne.s.max())))
    # one more best-response sweep from the equilibrium moves nobody
    again = best_response_dynamics(g, s0=ne.s, max_iter=1)
    np.testing.assert_allclose(again.s, ne.s, atol=1e-5)


@pytest.mark.parametrize("seed", range(5))
def test_no_profitable_unilateral_deviation_on_a_grid(seed: int) -> None:
    g = random_game(seed)
    ne = nash_equilibrium(g)
    u = utilities(g, ne.s)
    for i in range(g.N):
        for x in np.linspace(0, np.asarray(g.s_max)[i], 101):
            s = ne.s.copy()
            s[i] = x
            assert utilities(g, s)[i] <= u[i] + 1e-10


@pytest.mark.parametrize("seed", range(6))
def test_optimum_maximises_welfare(seed: int) -> None:
    g = random_game(seed)
    opt = social_optimum(g)
    assert opt.converged
    s_max = np.asarray(g.s_max)
    best = -np.inf
    for x0 in (np.zeros(g.N), s_max / 2, s_max):
        res = minimize(
            lambda s: -social_welfare(g, np.clip(s, 0, s_max)),
            x0=x0,
            bounds=list(zip(np.zeros(g.N), s_max, strict=True)),
            method="L-BFGS-B",
        )
        best = max(best, -float(res.fun))
    assert opt.social_welfare >= best - 1e-9
    assert opt.social_welfare >= nash_equilibrium(g).social_welfare - 1e-12


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_redistribution_balanced_and_individually_rational(seed: int) -> None:
    g = random_game(seed)
    r = redistribution(g)
    assert abs(float(r.transfers.sum())) <= 1e-9
    assert abs(r.budget_balance) <= 1e-9
    assert r.individually_rational
    assert np.all(r.utilities_after >= r.utilities_equilibrium - 1e-9)
    np.testing.assert_allclose(r.utilities_after, r.utilities_before + r.transfers)


@pytest.mark.parametrize("seed", range(5))
def test_transfers_make_the_optimum_the_equilibrium(seed: int) -> None:
    g = random_game(seed)
    r = redistribution(g)
    s_max = np.asarray(g.s_max)
    # with per-sample transfers sigma_i * s_i, nobody gains by deviating from s^SW
    for i in range(g.N):
        base = utilities(g, r.s_optimum)[i] + r.sigma[i] * r.s_optimum[i]
        for x in np.linspace(0, s_max[i], 81):
            s = r.s_optimum.copy()
            s[i] = x
            assert utilities(g, s)[i] + r.sigma[i] * x <= base + 1e-10


def test_synthetic_amounts_fall_with_competition() -> None:
    base = random_game(3, N=4).replace(theta=np.ones(4))
    totals = [
        nash_equilibrium(base.replace(gamma=np.full(4, gm))).s.sum() for gm in (0, 0.2, 0.4, 0.6)
    ]
    assert all(a >= b for a, b in itertools.pairwise(totals))
    assert totals[0] > totals[-1]


def test_synthetic_amounts_rise_with_skew() -> None:
    base = random_game(4, N=4)
    totals = [
        nash_equilibrium(base.replace(h0=np.full(4, h))).s.sum() for h in (0.1, 0.3, 0.5, 0.7)
    ]
    assert all(a <= b for a, b in itertools.pairwise(totals))
    assert totals[-1] > totals[0]


def test_accuracy_curve_fit_recovers_parameters() -> None:
    E = np.array([40.0, 80, 160, 320, 640, 1280])
    fitted = AccuracyCurve.fit(E, CURVE(E))
    assert fitted.A_max == pytest.approx(0.95, abs=1e-3)
    assert fitted.b == pytest.approx(0.5, abs=1e-2)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"h0": [0.2, 1.5]}, "'h0' must lie in"),
        ({"gamma": [0.2, 1.5]}, "'gamma' must lie in"),
        ({"kappa": 0.0}, "'kappa'"),
        ({"n": [1.0, 2.0, 3.0]}, "one entry per organisation"),
        ({"theta": [0.1, 1.0], "gamma": [1.0, 0.0]}, "weights B_i"),
    ],
)
def test_validation_messages(change: dict[str, object], match: str) -> None:
    params: dict[str, object] = dict(
        n=[100.0, 100.0],
        h0=[0.2, 0.3],
        theta=[1.0, 1.0],
        gamma=0.1,
        c=1e-4,
        kappa=0.5,
        mu=0.2,
        s_max=100.0,
        curve=CURVE,
    )
    params.update(change)
    with pytest.raises(ValueError, match=match):
        RoundGame(**params)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_redistribution_with_any_shares(seed: int) -> None:
    g = random_game(seed)
    beta = np.random.default_rng(seed).dirichlet(np.ones(g.N))
    r = redistribution(g, beta)
    assert abs(float(r.transfers.sum())) <= 1e-9
    gain = r.utilities_after - r.utilities_equilibrium
    np.testing.assert_allclose(gain, beta * r.welfare_gain, atol=1e-12)
    assert r.welfare_gain >= -1e-12
