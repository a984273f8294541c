"""Coopetitive cross-silo federated learning with synthetic data (seed 004).

Reconstruction of CoCoGen+ (arXiv 2604.14886): per round every organisation decides how
many synthetic samples to generate; the round is a weighted potential game
(:mod:`coopml.federated.game`), a payoff redistribution implements the social optimum,
and the system around it trains real FedAvg models (:mod:`coopml.federated.fedavg`) with
per-organisation generators (:mod:`coopml.federated.synthetic`). torch and flwr are
optional and imported lazily.
"""

from __future__ import annotations

from coopml.federated.game import (
    AccuracyCurve,
    AccuracyModel,
    GameSolution,
    MixingSkew,
    Redistribution,
    RoundGame,
    SkewMap,
    accuracies,
    best_response_dynamics,
    effective_data,
    nash_equilibrium,
    potential,
    redistribution,
    social_optimum,
    social_welfare,
    utilities,
    weights,
)

__all__ = [
    "AccuracyCurve",
    "AccuracyModel",
    "GameSolution",
    "MixingSkew",
    "Redistribution",
    "RoundGame",
    "SkewMap",
    "accuracies",
    "best_response_dynamics",
    "effective_data",
    "nash_equilibrium",
    "potential",
    "redistribution",
    "social_optimum",
    "social_welfare",
    "utilities",
    "weights",
]
