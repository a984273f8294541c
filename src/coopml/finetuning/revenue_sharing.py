r"""Bargaining over the revenue shares of a fine-tuning game.

Before anyone invests, the generalist and the specialists agree on shares
:math:`\delta`; each :math:`\delta` leads to a subgame-perfect equilibrium and so to a
utility vector :math:`(U_G(\delta), U_1(\delta), \dots, U_n(\delta))`. The set of these
vectors is the utility-possibility set of the bargaining problem, with disagreement
point 0 (nobody invests) (Laufer, Kleinberg & Heidari 2023). With a common share it is a
curve in :math:`\delta \in [0, 1]`; with per-domain shares, coopml searches a lattice of
:math:`[0, 1]^n`. Every solution of :mod:`coopml.bargaining` applies, plus the
max-performance share and the vertically integrated benchmark.

The subgame-perfect utility curve is continuous only piecewise: it kinks or jumps where
a specialist starts or stops taking part, where the generalist starts investing exactly
enough to keep a specialist in (that specialist is then held at utility 0), and where
the generalist's best response jumps. coopml locates these breakpoints (a change of the
equilibrium's structure between grid shares, pinned down with
:func:`scipy.optimize.bisect`), samples the curve at and on both sides of each, and
computes the Pareto set over the union of the continuous pieces and these points
(:func:`coopml.bargaining.pareto_frontier`). The Pareto-optimal shares form a union of
intervals and isolated points (:class:`coopml.bargaining.ParetoSet`): for quasi-concave
two-player utilities it is the interval between :math:`\arg\max U_D` and
:math:`\arg\max U_G`; with an entry cost the generalist may over-invest to keep the
specialist in, and the best such share is an isolated Pareto point (the specialist gets
0 there, the generalist more than at any share where the specialist gains); with several
specialists the set can be disconnected (:func:`coopml.finetuning.disconnected_pareto_game`).

The max-performance solution (the paper's :math:`\max \alpha_1^*`) is a bargaining
solution like the others, so it picks among the Pareto-optimal shares: the largest total
performance :math:`\sum_i \alpha_i^*` over the Pareto set, ties (performance equal to a
relative :data:`PERFORMANCE_TIE`) to the largest welfare, then to the smallest share.
Searching all of :math:`[0, 1]` instead would pick the share at which the generalist is
just indifferent between over-investing and not building at all: the subgame-perfect
equilibrium resolves that indifference toward investing, so performance peaks there
while both players get exactly their disagreement payoff 0 -- an outcome nobody would
bargain for, dominated by every agreement that gives someone a gain. With pure
quadratic costs the rule gives the DERIVED closed form (an end of the Pareto interval).

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
    ParetoSet,
    UtilityCurve,
    pareto_frontier,
)
from coopml.finetuning.closed_form import quadratic_pareto_set, quadratic_solution_shares
from coopml.finetuning.equilibrium import (
    REGIMES,
    Equilibrium,
    IntegratedOutcome,
    Method,
    _check_game,
    _use_closed_form,
    solve_shares,
    subgame_perfect_equilibrium,
    vertical_integration,
)
from coopml.finetuning.game import FineTuningGame

__all__ = ["SOLUTION_NAMES", "FineTuningBargain", "ShareSolution", "bargain"]

SOLUTION_NAMES = ("nash", "kalai_smorodinsky", "egalitarian", "utilitarian", "max_performance")
Array = NDArray[np.float64]
Shares = Literal["common", "per_domain"]
PERFORMANCE_TIE = 1e-7
"""Relative difference in total performance below which the max-performance solution
treats shares as tied (the numerical solver resolves performance to about 1e-8)."""


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
    pareto_set : ParetoSet
        Common shares: the Pareto-optimal shares, a union of closed intervals (ends
        refined to the last Pareto-optimal share) and isolated points; as a sequence,
        its components ``(low, high)`` in increasing order, a point ``p`` as ``(p, p)``.
        Empty for per-domain shares (see ``pareto_mask``).
    solutions : mapping of str to ShareSolution
        Keyed ``nash``, ``kalai_smorodinsky``, ``egalitarian``, ``utilitarian``,
        ``max_performance`` (the Pareto-optimal share with the largest total performance;
        see the module docstring for its ties).
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
    pareto_set: ParetoSet
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
        """The interface JSON: ``pareto_set`` (common share: the components of the Pareto
        set as ``[low, high]`` lists in increasing order, an isolated point ``p`` as
        ``[p, p]``; per-domain shares: the Pareto lattice points) and ``solutions`` (see
        :meth:`ShareSolution.to_dict`), plus ``vertical_integration``, ``shares``,
        ``method``, ``game``."""
        if self.shares == "common":
            pareto: list[Any] = self.pareto_set.to_list()
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
        Default 2001 (common) or 21 (per domain). The common-share curve is searched on
        this grid plus both sides of every breakpoint (see the module docstring); ends of
        Pareto intervals and isolated points are refined beyond the grid.
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
    >>> result.pareto_set.to_list()
    [[0.4, 1.0]]
    >>> round(result.solutions["utilitarian"].delta, 6)
    0.75

    An entry cost makes the generalist over-invest to keep the specialist in; the best
    such share is an isolated Pareto point:

    >>> from coopml.finetuning import LinearRevenue, PolynomialCost, Specialist
    >>> quad = PolynomialCost.quadratic
    >>> entry = FineTuningGame(quad(1.0), [Specialist(quad(2.0, fixed=0.05), LinearRevenue(1.0))])
    >>> print(bargain(entry).pareto_set)
    [0.3333, 0.8911] ∪ {0.8980}
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

    base = np.linspace(0.0, 1.0, n_grid)
    grid_out = solve_shares(game, base[:, None] * np.ones(n), method=method)
    # the closed forms are smooth in the share: every specialist contributes throughout
    breaks = () if closed else _breakpoints(game, base, grid_out, method)
    curve = UtilityCurve(utilities, (0.0, 1.0), n_grid=n_grid, breakpoints=breaks)
    if breaks:
        grid_out = solve_shares(game, curve.grid[:, None] * np.ones(n), method=method)
    performance = grid_out["alpha"].sum(axis=1)
    solutions: dict[str, ShareSolution] = {}
    if closed and n == 1:
        # fast path: the DERIVED closed-form shares (cross-checked against the bargaining
        # toolkit on the same curve in the tests)
        c0, c, _ = game.quadratic_parameters
        pareto_set = ParetoSet((quadratic_pareto_set(c0, float(c[0])),))
        for name, t in quadratic_solution_shares(c0, float(c[0])).items():
            solutions[name] = ShareSolution(
                method=name,
                equilibrium=_equilibrium(game, np.full(n, t), method),
                pareto_optimal=pareto_set.contains(t, tol=0.0),
            )
    else:
        pareto_set = pareto_frontier(curve).pareto_set
        for name, solve in SOLUTIONS.items():
            sol = solve(curve, np.zeros(n + 1))
            t = 0.0 if sol.parameter is None else sol.parameter
            solutions[name] = ShareSolution(
                method=name,
                equilibrium=_equilibrium(game, np.full(n, t), method),
                pareto_optimal=sol.pareto_optimal,
                bargaining=sol,
            )
        t_perf = _max_performance(game, pareto_set, curve.grid, grid_out, method)
        solutions["max_performance"] = ShareSolution(
            method="max_performance",
            equilibrium=_equilibrium(game, np.full(n, t_perf), method),
            pareto_optimal=pareto_set.contains(t_perf),
        )
    mask = np.array([pareto_set.contains(float(t)) for t in curve.grid], dtype=bool)
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


def _structure(out: Mapping[str, Any], tol: float) -> NDArray[np.int8]:
    """The equilibrium's structure at each share, one row per share: whether the
    generalist invests, each specialist's regime, and whether the generalist's investment
    is pinned at a specialist's entry point (the specialist takes part at utility 0).
    The subgame-perfect utilities are smooth wherever the structure stays the same."""
    regimes = np.asarray(out["regimes"])
    binding = (regimes != REGIMES.index("abstain")) & (np.asarray(out["u_specialists"]) <= tol)
    return np.column_stack([np.asarray(out["invests"]), regimes, binding]).astype(np.int8)


def _breakpoints(
    game: FineTuningGame, grid: Array, out: Mapping[str, Any], method: Method
) -> tuple[float, ...]:
    """Shares where the subgame-perfect utility curve may jump or kink, near its Pareto
    part.

    A breakpoint lies between grid neighbours whose equilibrium structure differs
    (:func:`_structure`), or across which the generalist's investment jumps (a step at
    least ten times both neighbouring steps). Brackets whose two ends are dominated on
    the grid even after adding the change across the bracket cannot hold a Pareto-optimal
    share and are skipped; the others are located to ``1e-11`` with
    :func:`scipy.optimize.bisect` on a +-1 indicator (the structure, or which end's
    investment is nearer).
    """
    from scipy.optimize import bisect

    n = game.n_specialists
    values = _stack(out)
    tol = 1e-9 * max(float(np.abs(values).max()), 1e-300)
    labels = _structure(out, tol)
    changed = np.any(labels[:-1] != labels[1:], axis=1)
    a0 = np.asarray(out["alpha0"], dtype=np.float64)
    step = np.abs(np.diff(a0))
    padded = np.concatenate([[0.0], step, [0.0]])
    jumps = (step > 10 * np.maximum(padded[:-2], padded[2:])) & (
        step > 1e-6 * max(float(a0.max()), 1e-300)
    )

    def solve(t: float) -> dict[str, Any]:
        return solve_shares(game, np.full((1, n), t), method=method)

    def hopeless(k: int) -> bool:
        reach = np.maximum(values[k], values[k + 1]) + tol
        return bool(np.any(np.all(values >= reach, axis=1) & np.any(values > reach + tol, axis=1)))

    found: list[float] = []
    for k in np.flatnonzero(changed | jumps):
        if hopeless(int(k)):
            continue
        if changed[k]:

            def side(t: float, k: int = int(k)) -> float:
                same = np.array_equal(_structure(solve(t), tol)[0], labels[k])
                return -1.0 if same else 1.0

        else:

            def side(t: float, k: int = int(k)) -> float:
                a = float(solve(t)["alpha0"][0])
                return -1.0 if abs(a - a0[k]) <= abs(a - a0[k + 1]) else 1.0

        found.append(float(bisect(side, float(grid[k]), float(grid[k + 1]), xtol=1e-11)))
    return tuple(found)


def _max_performance(
    game: FineTuningGame,
    pareto_set: ParetoSet,
    grid: Array,
    grid_out: Mapping[str, Any],
    method: Method,
) -> float:
    """The Pareto-optimal share with the largest total performance; ties (to a relative
    ``PERFORMANCE_TIE``) go to the largest welfare, then to the smallest share.

    Candidates are the grid shares in the Pareto set, the ends of its intervals and its
    isolated points; a best share inside an interval is refined between its grid
    neighbours with :func:`scipy.optimize.minimize_scalar` (bounded Brent).
    """
    from scipy.optimize import minimize_scalar

    n = game.n_specialists
    inside = np.array([pareto_set.contains(float(t), tol=0.0) for t in grid], dtype=bool)
    extra = np.array(
        sorted({v for pair in pareto_set for v in pair} - set(grid[inside].tolist())),
        dtype=np.float64,
    )
    ts = np.concatenate([grid[inside], extra])
    performance = grid_out["alpha"].sum(axis=1)[inside]
    welfare = _stack(grid_out).sum(axis=1)[inside]
    if extra.size:
        out = solve_shares(game, extra[:, None] * np.ones(n), method=method)
        performance = np.concatenate([performance, out["alpha"].sum(axis=1)])
        welfare = np.concatenate([welfare, _stack(out).sum(axis=1)])
    order = np.argsort(ts, kind="stable")
    ts, performance, welfare = ts[order], performance[order], welfare[order]
    best = float(performance.max())
    near = np.flatnonzero(performance >= best - PERFORMANCE_TIE * max(1.0, abs(best)))
    k = int(near[np.argmax(welfare[near])])  # argmax: the first (smallest share) of ties
    t_best = float(ts[k])
    around = [(a, b) for a, b in pareto_set.intervals if a < t_best < b]
    if near.size > 1 or not around:
        return t_best
    spacing = float(np.max(np.diff(grid)))
    a, b = around[0]
    res = minimize_scalar(
        lambda x: -float(solve_shares(game, np.full((1, n), x), method=method)["alpha"].sum()),
        bounds=(max(a, t_best - spacing), min(b, t_best + spacing)),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return float(res.x) if -float(res.fun) > best + 1e-12 * max(1.0, abs(best)) else t_best


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
    # the max-performance solution picks among the Pareto-optimal lattice points (see the
    # module docstring); ties: the largest welfare, then the first lattice point
    pareto = np.flatnonzero(mask)
    best = performance[pareto].max()
    near = pareto[performance[pareto] >= best - PERFORMANCE_TIE * max(1.0, abs(best))]
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
        pareto_set=ParetoSet(),
        solutions=solutions,
        integrated=vertical_integration(game, method=method),
        method=kind,
        performance=performance,
    )
