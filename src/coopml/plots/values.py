"""Bar chart of the players' values under one or more solution concepts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from coopml.coalitions.result import ValuationResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_values"]


def plot_values(
    results: ValuationResult | Sequence[ValuationResult],
    ax: Axes | None = None,
    title: str | None = None,
    unit: str = "the utility's score",
) -> Figure:
    """Grouped bars, one group per player and one bar per result; error bars show
    standard errors of estimates. The key, beside the axes, names each result's method;
    the y axis names ``unit`` (what a value is a contribution to, e.g. ``"accuracy"``).

    Examples
    --------
    >>> from coopml.coalitions import CoalitionGame
    >>> game = CoalitionGame([0.0, 1.0, 2.0, 4.0], names=["a", "b"])
    >>> fig = plot_values([game.shapley(), game.banzhaf()])
    >>> len(fig.axes[0].patches), fig.axes[0].get_legend().get_texts()[0].get_text()
    (4, 'shapley')
    """
    from matplotlib.figure import Figure

    items = [results] if isinstance(results, ValuationResult) else list(results)
    if not items:
        raise ValueError("parameter 'results' must hold at least one result; got none")
    names = items[0].names
    if any(r.names != names for r in items):
        raise ValueError("parameter 'results' must all value the same players in the same order")
    if ax is None:
        fig = Figure(figsize=(max(5.0, 0.9 * len(names) + 2) + 2.0, 3.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure  # type: ignore[assignment]
    width = 0.8 / len(items)
    x = np.arange(len(names))
    for k, r in enumerate(items):
        ax.bar(
            x + (k - (len(items) - 1) / 2) * width,
            r.values,
            width,
            yerr=r.stderr,
            label=r.method,
            capsize=2,
        )
    ax.axhline(0.0, color="black", linewidth=0.8)
    crowded = sum(len(name) for name in names) > 60
    ax.set_xticks(x, names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    ax.set_ylabel(f"value (contribution to {unit})")
    ax.set_title(title or "Value of each party's data")
    estimated = any(r.stderr is not None for r in items)
    ax.legend(
        frameon=False,
        fontsize="small",
        title="method" + (" (error bar: ± 1 standard error)" if estimated else ""),
        title_fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    return fig
