"""Matplotlib figures, one function per figure. Importing this module does not select
a GUI backend; scripts and the CLI render with Agg."""

from coopml.plots.competition import (
    plot_learning_curves,
    plot_profit_gains,
    plot_sharing_fractions,
    plot_sharing_phase_diagram,
)
from coopml.plots.contracts import (
    plot_contract_menu,
    plot_contribution_bars,
    plot_reward_distributions,
    plot_two_type_surface,
)
from coopml.plots.federated import (
    plot_accuracy_per_round,
    plot_sweep,
    plot_utilities_transfers,
)
from coopml.plots.finetuning import (
    plot_pareto_shares,
    plot_regime_map,
    plot_shares_by_cost_ratio,
    plot_utility_possibility,
)
from coopml.plots.market import plot_replication_audit, plot_settlement
from coopml.plots.values import plot_values

__all__ = [
    "plot_accuracy_per_round",
    "plot_contract_menu",
    "plot_contribution_bars",
    "plot_learning_curves",
    "plot_pareto_shares",
    "plot_profit_gains",
    "plot_regime_map",
    "plot_replication_audit",
    "plot_reward_distributions",
    "plot_settlement",
    "plot_shares_by_cost_ratio",
    "plot_sharing_fractions",
    "plot_sharing_phase_diagram",
    "plot_sweep",
    "plot_two_type_surface",
    "plot_utilities_transfers",
    "plot_utility_possibility",
    "plot_values",
]
