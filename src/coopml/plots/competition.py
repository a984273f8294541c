"""Figures of the data-sharing model (:mod:`coopml.competition`)."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from coopml.competition.phase_diagram import SharingPhaseDiagram

__all__ = ["plot_sharing_phase_diagram"]


def plot_sharing_phase_diagram(diagram: SharingPhaseDiagram) -> Figure:
    """Phase diagram: where all firms agree to full sharing, over ``(gamma, beta)``.

    Cells are coloured by the number of firms that agree (all = full sharing).

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
    fig = Figure(figsize=(5.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    n = diagram.sizes.size
    count = diagram.agrees.sum(axis=-1).T  # (n_beta, n_gamma)
    cmap = ListedColormap(["#d9d9d9", *[f"C{i}" for i in range(1, n)], "C2"][: n + 1])
    mesh = ax.pcolormesh(
        diagram.gammas, diagram.betas, count, cmap=cmap, vmin=-0.5, vmax=n + 0.5, shading="auto"
    )
    bar = fig.colorbar(mesh, ax=ax, ticks=np.arange(n + 1))
    bar.set_label("firms that agree to full sharing")
    ax.set_xlabel("product similarity γ")
    ax.set_ylabel("learning-curve exponent β (small = hard task)")
    sizes = ", ".join(f"{v:g}" for v in diagram.sizes)
    ax.set_title(f"Full data sharing, {diagram.market}, sizes {sizes}")
    return fig
