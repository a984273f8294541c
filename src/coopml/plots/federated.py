"""Figures of coopetitive federated learning with synthetic data (CoCoGen+ reconstruction).

One function per figure; each returns a :class:`matplotlib.figure.Figure` and never
touches pyplot state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coopml.federated.simulation import SimulationResult
from coopml.federated.sweep import SweepResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_accuracy_per_round", "plot_sweep", "plot_utilities_transfers"]

_STYLE = {
    "mechanism": ("C0", "o-"),
    "equilibrium": ("C1", "s-"),
    "no_generation": ("C2", "^-"),
    "competition_oblivious": ("C3", "d-"),
    "random": ("C4", "x-"),
}


def _style(name: str) -> tuple[str, str]:
    return _STYLE.get(name, ("C7", ".-"))


def plot_accuracy_per_round(result: SimulationResult, title: str | None = None) -> Figure:
    """Validation accuracy of the global model and synthetic samples, per round and strategy.

    Examples
    --------
    >>> from coopml.federated.config import FLConfig
    >>> from coopml.federated.simulation import simulate
    >>> cfg = FLConfig.model_validate({"rounds": 2, "data": {"dataset": "wine",
    ...     "n_organisations": 3, "min_size": 5},
    ...     "game": {"kappa": 0.8, "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.6}}})
    >>> len(plot_accuracy_per_round(simulate(cfg, train=False)).axes)
    2
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_acc, ax_syn = fig.subplots(1, 2)
    rounds = np.arange(1, result.rounds + 1)
    for name, s in result.strategies.items():
        color, marker = _style(name)
        ax_acc.plot(rounds, s.accuracy_per_round, marker, color=color, ms=3, label=name)
        ax_syn.plot(rounds, s.synthetic_per_round, marker, color=color, ms=3, label=name)
    ax_acc.set_xlabel("round")
    ax_acc.set_ylabel("validation accuracy")
    ax_syn.set_xlabel("round")
    ax_syn.set_ylabel("synthetic samples (all organisations)")
    ax_acc.legend(frameon=False, fontsize=8)
    fig.suptitle(title or "FedAvg with strategic synthetic data")
    return fig


def plot_utilities_transfers(result: SimulationResult, title: str | None = None) -> Figure:
    """Per-organisation utility (summed over rounds): equilibrium, mechanism before and
    after transfers."""
    from matplotlib.figure import Figure

    mech = result.strategies.get("mechanism")
    if mech is None:
        raise ValueError("plot_utilities_transfers needs the 'mechanism' strategy")
    fig = Figure(figsize=(8.0, 3.6), layout="constrained")
    ax = fig.subplots()
    x = np.arange(mech.utilities_before.shape[1])
    width = 0.27
    ax.bar(
        x - width, mech.utilities_equilibrium.sum(axis=0), width, label="equilibrium (no mechanism)"
    )
    ax.bar(x, mech.utilities_before.sum(axis=0), width, label="optimum, before transfers")
    ax.bar(x + width, mech.utilities_after.sum(axis=0), width, label="optimum, after transfers")
    ax.set_xticks(x, [str(i) for i in x])
    ax.set_xlabel("organisation")
    ax.set_ylabel("utility (sum over rounds)")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or "Payoff redistribution: nobody below its equilibrium payoff")
    return fig


def plot_sweep(result: SweepResult, title: str | None = None) -> Figure:
    """Synthetic samples per round and social welfare against the swept parameter."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6), layout="constrained")
    ax_syn, ax_sw = fig.subplots(1, 2)
    label = "competition intensity γ" if result.parameter == "gamma" else "Dirichlet α_D"
    for k, name in enumerate(result.strategies):
        color, marker = _style(name)
        ax_syn.plot(result.values, result.synthetic[k], marker, color=color, ms=4, label=name)
        ax_sw.plot(result.values, result.social_welfare[k], marker, color=color, ms=4, label=name)
    for ax in (ax_syn, ax_sw):
        ax.set_xlabel(label)
        if result.parameter == "alpha":
            ax.set_xscale("log")
    ax_syn.set_ylabel("synthetic samples per round")
    ax_sw.set_ylabel("social welfare (sum over rounds)")
    ax_sw.legend(frameon=False, fontsize=8)
    fig.suptitle(title or f"Sweep over {label}")
    return fig
