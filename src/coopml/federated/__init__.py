"""Coopetitive cross-silo federated learning with synthetic data (seed 004).

Reconstruction of CoCoGen+ (arXiv 2604.14886): per round every organisation decides how
many synthetic samples to generate; the round is a weighted potential game
(:mod:`coopml.federated.game`), a payoff redistribution implements the social optimum,
and the system around it trains real FedAvg models (:mod:`coopml.federated.fedavg`) with
per-organisation generators (:mod:`coopml.federated.synthetic`); one round engine
(:mod:`coopml.federated.rounds`) runs every round for the simulator and the Flower
adapter. The functions
``fedavg.fedavg`` and ``sweep.sweep`` live in their modules (same names). torch and flwr
are optional and imported lazily.
"""

from __future__ import annotations

from coopml.federated.config import FLConfig, load_fl_config
from coopml.federated.fedavg import FedAvgResult, LogisticModel, MLPModel, make_model
from coopml.federated.game import (
    COMPETITION_MODELS,
    AccuracyCurve,
    AccuracyModel,
    CompetitionModel,
    GameSolution,
    LinearCompetition,
    MarketCompetition,
    MixingSkew,
    Redistribution,
    RoundGame,
    SkewMap,
    accuracies,
    best_response_dynamics,
    deviation_gains,
    effective_data,
    nash_equilibrium,
    potential,
    redistribution,
    social_optimum,
    social_welfare,
    utilities,
    weights,
    welfare_deviation_gains,
)
from coopml.federated.rounds import RoundEngine
from coopml.federated.simulation import SimulationResult, StrategyResult, prepare, simulate
from coopml.federated.sweep import SweepResult
from coopml.federated.synthetic import (
    FederatedData,
    GaussianMixtureGenerator,
    GeneratorPool,
    QualityResult,
    VAEGenerator,
    federated_split,
    fit_generators,
    measure_quality,
)

__all__ = [
    "COMPETITION_MODELS",
    "AccuracyCurve",
    "AccuracyModel",
    "CompetitionModel",
    "FLConfig",
    "FedAvgResult",
    "FederatedData",
    "GameSolution",
    "GaussianMixtureGenerator",
    "GeneratorPool",
    "LinearCompetition",
    "LogisticModel",
    "MLPModel",
    "MarketCompetition",
    "MixingSkew",
    "QualityResult",
    "Redistribution",
    "RoundEngine",
    "RoundGame",
    "SimulationResult",
    "SkewMap",
    "StrategyResult",
    "SweepResult",
    "VAEGenerator",
    "accuracies",
    "best_response_dynamics",
    "deviation_gains",
    "effective_data",
    "federated_split",
    "fit_generators",
    "load_fl_config",
    "make_model",
    "measure_quality",
    "nash_equilibrium",
    "potential",
    "prepare",
    "redistribution",
    "simulate",
    "social_optimum",
    "social_welfare",
    "utilities",
    "weights",
    "welfare_deviation_gains",
]
