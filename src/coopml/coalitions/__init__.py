"""Cooperative games, value tables and their solution concepts.

A :class:`CoalitionGame` holds the value of every coalition in one bitmask-indexed table,
computed once (:meth:`CoalitionGame.from_utility`, in parallel and cached); the exact
solution concepts read it. :func:`monte_carlo_shapley` estimates Shapley values when
the table is too large to enumerate.
"""

from coopml.coalitions.banzhaf import banzhaf
from coopml.coalitions.executors import Executor, JoblibExecutor, SerialExecutor, get_executor
from coopml.coalitions.game import MAX_EXACT_PLAYERS, CoalitionGame
from coopml.coalitions.knn_shapley import knn_game, knn_shapley
from coopml.coalitions.least_core import core_contains, least_core
from coopml.coalitions.loo import leave_one_out
from coopml.coalitions.monte_carlo import monte_carlo_shapley
from coopml.coalitions.msr_banzhaf import msr_banzhaf
from coopml.coalitions.nucleolus import nucleolus
from coopml.coalitions.reference_games import CoverageResult, ReferenceGame, reference_suite
from coopml.coalitions.result import LeastCoreResult, ValuationResult
from coopml.coalitions.shapley import shapley
from coopml.coalitions.stopping import (
    MaxEvaluations,
    MaxPermutations,
    MaxTime,
    RankStable,
    StandardErrorBelow,
    StoppingRule,
)
from coopml.coalitions.stratified import stratified_shapley
from coopml.coalitions.svarm import svarm_shapley

__all__ = [
    "MAX_EXACT_PLAYERS",
    "CoalitionGame",
    "CoverageResult",
    "Executor",
    "JoblibExecutor",
    "LeastCoreResult",
    "MaxEvaluations",
    "MaxPermutations",
    "MaxTime",
    "RankStable",
    "ReferenceGame",
    "SerialExecutor",
    "StandardErrorBelow",
    "StoppingRule",
    "ValuationResult",
    "banzhaf",
    "core_contains",
    "get_executor",
    "knn_game",
    "knn_shapley",
    "least_core",
    "leave_one_out",
    "monte_carlo_shapley",
    "msr_banzhaf",
    "nucleolus",
    "reference_suite",
    "shapley",
    "stratified_shapley",
    "svarm_shapley",
]
