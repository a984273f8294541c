r"""The per-round synthetic-data game of coopetitive cross-silo federated learning.

Reconstruction of the round game of CoCoGen+ (*Cooperate to Compete: Strategic Data
Generation and Incentivization Framework for Coopetitive Cross-Silo Federated Learning*,
arXiv 2604.14886, 2026; earlier CoCoGen, GLOBECOM 2025). The paper's full text was not
available: the functional forms are a **reconstruction** consistent with its abstract.
This module is the facade; each concept lives in a module of its own:

* :mod:`coopml.federated.curves` -- accuracy curves :math:`P(E)`;
* :mod:`coopml.federated.skew` -- skew after mixing :math:`h_i(s_i)`;
* :mod:`coopml.federated.competition` -- how rivals' accuracy enters utility (the linear
  penalty, or an oligopoly market where accuracy is quality);
* :mod:`coopml.federated.round_game` -- the game, utilities and the weighted potential;
* :mod:`coopml.federated.equilibrium` -- certified equilibria and optima;
* :mod:`coopml.federated.redistribution` -- the payoff redistribution.
"""

from __future__ import annotations

from coopml.federated.competition import (
    COMPETITION_MODELS,
    CompetitionModel,
    LinearCompetition,
    MarketCompetition,
)
from coopml.federated.curves import AccuracyCurve, AccuracyModel
from coopml.federated.equilibrium import (
    GameSolution,
    best_response_dynamics,
    deviation_gains,
    nash_equilibrium,
    social_optimum,
    welfare_deviation_gains,
)
from coopml.federated.redistribution import Redistribution, contribution_shares, redistribution
from coopml.federated.round_game import (
    RoundGame,
    accuracies,
    effective_data,
    potential,
    social_welfare,
    utilities,
    weights,
)
from coopml.federated.skew import MixingSkew, SkewMap

__all__ = [
    "COMPETITION_MODELS",
    "AccuracyCurve",
    "AccuracyModel",
    "CompetitionModel",
    "GameSolution",
    "LinearCompetition",
    "MarketCompetition",
    "MixingSkew",
    "Redistribution",
    "RoundGame",
    "SkewMap",
    "accuracies",
    "best_response_dynamics",
    "contribution_shares",
    "deviation_gains",
    "effective_data",
    "nash_equilibrium",
    "potential",
    "redistribution",
    "social_optimum",
    "social_welfare",
    "utilities",
    "weights",
    "welfare_deviation_gains",
]
