"""Fine-tuning games: a generalist, domain specialists and the revenue split.

The generalist / domain-specialist game of Laufer, Kleinberg & Heidari (2023): the
generalist builds a general-purpose model, specialists adapt it to their domains, and
they bargain beforehand over how to share revenue. This package solves the game for
general cost and revenue functions (subgame-perfect equilibria by backward induction,
with DERIVED closed forms for quadratic costs and linear revenue as a fast path),
finds the Pareto-optimal shares, applies every bargaining solution of
:mod:`coopml.bargaining`, and maps which specialists contribute, free-ride or abstain.

Examples
--------
>>> from coopml.finetuning import FineTuningGame, bargain
>>> result = bargain(FineTuningGame.quadratic(c0=1.0, c1=2.0, revenue=1.0))
>>> [round(v, 6) for v in result.pareto_set[0]]
[0.333333, 1.0]
>>> round(result.solutions["utilitarian"].delta, 6)
0.666667
"""

from coopml.finetuning._config import load_game
from coopml.finetuning.closed_form import (
    quadratic_egalitarian_share,
    quadratic_equilibrium,
    quadratic_kalai_smorodinsky_share,
    quadratic_max_performance_share,
    quadratic_nash_share,
    quadratic_pareto_set,
    quadratic_solution_shares,
    quadratic_utilitarian_share,
    quadratic_utilities,
    quadratic_vertical_integration,
)
from coopml.finetuning.costs import CallableCost, Cost, PolynomialCost
from coopml.finetuning.equilibrium import (
    REGIMES,
    Equilibrium,
    IntegratedOutcome,
    deviation_gains,
    solve_shares,
    subgame_perfect_equilibrium,
    vertical_integration,
)
from coopml.finetuning.game import FineTuningGame, Specialist
from coopml.finetuning.instances import disconnected_pareto_game, three_regimes_game
from coopml.finetuning.regimes import RegimeMap, regime_conditions, regime_map
from coopml.finetuning.revenue import CallableRevenue, LinearRevenue, PowerRevenue, Revenue
from coopml.finetuning.revenue_sharing import (
    SOLUTION_NAMES,
    FineTuningBargain,
    ShareSolution,
    bargain,
)

__all__ = [
    "REGIMES",
    "SOLUTION_NAMES",
    "CallableCost",
    "CallableRevenue",
    "Cost",
    "Equilibrium",
    "FineTuningBargain",
    "FineTuningGame",
    "IntegratedOutcome",
    "LinearRevenue",
    "PolynomialCost",
    "PowerRevenue",
    "RegimeMap",
    "Revenue",
    "ShareSolution",
    "Specialist",
    "bargain",
    "deviation_gains",
    "disconnected_pareto_game",
    "load_game",
    "quadratic_egalitarian_share",
    "quadratic_equilibrium",
    "quadratic_kalai_smorodinsky_share",
    "quadratic_max_performance_share",
    "quadratic_nash_share",
    "quadratic_pareto_set",
    "quadratic_solution_shares",
    "quadratic_utilitarian_share",
    "quadratic_utilities",
    "quadratic_vertical_integration",
    "regime_conditions",
    "regime_map",
    "solve_shares",
    "subgame_perfect_equilibrium",
    "three_regimes_game",
    "vertical_integration",
]
