"""Figures of the fine-tuning game (Laufer, Kleinberg & Heidari 2023), one per function.

* :func:`plot_utility_possibility` -- the utility-possibility curve over the share,
  its Pareto-optimal part and every bargaining solution;
* :func:`plot_pareto_shares` -- every player's utility against the share, with the
  Pareto-optimal shares shaded (shows disconnected Pareto sets);
* :func:`plot_shares_by_cost_ratio` -- the share chosen by each solution against the
  cost ratio ``kappa = c1 / c0`` (DERIVED closed forms of the quadratic game);
* :func:`plot_regime_map` -- which specialists contribute, free-ride or abstain over
  two parameters.

:func:`write_finetuning_figures` renders the standard set (used by
``coopml finetune plot``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml.finetuning import (
    REGIMES,
    SOLUTION_NAMES,
    FineTuningBargain,
    FineTuningGame,
    LinearRevenue,
    PolynomialCost,
    RegimeMap,
    Specialist,
    bargain,
    disconnected_pareto_game,
    quadratic_solution_shares,
    regime_map,
    solve_shares,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "plot_pareto_shares",
    "plot_regime_map",
    "plot_shares_by_cost_ratio",
    "plot_utility_possibility",
    "write_finetuning_figures",
]

_MARKERS = {
    "nash": "o",
    "kalai_smorodinsky": "s",
    "egalitarian": "^",
    "utilitarian": "D",
    "max_performance": "v",
}
_REGIME_COLOURS = ("#2a9d8f", "#e9c46a", "#e76f51")


def _figure(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=size, layout="constrained")
        return fig, fig.add_subplot()
    return ax.figure, ax  # type: ignore[return-value]


def plot_utility_possibility(
    result: FineTuningBargain, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """The utility-possibility curve ``delta -> (U_G, sum_i U_i)``, its Pareto-optimal
    part (thick; isolated Pareto points as black dots) and every solution (markers).

    Examples
    --------
    >>> from coopml.finetuning import FineTuningGame, bargain
    >>> fig = plot_utility_possibility(bargain(FineTuningGame.quadratic(1.0, 2.0, 1.0), n_grid=201))
    >>> len(fig.axes[0].lines) >= 6
    True
    """
    if not isinstance(result, FineTuningBargain):
        raise TypeError(
            f"parameter 'result' must be a FineTuningBargain; got {type(result).__name__}"
        )
    if result.shares != "common":
        raise ValueError("parameter 'result' must come from bargain(..., shares='common')")
    fig, ax = _figure(ax, (5.2, 4.2))
    u_g = result.utilities[:, 0]
    u_s = result.utilities[:, 1:].sum(axis=1)
    ax.plot(u_g, u_s, color="0.6", linewidth=1.2, label="all shares")
    pareto = np.where(result.pareto_mask, u_s, np.nan)
    ax.plot(u_g, pareto, color="black", linewidth=3, label="Pareto optimal")
    points = np.array(result.pareto_set.points)
    if points.size:
        u = _utilities(result, points)
        ax.plot(
            u[:, 0],
            u[:, 1:].sum(axis=1),
            "o",
            color="black",
            markersize=5,
            label="Pareto optimal (isolated)",
        )
    for name in SOLUTION_NAMES:
        eq = result.solutions[name].equilibrium
        ax.plot(
            eq.u_generalist,
            float(eq.u_specialists.sum()),
            _MARKERS[name],
            markersize=8,
            label=f"{name.replace('_', '-')} (δ={result.solutions[name].equilibrium.delta[0]:.3f})",
        )
    ax.set_xlabel("generalist utility $U_G$")
    n = result.game.n_specialists
    ax.set_ylabel(
        "specialist utility $U_D$" if n == 1 else "total specialist utility $\\sum_i U_i$"
    )
    ax.set_title(title or "Utility possibilities over the revenue share δ")
    ax.legend(frameon=False, fontsize=7)
    return fig


def _utilities(result: FineTuningBargain, deltas: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(U_G, U_1, ..., U_n)`` at common shares ``deltas``, shape (m, n + 1)."""
    method: Literal["closed_form", "numerical"] = (
        "closed_form" if result.method == "closed_form" else "numerical"
    )
    out = solve_shares(
        result.game, deltas[:, None] * np.ones(result.game.n_specialists), method=method
    )
    return np.column_stack([out["u_generalist"], out["u_specialists"]])


def plot_pareto_shares(
    result: FineTuningBargain, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """Every player's utility against the common share, the Pareto-optimal shares shaded
    (an isolated Pareto-optimal share as a grey line, its utilities as dots) and each
    solution's share as a dotted line.

    Examples
    --------
    >>> from coopml.finetuning import FineTuningGame, bargain
    >>> fig = plot_pareto_shares(bargain(FineTuningGame.quadratic(1.0, 2.0, 1.0), n_grid=201))
    >>> len(fig.axes[0].patches)
    1
    """
    if not isinstance(result, FineTuningBargain):
        raise TypeError(
            f"parameter 'result' must be a FineTuningBargain; got {type(result).__name__}"
        )
    if result.shares != "common":
        raise ValueError("parameter 'result' must come from bargain(..., shares='common')")
    fig, ax = _figure(ax, (5.6, 3.8))
    for low, high in result.pareto_set.intervals:
        ax.axvspan(low, high, color="0.88", zorder=0)
    points = np.array(result.pareto_set.points)
    for t in points:
        ax.axvline(t, color="0.75", linewidth=2.5, zorder=0)
    labels = ["generalist", *result.game.names]
    u_points = _utilities(result, points) if points.size else None
    for j, label in enumerate(labels):
        (line,) = ax.plot(result.deltas, result.utilities[:, j], label=f"$U$ {label}")
        if u_points is not None:
            ax.plot(points, u_points[:, j], "o", color=line.get_color(), markersize=4)
    for name in SOLUTION_NAMES:
        delta = float(result.solutions[name].equilibrium.delta[0])
        ax.axvline(delta, linestyle=":", color="0.3", linewidth=0.8)
        ax.annotate(
            name.replace("_", "-"),
            (delta, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=6,
        )
    ax.set_xlabel("share to the generalist δ")
    ax.set_ylabel("utility")
    ax.set_title(
        title or f"Pareto-optimal shares (shaded): {result.pareto_set.format(3)}", fontsize=9
    )
    ax.legend(frameon=False, fontsize=7, loc="center left")
    return fig


def plot_shares_by_cost_ratio(
    kappas: ArrayLike | None = None, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """The share ``delta*`` of each solution against ``kappa = c1 / c0`` (DERIVED closed
    forms of the quadratic game; solutions depend on ``kappa`` only).

    Examples
    --------
    >>> fig = plot_shares_by_cost_ratio([0.5, 1.0, 2.0])
    >>> len(fig.axes[0].lines)
    5
    """
    k = np.logspace(-1.5, 1.5, 121) if kappas is None else np.asarray(kappas, dtype=np.float64)
    if k.ndim != 1 or k.size == 0 or not np.all(np.isfinite(k) & (k > 0)):
        raise ValueError(f"parameter 'kappas' must be a non-empty sequence of numbers > 0; got {k}")
    fig, ax = _figure(ax, (5.2, 3.8))
    shares = [quadratic_solution_shares(1.0, float(x)) for x in k]
    for name in SOLUTION_NAMES:
        ax.plot(
            k,
            [s[name] for s in shares],
            label=name.replace("_", "-"),
            marker=_MARKERS[name],
            markevery=max(1, k.size // 8),
            markersize=5,
        )
    ax.set_xscale("log")
    ax.set_xlabel("cost ratio κ = $c_1 / c_0$")
    ax.set_ylabel("share to the generalist δ*")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title(title or "Bargained share vs cost ratio (quadratic game)", fontsize=10)
    ax.legend(frameon=False, fontsize=7)
    return fig


def plot_regime_map(result: RegimeMap, title: str | None = None) -> Figure:
    """One panel per specialist: its equilibrium regime over the two swept parameters.

    Examples
    --------
    >>> from coopml.finetuning import three_regimes_game, regime_map
    >>> m = regime_map(lambda x, y: three_regimes_game(x, y), [0.0, 0.9], [0.0, 1.0])
    >>> len(plot_regime_map(m).axes)
    3
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not isinstance(result, RegimeMap):
        raise TypeError(f"parameter 'result' must be a RegimeMap; got {type(result).__name__}")
    n = len(result.names)
    fig = Figure(figsize=(3.2 * n + 0.6, 3.4), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    cmap = ListedColormap(_REGIME_COLOURS)
    for i, ax in enumerate(axes):
        ax.pcolormesh(
            _edges(result.x),
            _edges(result.y),
            result.regimes[..., i],
            cmap=cmap,
            vmin=-0.5,
            vmax=2.5,
            shading="flat",
        )
        ax.set_title(f"specialist {result.names[i]}", fontsize=9)
        ax.set_xlabel(result.x_label)
        if i == 0:
            ax.set_ylabel(result.y_label)
    fig.legend(
        handles=[Patch(color=c, label=r) for c, r in zip(_REGIME_COLOURS, REGIMES, strict=True)],
        loc="outside lower center",
        ncols=3,
        frameon=False,
        fontsize=8,
    )
    fig.suptitle(title or f"Equilibrium regimes (δ = {result.delta[0]:.2f})", fontsize=10)
    return fig


def _edges(v: np.ndarray) -> np.ndarray:
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = 0.5 * (v[1:] + v[:-1])
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])


def _regime_game(linear: float, fixed: float) -> FineTuningGame:
    """Three specialists: a plain one, and two whose linear / fixed costs are swept."""
    return FineTuningGame(
        PolynomialCost.quadratic(1.0),
        (
            Specialist(PolynomialCost.quadratic(1.0), LinearRevenue(1.0), "a (quadratic)"),
            Specialist(
                PolynomialCost.quadratic(1.0, linear=linear), LinearRevenue(1.0), "b (+ linear)"
            ),
            Specialist(
                PolynomialCost.quadratic(1.0, linear=linear, fixed=fixed),
                LinearRevenue(1.0),
                "c (+ linear + fixed)",
            ),
        ),
    )


def write_finetuning_figures(
    out: str | Path,
    *,
    c0: float = 1.0,
    c1: float = 2.0,
    revenue: float = 1.0,
    n_regime: int = 25,
    n_grid: int = 2001,
    dpi: int = 90,
) -> list[Path]:
    """Render the standard figures as ``finetuning_*.png`` files in ``out``.

    ``finetuning_utility_curve.png`` (the quadratic game ``c0, c1, revenue``),
    ``finetuning_shares_vs_kappa.png``, ``finetuning_regime_map.png`` (three specialists,
    linear cost against fixed cost, share 1/2, ``n_regime`` points per axis) and
    ``finetuning_disconnected_pareto.png`` (shares searched on ``n_grid`` points).

    Returns
    -------
    list of Path
        The files written.
    """
    from coopml._validation import check_int

    check_int("n_regime", n_regime, minimum=2)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "utility_curve": plot_utility_possibility(
            bargain(FineTuningGame.quadratic(c0, c1, revenue), n_grid=n_grid),
            title=f"Utility possibilities (c0={c0:g}, c1={c1:g}, r={revenue:g})",
        ),
        "shares_vs_kappa": plot_shares_by_cost_ratio(),
        "regime_map": plot_regime_map(
            regime_map(
                _regime_game,
                np.linspace(0.0, 1.0, n_regime),
                np.linspace(0.0, 1.5, n_regime),
                delta=0.5,
                x_label="linear cost part",
                y_label="fixed (entry) cost",
            )
        ),
        "disconnected_pareto": plot_pareto_shares(
            bargain(disconnected_pareto_game(), n_grid=n_grid)
        ),
    }
    paths = []
    for name, fig in figures.items():
        path = out / f"finetuning_{name}.png"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
