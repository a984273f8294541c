"""Vectorised backward induction for fine-tuning games (private).

Shapes: a batch of ``m`` share vectors ``deltas (m, n)``; the generalist's candidate
investments ``alpha0 (..., )`` broadcast against per-specialist arrays ``(..., n)``.

Stage 2 (specialist ``i`` given ``alpha0``): KKT candidates -- the interior critical
point (closed form for linear revenue and costs of degree <= 2; otherwise a grid plus a
golden-section refinement), the boundary ``alpha_i = alpha0`` (free-ride) and abstaining
(utility 0). Stage 1 (generalist): ``U_G(alpha0)`` is piecewise smooth, with jumps where
a specialist starts or stops taking part; candidates are a grid, every jump point
(located by bisection, both sides) and a golden-section refinement around the best grid
local maxima; abstaining (utility 0) closes the list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from coopml.finetuning.costs import PolynomialCost
from coopml.finetuning.revenue import LinearRevenue

if TYPE_CHECKING:
    from coopml.finetuning.game import FineTuningGame, Specialist

Array = NDArray[np.float64]
CONTRIBUTE, FREE_RIDE, ABSTAIN = 0, 1, 2
REGIMES = ("contribute", "free-ride", "abstain")
_INVPHI = (np.sqrt(5.0) - 1.0) / 2.0
N_GRID_SPECIALIST = 48
N_GRID_GENERALIST = 129
N_GOLDEN = 40
N_BISECT = 44


def golden_max(
    f: Callable[[Array], Array], lo: Array, hi: Array, n_iter: int = N_GOLDEN
) -> tuple[Array, Array]:
    """Vectorised golden-section maximisation of ``f`` on ``[lo, hi]`` (elementwise)."""
    a, b = np.array(lo, dtype=np.float64), np.array(hi, dtype=np.float64)
    c = b - _INVPHI * (b - a)
    d = a + _INVPHI * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(n_iter):
        left = fc >= fd
        a, b = np.where(left, a, c), np.where(left, d, b)
        fresh = np.where(left, b - _INVPHI * (b - a), a + _INVPHI * (b - a))
        ff = f(fresh)
        c, d, fc, fd = (
            np.where(left, fresh, d),
            np.where(left, c, fresh),
            np.where(left, ff, fd),
            np.where(left, fc, ff),
        )
    best = fc >= fd
    return np.where(best, c, d), np.where(best, fc, fd)


def best_response(
    s: Specialist, alpha0: Array, delta: Array, bound: float
) -> tuple[Array, Array, NDArray[np.int8]]:
    """Specialist ``s``'s best increment ``x >= 0`` for investments ``alpha0`` and shares
    ``delta`` (same shape). Returns ``(x, utility, regime)``; abstainers get ``x = 0`` and
    utility 0."""
    keep = 1.0 - delta

    def profit(x: Array) -> Array:
        return keep * s.revenue(alpha0 + x) - s.cost.variable(x)

    if s.analytic:
        assert isinstance(s.revenue, LinearRevenue) and isinstance(s.cost, PolynomialCost)
        a = s.cost.coefficients[0]
        x = np.maximum(0.0, (keep * s.revenue.slope - a) / (2.0 * s.cost.coefficients[1]))
    else:
        grid = np.linspace(0.0, bound, N_GRID_SPECIALIST)
        values = _grid_profit(s, alpha0, keep, grid)
        k = np.argmax(values, axis=-1)
        lo = grid[np.maximum(k - 1, 0)]
        hi = grid[np.minimum(k + 1, grid.size - 1)]
        x_ref = _stationary_point(s, alpha0, keep, lo, hi)
        v_ref = profit(x_ref)
        v_grid = np.take_along_axis(values, k[..., None], axis=-1)[..., 0]
        x = np.where(v_ref > v_grid, x_ref, grid[k])
        x = np.where(profit(np.zeros_like(x)) >= profit(x), 0.0, x)
    utility = profit(x) - s.cost.fixed
    regime = np.where(utility < 0, ABSTAIN, np.where(x > 0, CONTRIBUTE, FREE_RIDE)).astype(np.int8)
    return np.where(utility < 0, 0.0, x), np.where(utility < 0, 0.0, utility), regime


def _stationary_point(s: Specialist, alpha0: Array, keep: Array, lo: Array, hi: Array) -> Array:
    """Interior KKT point in ``[lo, hi]``: bisection on the marginal profit
    ``keep * r'(alpha0 + x) - phi'(x)`` where it changes sign (exact to rounding, unlike a
    search on profit values, whose flat top limits it to ~sqrt(eps)); golden section
    on the profit elsewhere."""

    def marginal(x: Array) -> Array:
        return keep * s.revenue.marginal(alpha0 + x) - s.cost.marginal(x)

    g_lo, g_hi = marginal(lo), marginal(hi)
    bracketed = (g_lo > 0) & (g_hi < 0)
    a, b = lo.copy(), hi.copy()
    for _ in range(N_BISECT):
        mid = 0.5 * (a + b)
        up = marginal(mid) > 0
        a, b = np.where(up, mid, a), np.where(up, b, mid)
    if np.all(bracketed):
        return 0.5 * (a + b)
    x_gold, _ = golden_max(lambda x: keep * s.revenue(alpha0 + x) - s.cost.variable(x), lo, hi)
    return np.where(bracketed, 0.5 * (a + b), x_gold)


def _grid_profit(s: Specialist, alpha0: Array, keep: Array, grid: Array) -> Array:
    return keep[..., None] * s.revenue(alpha0[..., None] + grid) - s.cost.variable(grid)


def outcome(
    game: FineTuningGame, alpha0: Array, deltas: Array, welfare: bool = False
) -> tuple[Array, Array, Array, NDArray[np.int8]]:
    """Play stage 2 after ``alpha0`` (shape S) with shares ``deltas`` (S + (n,)).

    Returns ``(objective, x, u_specialists, regimes)``: the generalist's utility (or the
    total welfare when ``welfare``), increments, specialists' utilities, regimes.
    """
    _, X = game.search_bounds()
    xs, us, regs, revenue = [], [], [], np.zeros_like(alpha0)
    for i, s in enumerate(game.specialists):
        x, u, reg = best_response(s, alpha0, deltas[..., i], float(X[i]))
        revenue = revenue + np.where(reg != ABSTAIN, deltas[..., i] * s.revenue(alpha0 + x), 0.0)
        xs.append(x)
        us.append(u)
        regs.append(reg)
    u_s = np.stack(us, axis=-1)
    objective = revenue - game.generalist_cost(alpha0)
    if welfare:
        objective = objective + u_s.sum(axis=-1)
    return objective, np.stack(xs, axis=-1), u_s, np.stack(regs, axis=-1)


def solve_batch(game: FineTuningGame, deltas: Array, welfare: bool = False) -> dict[str, Array]:
    """Subgame-perfect equilibria for every row of ``deltas (m, n)``.

    With ``welfare`` the first mover maximises total welfare instead (the vertically
    integrated firm; pass zero shares so that stage 2 keeps all revenue).
    """
    m = deltas.shape[0]
    A0, _ = game.search_bounds()
    grid = np.linspace(0.0, A0, N_GRID_GENERALIST)
    a0 = np.broadcast_to(grid, (m, grid.size))
    dd = np.broadcast_to(deltas[:, None, :], (m, grid.size, deltas.shape[1]))
    obj, _, _, reg = outcome(game, a0, dd, welfare)
    rows_c = [np.repeat(np.arange(m), grid.size)]
    a0_c = [a0.reshape(-1)]
    val_c = [obj.reshape(-1)]

    # jump points: participation changes between neighbouring grid points
    part = reg != ABSTAIN
    rows, ks = np.nonzero(np.any(part[:, :-1] != part[:, 1:], axis=-1))
    if rows.size:
        lo, hi = grid[ks].copy(), grid[ks + 1].copy()
        pattern = part[rows, ks]
        d_rows = deltas[rows]
        for _ in range(N_BISECT):
            mid = 0.5 * (lo + hi)
            _, _, _, r_mid = outcome(game, mid, d_rows, welfare)
            same = np.all((r_mid != ABSTAIN) == pattern, axis=-1)
            lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
        for side in (lo, hi):
            rows_c.append(rows)
            a0_c.append(side)
            val_c.append(outcome(game, side, d_rows, welfare)[0])

    # golden refinement around the two best local maxima of each row
    padded = np.pad(obj, ((0, 0), (1, 1)), constant_values=-np.inf)
    local = (obj >= padded[:, :-2]) & (obj >= padded[:, 2:])
    top = np.argsort(np.where(local, obj, -np.inf), axis=1)[:, -2:]
    lo = grid[np.maximum(top - 1, 0)]
    hi = grid[np.minimum(top + 1, grid.size - 1)]
    d2 = np.broadcast_to(deltas[:, None, :], (m, 2, deltas.shape[1]))
    a_ref, v_ref = golden_max(lambda a: outcome(game, a, d2, welfare)[0], lo, hi)
    a_ref, v_ref = _newton_polish(
        lambda a: outcome(game, a, d2, welfare)[0], a_ref, v_ref, lo, hi, A0
    )
    rows_c.append(np.repeat(np.arange(m), 2))
    a0_c.append(a_ref.reshape(-1))
    val_c.append(v_ref.reshape(-1))

    all_rows = np.concatenate(rows_c)
    all_a0: Array = np.concatenate(a0_c).astype(np.float64)
    all_val: Array = np.concatenate(val_c).astype(np.float64)
    order = np.lexsort((all_a0, -all_val, all_rows))  # per row: best value, then smallest alpha0
    first = order[np.searchsorted(all_rows[order], np.arange(m))]
    best_a0, best_val = all_a0[first], all_val[first]
    value, x, u_s, reg = outcome(game, best_a0, deltas, welfare)
    invests = best_val >= 0
    x = np.where(invests[:, None], x, 0.0)
    alpha = np.where(reg == ABSTAIN, 0.0, best_a0[:, None] + x)
    return {
        "alpha0": np.where(invests, best_a0, 0.0),
        "alpha": np.where(invests[:, None], alpha, 0.0),
        "u_generalist": np.where(invests, value, 0.0),
        "u_specialists": np.where(invests[:, None], u_s, 0.0),
        "regimes": np.where(invests[:, None], reg, ABSTAIN).astype(np.int8),
        "invests": invests,
    }


def _newton_polish(
    f: Callable[[Array], Array], a: Array, value: Array, lo: Array, hi: Array, scale: float
) -> tuple[Array, Array]:
    """One Newton step on finite differences after a golden search: a value search stalls
    at ~sqrt(eps) on a flat maximum, the step lands within rounding. Kept only where the
    objective is locally concave and the value does not drop (so jumps are left alone)."""
    h = np.minimum(np.minimum(1e-4 * scale, 0.25 * (hi - lo)), np.minimum(a - lo, hi - a))
    usable = h > 1e-10 * scale
    h = np.where(usable, h, 1e-4 * scale)
    up, down = f(np.minimum(a + h, hi)), f(np.maximum(a - h, lo))
    curvature = up - 2 * value + down
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.where(curvature < 0, -h * (up - down) / (2 * curvature), 0.0)
    ok = usable & (curvature < 0) & (np.abs(step) <= h)
    a_new = np.clip(a + np.where(ok, step, 0.0), lo, hi)
    v_new = f(a_new)
    keep = ok & (v_new >= value - 1e-14 * np.maximum(1.0, np.abs(value)))
    return np.where(keep, a_new, a), np.where(keep, v_new, value)


def closed_form_batch(game: FineTuningGame, deltas: Array) -> dict[str, Array]:
    """DERIVED closed forms (quadratic costs, linear revenue) for every row of ``deltas``."""
    c0, c, r = game.quadratic_parameters
    alpha0 = deltas @ r / (2 * c0)
    x = (1 - deltas) * r / (2 * c)
    alpha = alpha0[:, None] + x
    u_g = (deltas * r * alpha).sum(axis=1) - c0 * alpha0**2
    u_s = (1 - deltas) * r * alpha - c * x**2
    return {
        "alpha0": alpha0,
        "alpha": alpha,
        "u_generalist": u_g,
        "u_specialists": u_s,
        "regimes": np.where(x > 0, CONTRIBUTE, FREE_RIDE).astype(np.int8),
        "invests": np.ones(deltas.shape[0], dtype=bool),
    }
