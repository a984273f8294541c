"""Optimal contracts paid with models (seed 001): Wang, Wu, Liu & Low, *Paid with
Models: Optimal Contract Design for Collaborative Machine Learning*, AAAI 2025
(arXiv:2412.11122).

The model (:class:`ContractProblem`: private cost types, prior, multinomial outcomes,
accuracy curve, valuation), the convex first-moment program (:func:`solve_contract`,
full and simplified formulations, exact gradients and Hessians, verification and a KKT
optimality certificate), proportional-assignment realisation and an end-to-end
simulator, the complete-information benchmark, type exclusion, two-type sweeps and
accuracy curves fitted from real training runs.
"""

from coopml.contracts.accuracy import (
    AccuracyCurve,
    CustomCurve,
    GeneralizationBoundCurve,
    PowerLawCurve,
)
from coopml.contracts.complete_information import (
    CompleteInformationResult,
    complete_information,
    information_cost,
)
from coopml.contracts.config import (
    ContractConfig,
    ContractConfigError,
    load_contract_config,
    parse_contract_config,
    solve_config,
)
from coopml.contracts.exclusion import ExclusionResult, solve_with_exclusion
from coopml.contracts.first_moment import (
    ContractError,
    kkt_residual,
    least_rent_rewards,
    pooled_contribution,
    solve_contract,
)
from coopml.contracts.learning_curve import (
    LearningCurvePoints,
    default_learner,
    fit_learning_curve,
    measure_learning_curve,
)
from coopml.contracts.outcomes import (
    OutcomeSpace,
    check_prior,
    compositions,
    enumerate_outcomes,
    multinomial_weights,
    n_compositions,
    sample_outcomes,
)
from coopml.contracts.problem import ContractProblem, check_costs
from coopml.contracts.realisation import max_rewards, proportional_rewards
from coopml.contracts.reservation import ReservationResult, reservation_utilities
from coopml.contracts.result import ContractResult, VerificationReport
from coopml.contracts.simulation import DegradedModel, SimulationResult, simulate_mechanism
from coopml.contracts.sweep import TwoTypeSweep, two_type_sweep
from coopml.contracts.valuation import CustomValuation, LinearValuation, Valuation
from coopml.contracts.verification import verify_contract

__all__ = [
    "AccuracyCurve",
    "CompleteInformationResult",
    "ContractConfig",
    "ContractConfigError",
    "ContractError",
    "ContractProblem",
    "ContractResult",
    "CustomCurve",
    "CustomValuation",
    "DegradedModel",
    "ExclusionResult",
    "GeneralizationBoundCurve",
    "LearningCurvePoints",
    "LinearValuation",
    "OutcomeSpace",
    "PowerLawCurve",
    "ReservationResult",
    "SimulationResult",
    "TwoTypeSweep",
    "Valuation",
    "VerificationReport",
    "check_costs",
    "check_prior",
    "complete_information",
    "compositions",
    "default_learner",
    "enumerate_outcomes",
    "fit_learning_curve",
    "information_cost",
    "kkt_residual",
    "least_rent_rewards",
    "load_contract_config",
    "max_rewards",
    "measure_learning_curve",
    "multinomial_weights",
    "n_compositions",
    "parse_contract_config",
    "pooled_contribution",
    "proportional_rewards",
    "reservation_utilities",
    "sample_outcomes",
    "simulate_mechanism",
    "solve_config",
    "solve_contract",
    "solve_with_exclusion",
    "two_type_sweep",
    "verify_contract",
]
