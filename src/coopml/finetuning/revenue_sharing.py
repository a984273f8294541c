r"""Bargaining over the revenue shares of a fine-tuning game.

Before anyone invests, the generalist and the specialists agree on shares
:math:`\delta`; each :math:`\delta` leads to a subgame-perfect equilibrium and so to a
utility vector :math:`(U_G(\delta), U_1(\delta), \dots, U_n(\delta))`. The set of these
vectors is the utility-possibility set of the bargaining problem, with disagreement
point 0 (nobody invests) (Laufer, Kleinberg & Heidari 2023). With a common share it is a
curve in :math:`\delta \in [0, 1]`; with per-domain shares, coopml searches a lattice of
:math:`[0, 1]^n`. Every solution of :mod:`coopml.bargaining` applies, plus the
max-performance share (largest total performance :math:`\sum_i \alpha_i^*`, ties to the
largest welfare) and the vertically integrated benchmark.

The Pareto-optimal shares form a union of intervals; for quasi-concave two-player
utilities it is the interval between :math:`\arg\max U_D` and :math:`\arg\max U_G`, and
with several specialists it can be disconnected
(:func:`coopml.finetuning.disconnected_pareto_game`).

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml._validation import check_choice, check_int
from coopml.bargaining import (
    SOLUTIONS,
    BargainingSolution,
    FiniteUtilitySet,
    UtilityCurve,
    pareto_frontier,
)
from coopml.finetuning.closed_form import quadratic_pareto_set, quadratic_solution_shares
from coopml.finetuning.equilibrium import (
    Equilibrium,
    IntegratedOutcome,
    Method,
    _check_game,
    _use_closed_form,
    solve_shares,
    vertical_integration,
)
from coopml.finetuning.game import FineTuningGame

__all__ = ["SOLUTION_NAMES", "FineTuningBargain", "ShareSolution", "bargain"]

SOLUTION_NAMES = ("nash", "kalai_smorodinsky", "egalitarian", "utilitarian", "max_performance")
Array = NDArray[np.float64]
Shares = Literal["common", "per_domain"]


@dataclass(frozen=True, kw_only=True)
class ShareSolution:
    """The shares chosen by one solution concept and the equilibrium they lead to.

    ``to_dict()`` gives the interface keys ``delta``, ``u_generalist``,
    ``u_specialist``, ``alpha0``, ``alpha1`` (scalars with one specialist, lists with
    several; ``delta`` is a scalar for a common share), plus ``regimes`` and
    ``pareto_optimal``.
    """

    method: str
    equilibrium: Equilibrium
    pareto_optimal: bool
    common: bool = True
    bargaining: BargainingSolution | None = None

    @property
    def delta(self) -> float | Array:
        """The common share (float) or the per-domain shares (ndarray of shape (n,))."""
        return float(self.equilibrium.delta[0]) if self.common else self.equilibrium.delta

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary with the interface keys."""
        eq = self.equilibrium
        one = eq.alpha.size == 1
        return {
            "delta": float(eq.delta[0]) if self.common else eq.delta.tolist(),
            "u_generalist": eq.u_generalist,
            "u_specialist": float(eq.u_specialists[0]) if one else eq.u_specialists.tolist(),
            "alpha0": eq.alpha0,
            "alpha1": float(eq.alpha[0]) if one else eq.alpha.tolist(),
            "regimes": list(eq.regimes),
            "welfare": eq.welfare,
            "pareto_optimal": bool(self.pareto_optimal),
        }


@dataclass(frozen=True, kw_only=True)
class FineTuningBargain:
    """Bargaining over the shares of a fine-tuning game: the utility-possibility set,
    its Pareto-optimal shares, every solution and the integrated benchmark.

    Parameters
    ----------
    shares : {"common", "per_domain"}
        One share for all domains (a curve) or one per domain (a lattice).
    deltas : ndarray of shape (m,) or (m, n)
        The shares searched (grid or lattice).
    utilities : ndarray of shape (m, n + 1)
        ``(U_G, U_1, ..., U_n)`` at each searched share.
    pareto_mask : ndarray of bool, shape (m,)
        Which searched shares are Pareto optimal.
    pareto_set : tuple of (float, float)
        Common shares: the Pareto-optimal shares as closed intervals (endpoints refined).
    solutions : mapping of str to ShareSolution
        Keyed ``nash``, ``kalai_smorodinsky``, ``egalitarian``, ``utilitarian``,
        ``max_performance``.
    integrated : IntegratedOutcome
        The vertically integrated benchmark.
    method : str
        ``"closed_form"`` or ``"numerical"`` equilibria.
    """

    game: FineTuningGame
    shares: str
    deltas: Array
    utilities: Array
    pareto_mask: NDArray[np.bool_]
    pareto_set: tuple[tuple[float, float], ...]
    solutions: Mapping[str, ShareSolution]
    integrated: IntegratedOutcome
    method: str
    performance: Array = field(repr=False)

    @property
    def recommended(self) -> ShareSolution:
        """The Nash bargaining solution: the split coopml recommends by default."""
        return self.solutions["nash"]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per solution: share(s), utilities, performance levels, Pareto flag."""
        rows = []
        for name, sol in self.solutions.items():
            eq = sol.equilibrium
            row: dict[str, Any] = {"solution": name}
            row.update({f"delta_{s}": d for s, d in zip(eq.names, eq.delta, strict=True)})
            row.update({"u_generalist": eq.u_generalist, "alpha0": eq.alpha0})
            row.update({f"u_{s}": u for s, u in zip(eq.names, eq.u_specialists, strict=True)})
            row.update({f"alpha_{s}": a for s, a in zip(eq.names, eq.alpha, strict=True)})
            row.update({"welfare": eq.welfare, "pareto_optimal": sol.pareto_optimal})
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """The interface JSON: ``pareto_set`` (list of [low, high] share intervals;
        per-domain shares: the Pareto lattice points) and ``solutions`` (see
        :meth:`ShareSolution.to_dict`), plus ``vertical_integration``, ``shares``,
        ``method``, ``game``."""
        if self.shares == "common":
            pareto: list[Any] = [[a, b] for a, b in self.pareto_set]
        else:
            pareto = self.deltas[self.pareto_mask].tolist()
        return {
            "pareto_set": pareto,
            "solutions": {k: v.to_dict() for k, v in self.solutions.items()},
            "vertical_integration": self.integrated.to_dict(),
            "shares": self.shares,
            "method": self.method,
            "game": self.game.to_dict(),
        }


def _stack(out: Mapping[str, Any]) -> Array:
    return np.column_stack([out["u_generalist"], out["u_specialists"]])


def _equilibrium(game: FineTuningGame, delta: Array, method: Method) -> Equilibrium:
    from coopml.finetuning.equilibrium import subgame_perfect_equilibrium

    return subgame_perfect_equilibrium(game, delta, method=method)


def bargain(
    game: FineTuningGame,
    *,
    shares: Shares = "common",
    n_grid: int | None = None,
    method: Method = "auto",
) -> FineTuningBargain:
    """Bargain over the revenue shares: Pareto set and every solution.

    Parameters
    ----------
    game : FineTuningGame
        The game.
    shares : {"common", "per_domain"}
        ``"common"``: one share for every domain, a curve searched on ``n_grid`` points
        and refined locally. ``"per_domain"``: one share per domain on a lattice with
        ``n_grid`` points per axis (solutions are exact on the lattice). With one
        specialist both coincide.
    n_grid : int, optional
        Default 2001 (common) or 21 (per domain). Pareto endpoints at a player's
        maximiser are exact; endpoints of gaps are accurate to about the grid spacing.
    method : {"auto", "closed_form", "numerical"}
        How each equilibrium is solved (``"auto"``: DERIVED closed forms when they apply).
        With one specialist and the closed forms, the Pareto set and the shares are the
        DERIVED formulas of :mod:`coopml.finetuning.closed_form` too (exact); otherwise
        they come from :mod:`coopml.bargaining` on the utility curve.

    Returns
    -------
    FineTuningBargain

    Examples
    --------
    >>> result = bargain(FineTuningGame.quadratic(c0=1.0, c1=3.0, revenue=1.0))
    >>> result.pareto_set
    ((0.4, 1.0),)
    >>> round(result.solutions["utilitarian"].delta, 6)
    0.75
    """
    game = _check_game(game)
    check_choice("shares", shares, ("common", "per_domain"))
    closed = _use_closed_form(game, method)
    kind = "closed_form" if closed else "numerical"
    n = game.n_specialists
    if shares == "per_domain" and n > 1:
        return _bargain_lattice(game, 21 if n_grid is None else n_grid, method, kind)
    n_grid = check_int("n_grid", 2001 if n_grid is None else n_grid, minimum=3)

    def utilities(t: Array) -> Array:
        return _stack(solve_shares(game, t[:, None] * np.ones(n), method=method))

    curve = UtilityCurve(utilities, (0.0, 1.0), n_grid=n_grid)
    grid_out = solve_shares(game, curve.grid[:, None] * np.ones(n), method=method)
    performance = grid_out["alpha"].sum(axis=1)
    solutions: dict[str, ShareSolution] = {}
    if closed and n == 1:
        # fast path: the DERIVED closed-form shares (cross-checked against the bargaining
        # toolkit on the same curve in the tests)
        c0, c, _ = game.quadratic_parameters
        pareto_set: tuple[tuple[float, float], ...] = (quadratic_pareto_set(c0, float(c[0])),)
        low, high = pareto_set[0]
        for name, t in quadratic_solution_shares(c0, float(c[0])).items():
            solutions[name] = ShareSolution(
                method=name,
                equilibrium=_equilibrium(game, np.full(n, t), method),
                pareto_optimal=bool(low <= t <= high),
            )
        mask = (curve.grid >= low) & (curve.grid <= high)
    else:
        frontier = pareto_frontier(curve)
        pareto_set = frontier.intervals
        for name, solve in SOLUTIONS.items():
            sol = solve(curve, np.zeros(n + 1))
            t = 0.0 if sol.parameter is None else sol.parameter
            solutions[name] = ShareSolution(
                method=name,
                equilibrium=_equilibrium(game, np.full(n, t), method),
                pareto_optimal=sol.pareto_optimal,
                bargaining=sol,
            )
        t_perf = _max_performance(
            game, curve.grid, performance, _stack(grid_out).sum(axis=1), method
        )
        solutions["max_performance"] = ShareSolution(
            method="max_performance",
            equilibrium=_equilibrium(game, np.full(n, t_perf), method),
            pareto_optimal=frontier.contains(t_perf),
        )
        mask = np.array([frontier.contains(t) for t in curve.grid])
    return FineTuningBargain(
        game=game,
        shares="common",
        deltas=curve.grid,
        utilities=curve.values,
        pareto_mask=mask,
        pareto_set=pareto_set,
        solutions=solutions,
        integrated=vertical_integration(game, method=method),
        method=kind,
        performance=performance,
    )


def _max_performance(
    game: FineTuningGame, grid: Array, performance: Array, welfare: Array, method: Method
) -> float:
    """Share with the largest total performance (ties: largest welfare), refined by
    zooming into the grid cells around the best share (one batched solve per round)."""
    best = float(performance.max())
    near = np.flatnonzero(performance >= best - 1e-9 * max(1.0, abs(best)))
    k = int(near[np.argmax(welfare[near])])
    if near.size > 1:
        return float(grid[k])
    n = game.n_specialists
    t_best, v_best = float(grid[k]), best
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    for _ in range(7):
        ts = np.linspace(lo, hi, 33)
        values = solve_shares(game, ts[:, None] * np.ones(n), method=method)["alpha"].sum(axis=1)
        j = int(np.argmax(values))
        if values[j] > v_best:
            t_best, v_best = float(ts[j]), float(values[j])
        lo, hi = ts[max(j - 1, 0)], ts[min(j + 1, ts.size - 1)]
    return t_best


def _bargain_lattice(
    game: FineTuningGame, n_grid: int, method: Method, kind: str
) -> FineTuningBargain:
    n = game.n_specialists
    check_int("n_grid", n_grid, minimum=2)
    if n_grid**n > 200_000:
        raise ValueError(
            f"parameter 'n_grid' gives {n_grid}**{n} = {n_grid**n} share vectors; per-domain "
            "bargaining allows at most 200000 (lower n_grid or use shares='common')"
        )
    axis = np.linspace(0.0, 1.0, n_grid)
    deltas = np.array(list(itertools.product(axis, repeat=n)))
    out = solve_shares(game, deltas, method=method)
    values = _stack(out)
    problem = FiniteUtilitySet(values, outcomes=tuple(map(tuple, deltas)))
    frontier = pareto_frontier(problem)
    mask = np.zeros(len(deltas), dtype=bool)
    assert frontier.indices is not None
    mask[frontier.indices] = True
    solutions: dict[str, ShareSolution] = {}
    for name, solve in SOLUTIONS.items():
        sol = solve(problem, np.zeros(n + 1))
        index = 0 if sol.index is None else sol.index
        solutions[name] = ShareSolution(
            method=name,
            equilibrium=_equilibrium(game, deltas[index], method),
            pareto_optimal=sol.pareto_optimal,
            common=False,
            bargaining=sol,
        )
    performance = out["alpha"].sum(axis=1)
    best = performance.max()
    near = np.flatnonzero(performance >= best - 1e-9 * max(1.0, abs(best)))
    k = int(near[np.argmax(values[near].sum(axis=1))])
    solutions["max_performance"] = ShareSolution(
        method="max_performance",
        equilibrium=_equilibrium(game, deltas[k], method),
        pareto_optimal=bool(mask[k]),
        common=False,
    )
    return FineTuningBargain(
        game=game,
        shares="per_domain",
        deltas=deltas,
        utilities=values,
        pareto_mask=mask,
        pareto_set=(),
        solutions=solutions,
        integrated=vertical_integration(game, method=method),
        method=kind,
        performance=performance,
    )
