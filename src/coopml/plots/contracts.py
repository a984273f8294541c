"""Figures of optimal contract menus paid with models (Wang, Wu, Liu & Low, AAAI 2025).

One function per figure; each returns a :class:`matplotlib.figure.Figure` and never
touches pyplot state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.problem import ContractProblem
from coopml.contracts.realisation import proportional_rewards
from coopml.contracts.result import ContractResult
from coopml.contracts.sweep import TwoTypeSweep

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_contract_menu",
    "plot_contribution_bars",
    "plot_reward_distributions",
    "plot_two_type_surface",
]


def _labels(result: ContractResult) -> list[str]:
    return [f"{i + 1}\nc={c:g}" for i, c in enumerate(result.costs)]


def plot_contract_menu(result: ContractResult, title: str | None = None) -> Figure:
    """Contributions ``m`` and rewards ``t`` (with caps ``tbar`` and reservation
    utilities ``f``) against the type.

    Examples
    --------
    >>> from coopml.contracts import ContractProblem, solve_contract
    >>> fig = plot_contract_menu(solve_contract(ContractProblem(10, [0.02, 0.01], [0.5, 0.5])))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 3.4), layout="constrained")
    ax_m, ax_t = fig.subplots(1, 2)
    x = np.arange(result.costs.size)
    ax_m.plot(x, result.contributions, "o-", label="contract m")
    ax_m.plot(x, result.reservation_contributions, "s--", label="alone m_res")
    ax_m.set_ylabel("contribution (data points)")
    ax_t.plot(x, result.rewards, "o-", label="reward t")
    ax_t.plot(x, result.max_rewards, "^:", label="cap t̄")
    ax_t.plot(x, result.utilities, "d-", label="utility u")
    ax_t.plot(x, result.reservation_utilities, "s--", label="reservation f")
    ax_t.set_ylabel("value")
    for ax in (ax_m, ax_t):
        ax.set_xticks(x, _labels(result))
        ax.set_xlabel("type (least to most efficient by cost)")
        ax.legend(frameon=False, fontsize=8)
    fig.suptitle(title or "Optimal contract menu")
    return fig


def plot_reward_distributions(
    problem: ContractProblem,
    result: ContractResult,
    space: OutcomeSpace | None = None,
    title: str | None = None,
) -> Figure:
    """Distribution of the realised model value each type receives (proportional
    assignment), weighted by outcome probability; the marker is the mean ``t_i``.

    Examples
    --------
    >>> from coopml.contracts import ContractProblem, solve_contract
    >>> problem = ContractProblem(6, [0.02, 0.01], [0.5, 0.5])
    >>> fig = plot_reward_distributions(problem, solve_contract(problem))
    >>> len(fig.axes)
    1
    """
    from matplotlib.figure import Figure

    space = problem.outcome_space("exact") if space is None else space
    rho = proportional_rewards(
        result.contributions, result.rewards, space, problem.curve, problem.valuation
    )
    fig = Figure(figsize=(max(5.0, 1.2 * problem.n_types + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    lo, hi = np.nanmin(rho), np.nanmax(rho)
    bins = np.linspace(lo - 1e-9, hi + 1e-9, 25)
    for i in np.flatnonzero(result.served):
        present = space.present[:, i] > 0
        ax.hist(
            rho[present, i],
            bins=bins.tolist(),
            weights=space.weights[present] / space.presence[i],
            histtype="step",
            label=f"type {i + 1} (t={result.rewards[i]:.2f})",
        )
    ax.set_xlabel("value of the model received")
    ax.set_ylabel("probability")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(title or "Realised rewards per type")
    return fig


def plot_contribution_bars(result: ContractResult, title: str | None = None) -> Figure:
    """Base (training alone) versus incentivised (contract) contributions per type.

    Examples
    --------
    >>> from coopml.contracts import ContractProblem, solve_contract
    >>> fig = plot_contribution_bars(solve_contract(ContractProblem(10, [0.02, 0.01], [0.5, 0.5])))
    >>> len(fig.axes[0].patches)
    4
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(5.0, 1.0 * result.costs.size + 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(result.costs.size)
    ax.bar(x - 0.2, result.reservation_contributions, 0.4, label="alone (base)")
    ax.bar(x + 0.2, result.contributions, 0.4, label="contract (incentivised)")
    ax.set_xticks(x, _labels(result))
    ax.set_ylabel("contribution (data points)")
    ax.legend(frameon=False)
    ax.set_title(title or "Base vs incentivised contributions")
    return fig


def plot_two_type_surface(
    sweep: TwoTypeSweep, quantity: str = "contributions", title: str | None = None
) -> Figure:
    """Surfaces over ``(N, p_1)`` of a two-type quantity, one panel per type.

    ``quantity`` is ``"contributions"``, ``"rewards"`` or ``"utilities"``.

    Examples
    --------
    >>> from coopml.contracts.sweep import two_type_sweep
    >>> fig = plot_two_type_surface(two_type_sweep([0.02, 0.01], [4, 8], [0.3, 0.7]))
    >>> len(fig.axes)
    2
    """
    from matplotlib.figure import Figure

    if quantity not in ("contributions", "rewards", "utilities"):
        raise ValueError(
            "parameter 'quantity' must be one of 'contributions', 'rewards', 'utilities'; "
            f"got {quantity!r}"
        )
    Z = getattr(sweep, quantity)
    N, P = np.meshgrid(sweep.n_values, sweep.p1_values, indexing="ij")
    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    for i in range(2):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        ax.plot_surface(N, P, Z[..., i], cmap="viridis")
        ax.set_xlabel("N")
        ax.set_ylabel("p_1")
        ax.set_title(f"type {i + 1} (c={sweep.costs[i]:g})")
    fig.suptitle(title or f"Two-type {quantity}")
    return fig
