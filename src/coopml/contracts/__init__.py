"""Optimal contracts paid with models (seed 001): Wang, Wu, Liu & Low, *Paid with
Models: Optimal Contract Design for Collaborative Machine Learning*, AAAI 2025
(arXiv:2412.11122)."""

from coopml.contracts.accuracy import (
    AccuracyCurve,
    CustomCurve,
    GeneralizationBoundCurve,
    PowerLawCurve,
)
from coopml.contracts.first_moment import (
    ContractError,
    least_rent_rewards,
    pooled_contribution,
    solve_contract,
)
from coopml.contracts.outcomes import (
    OutcomeSpace,
    compositions,
    enumerate_outcomes,
    multinomial_weights,
    n_compositions,
    sample_outcomes,
)
from coopml.contracts.problem import ContractProblem
from coopml.contracts.realisation import max_rewards, proportional_rewards
from coopml.contracts.reservation import ReservationResult, reservation_utilities
from coopml.contracts.result import ContractResult, VerificationReport
from coopml.contracts.valuation import CustomValuation, LinearValuation, Valuation
from coopml.contracts.verification import verify_contract

__all__ = [
    "AccuracyCurve",
    "ContractError",
    "ContractProblem",
    "ContractResult",
    "CustomCurve",
    "CustomValuation",
    "GeneralizationBoundCurve",
    "LinearValuation",
    "OutcomeSpace",
    "PowerLawCurve",
    "ReservationResult",
    "Valuation",
    "VerificationReport",
    "compositions",
    "enumerate_outcomes",
    "least_rent_rewards",
    "max_rewards",
    "multinomial_weights",
    "n_compositions",
    "pooled_contribution",
    "proportional_rewards",
    "reservation_utilities",
    "sample_outcomes",
    "solve_contract",
    "verify_contract",
]
