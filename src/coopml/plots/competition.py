"""Figures of the data-sharing model (:mod:`coopml.competition`), one function each.

* :func:`plot_sharing_phase_diagram`: full / partial / no sharing over ``(gamma, beta)``
  or ``(gamma, size ratio)``;
* :func:`plot_sharing_fractions`: heat map of the larger firm's Nash-bargaining fraction;
* :func:`plot_profit_gains`: relative profit gain of every firm against similarity;
* :func:`plot_learning_curves`: measured errors and fitted learning curves.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from coopml.competition.learning import LearningCurveFit
from coopml.competition.phase_diagram import PHASES, SharingPhaseDiagram

__all__ = [
    "plot_learning_curves",
    "plot_profit_gains",
    "plot_sharing_fractions",
    "plot_sharing_phase_diagram",
]

_Y_LABELS = {
    "beta": "learning-curve exponent β (small = hard task)",
    "size_ratio": "size ratio n_small / n_large",
}
_PHASE_COLOURS = ("#d9d9d9", "#fdae61", "#1a9641")


def _title(diagram: SharingPhaseDiagram, what: str) -> str:
    if diagram.y_name == "beta":
        detail = "sizes " + ", ".join(f"{v:g}" for v in diagram.sizes[0])
    else:
        detail = f"β = {diagram.betas[0]:g}, n_large = {diagram.sizes[0].max():g}"
    return f"{what}, {diagram.market}, {detail}"


def plot_sharing_phase_diagram(diagram: SharingPhaseDiagram) -> Figure:
    """Phase diagram: full, partial (bargained) or no data sharing in every cell.

    Without bargaining results (more than two firms) cells are coloured by the number
    of firms that agree to full sharing.

    Parameters
    ----------
    diagram : SharingPhaseDiagram

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from coopml.competition import sharing_phase_diagram
    >>> d = sharing_phase_diagram([1000, 100], np.linspace(0, 1, 5), np.linspace(0.1, 1, 4))
    >>> plot_sharing_phase_diagram(d).axes[0].get_xlabel()
    'product similarity γ'
    """
    fig = Figure(figsize=(5.8, 4.4), layout="constrained")
    ax = fig.add_subplot()
    if diagram.fractions is not None:
        cmap = ListedColormap(list(_PHASE_COLOURS))
        ax.pcolormesh(
            diagram.gammas, diagram.y, diagram.phase.T, cmap=cmap, vmin=-0.5, vmax=2.5,
            shading="auto",
        )  # fmt: skip
        handles = [Patch(color=c, label=p) for c, p in zip(_PHASE_COLOURS, PHASES, strict=True)]
        ax.legend(handles=handles[::-1], loc="upper right", framealpha=0.9, fontsize=8)
    else:
        n = diagram.sizes.shape[1]
        count = diagram.agrees.sum(axis=-1).T
        colours = ["#d9d9d9", *[f"C{i}" for i in range(1, n)], "#1a9641"][: n + 1]
        mesh = ax.pcolormesh(
            diagram.gammas, diagram.y, count, cmap=ListedColormap(colours), vmin=-0.5,
            vmax=n + 0.5, shading="auto",
        )  # fmt: skip
        bar = fig.colorbar(mesh, ax=ax, ticks=np.arange(n + 1))
        bar.set_label("firms that agree to full sharing")
    ax.set_xlabel("product similarity γ")
    ax.set_ylabel(_Y_LABELS[diagram.y_name])
    ax.set_title(_title(diagram, "Data sharing"), fontsize=10)
    return fig


def plot_sharing_fractions(diagram: SharingPhaseDiagram) -> Figure:
    """Heat map of the share of its data the larger firm contributes (Nash bargaining).

    The smaller firm contributes everything wherever there is an agreement; grey cells
    have no agreement. Colours are on a log scale (the fractions span many decades).

    Parameters
    ----------
    diagram : SharingPhaseDiagram
        A two-firm diagram computed with ``bargaining=True``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from coopml.competition import sharing_phase_diagram
    >>> d = sharing_phase_diagram([1000, 100], np.linspace(0, 1, 5), np.linspace(0.1, 1, 4))
    >>> plot_sharing_fractions(d).axes[1].get_ylabel()
    'larger firm shares this fraction of its data'
    """
    if diagram.fractions is None:
        raise ValueError("parameter 'diagram' must hold bargaining results (two firms)")
    large = np.argmax(diagram.sizes, axis=1)
    frac = diagram.fractions[:, np.arange(diagram.y.size), large]  # (n_gamma, n_y)
    agreement = diagram.agreement
    assert agreement is not None
    values = np.where(agreement & (frac > 0), frac, np.nan).T
    fig = Figure(figsize=(5.8, 4.4), layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("#d9d9d9")
    positive = values[np.isfinite(values)]
    lo = max(float(positive.min()), 1e-8) if positive.size else 1e-8
    mesh = ax.pcolormesh(
        diagram.gammas, diagram.y, values, cmap="viridis",
        norm=LogNorm(vmin=lo, vmax=1.0), shading="auto",
    )  # fmt: skip
    bar = fig.colorbar(mesh, ax=ax)
    bar.set_label("larger firm shares this fraction of its data")
    ax.set_xlabel("product similarity γ")
    ax.set_ylabel(_Y_LABELS[diagram.y_name])
    ax.set_title(_title(diagram, "Nash bargaining"), fontsize=10)
    return fig


def plot_profit_gains(
    curves: SharingPhaseDiagram, *, column: int = 0, gamma: float | None = None
) -> Figure:
    """Relative profit gain of every firm against similarity, full sharing and Nash.

    Parameters
    ----------
    curves : SharingPhaseDiagram
        Usually from :func:`~coopml.competition.profit_gain_curves`.
    column : int
        Which ``y`` column to draw.
    gamma : float, optional
        Mark this similarity (the user's market) with a vertical line.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from coopml.competition import profit_gain_curves
    >>> c = profit_gain_curves([1000, 100], np.linspace(0, 1, 11), beta=0.5)
    >>> len(plot_profit_gains(c, gamma=0.3).axes[0].lines)
    6
    """
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    sizes = curves.sizes[column]
    alone = curves.profit_alone[:, column]
    for i in range(sizes.size):
        colour = f"C{i}"
        gain = 100 * (curves.profit_shared[:, column, i] / alone[:, i] - 1)
        ax.plot(curves.gammas, gain, color=colour, label=f"firm {i} (n={sizes[i]:g}), full")
        if curves.profit_nash is not None:
            nash = 100 * (curves.profit_nash[:, column, i] / alone[:, i] - 1)
            ax.plot(curves.gammas, nash, color=colour, ls="--", label=f"firm {i}, Nash")
    ax.axhline(0.0, color="black", lw=0.8)
    if gamma is not None:
        ax.axvline(gamma, color="grey", ls=":", label=f"γ = {gamma:g}")
    ax.set_xlabel("product similarity γ")
    ax.set_ylabel("profit change vs. no sharing (%)")
    ax.set_title(f"Profit gains, {curves.market}, β = {curves.betas[column]:g}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_learning_curves(fits: Mapping[str, LearningCurveFit]) -> Figure:
    """Measured validation errors (mean and spread over repeats) with fitted curves.

    Parameters
    ----------
    fits : mapping of str to LearningCurveFit
        One fit per task (label -> fit).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> from coopml.competition import LearningCurve, LearningCurveFit
    >>> fit = LearningCurveFit(curve=LearningCurve(0, 1, 0.5), stderr=[0, 0, 0],
    ...                        sizes=[1, 4, 16], errors=[[1.0, 0.5, 0.25]], converged=True)
    >>> plot_learning_curves({"task": fit}).axes[0].get_xscale()
    'log'
    """
    fig = Figure(figsize=(5.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for k, (name, fit) in enumerate(fits.items()):
        colour = f"C{k}"
        spread = fit.errors.std(axis=0) if fit.errors.shape[0] > 1 else None
        ax.errorbar(fit.sizes, fit.mean_errors, yerr=spread, fmt="o", color=colour, ms=4)
        grid = np.geomspace(fit.sizes.min(), fit.sizes.max(), 100)
        c = fit.curve
        ax.plot(
            grid, c(grid), color=colour,
            label=f"{name}: ε∞={c.eps_inf:.3f}, A={c.A:.2f}, β={c.beta:.2f}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("training samples N")
    ax.set_ylabel("validation error ε(N)")
    ax.set_title("Learning curves (points: measured, lines: fitted)", fontsize=10)
    ax.legend(fontsize=8)
    return fig
