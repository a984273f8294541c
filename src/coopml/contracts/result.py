"""Result objects of the contract solvers (frozen, JSON-serialisable, tabular)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml._serialization import to_jsonable

__all__ = ["ContractResult", "VerificationReport"]

FloatArray = NDArray[np.float64]


def _frozen(x: Any) -> FloatArray:
    arr = np.array(x, dtype=np.float64)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, kw_only=True)
class VerificationReport:
    """Largest violation of each constraint family of a contract menu (0 when satisfied).

    Attributes
    ----------
    ir, ic, bc : float
        Individual rationality ``f_i - u_i``, incentive compatibility over every ordered
        pair ``(t_j - c_i m_j) - u_i``, budget ``t_i - tbar_i`` (served types); keep-out
        constraints of excluded types count as IC.
    realised : float
        Feasibility of the realised rewards: the largest excess of a realised model
        value over the trained model's value, over every outcome, and the largest gap
        between a type's conditional mean realised value and ``t_i``.
    nonnegativity : float
        Largest negative part of ``m`` and ``t``.
    tol : float
        Tolerance the report was judged at.
    exact : bool
        Whether the check enumerated every outcome (otherwise: the sampled outcomes).
    """

    ir: float
    ic: float
    bc: float
    realised: float
    nonnegativity: float
    tol: float
    exact: bool

    @property
    def max_violation(self) -> float:
        """The largest violation over all families."""
        return max(self.ir, self.ic, self.bc, self.realised, self.nonnegativity)

    @property
    def passed(self) -> bool:
        """Whether every constraint holds to ``tol``."""
        return self.max_violation <= self.tol

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return {
            "ir": self.ir,
            "ic": self.ic,
            "bc": self.bc,
            "realised": self.realised,
            "nonnegativity": self.nonnegativity,
            "tol": self.tol,
            "exact": self.exact,
            "passed": self.passed,
        }


@dataclass(frozen=True, kw_only=True)
class ContractResult:
    """An optimal menu of contracts paid with models, in the order of the given costs.

    Attributes
    ----------
    costs, prior : ndarray of shape (I,)
    contributions : ndarray of shape (I,)
        ``m_i`` (0 for excluded types).
    rewards : ndarray of shape (I,)
        ``t_i``, the expected value of the model type ``i`` receives.
    utilities : ndarray of shape (I,)
        ``u_i = t_i - c_i m_i`` (``f_i`` for excluded types, who train alone).
    reservation_utilities, reservation_contributions : ndarray of shape (I,)
        Training alone: ``f_i`` and the contribution that attains it.
    max_rewards : ndarray of shape (I,)
        ``tbar_i(m) = E[v(a(n.m)) | n_i >= 1]``, the most a type can be paid in
        expectation (the budget constraint).
    served : ndarray of bool, shape (I,)
    expected_model_value : float
        ``E[v(a(n.m))]``, the value of the collectively trained model.
    expected_accuracy : float
        ``Pi(m) = E[a(n.m)]``, the coordinator's objective.
    binding : dict of str -> list of str
        Binding constraints (``IR``, ``IC``, ``BC``, ``monotone``), 1-based type labels,
        ``"2>1"`` meaning type 2 is indifferent to option 1.
    formulation : {"full", "simplified"}
    converged : bool
        The solver's own convergence flag.
    verification : VerificationReport
    stderr : dict
        Monte Carlo standard errors of ``expected_model_value`` and ``max_rewards``
        (zeros on an exact outcome space).
    info : mapping
        Solver details: status, iterations, seconds, outcomes, evaluations.
    """

    costs: FloatArray
    prior: FloatArray
    n_participants: int
    contributions: FloatArray
    rewards: FloatArray
    utilities: FloatArray
    reservation_utilities: FloatArray
    reservation_contributions: FloatArray
    max_rewards: FloatArray
    served: NDArray[np.bool_]
    expected_model_value: float
    expected_accuracy: float
    binding: Mapping[str, list[str]]
    formulation: str
    converged: bool
    verification: VerificationReport
    stderr: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "costs",
            "prior",
            "contributions",
            "rewards",
            "utilities",
            "reservation_utilities",
            "reservation_contributions",
            "max_rewards",
        ):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        served = np.array(self.served, dtype=bool)
        served.setflags(write=False)
        object.__setattr__(self, "served", served)

    @property
    def verified(self) -> bool:
        """Whether every constraint was verified to the tolerance."""
        return self.verification.passed

    @property
    def information_rents(self) -> FloatArray:
        """``u_i - f_i >= 0``: what each type earns beyond training alone."""
        return _frozen(self.utilities - self.reservation_utilities)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per type: cost, prior, m, t, u, f, rent, tbar, served."""
        return pd.DataFrame(
            {
                "type": np.arange(1, self.costs.size + 1),
                "cost": self.costs,
                "prior": self.prior,
                "contribution": self.contributions,
                "reward": self.rewards,
                "utility": self.utilities,
                "reservation_utility": self.reservation_utilities,
                "information_rent": self.information_rents,
                "max_reward": self.max_rewards,
                "served": self.served,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (the keys of ``coopml contract solve --json``)."""
        return {
            "n_participants": self.n_participants,
            "costs": self.costs.tolist(),
            "prior": self.prior.tolist(),
            "contributions": self.contributions.tolist(),
            "rewards": self.rewards.tolist(),
            "utilities": self.utilities.tolist(),
            "reservation_utilities": self.reservation_utilities.tolist(),
            "reservation_contributions": self.reservation_contributions.tolist(),
            "max_rewards": self.max_rewards.tolist(),
            "information_rents": self.information_rents.tolist(),
            "served": self.served.tolist(),
            "expected_model_value": self.expected_model_value,
            "expected_accuracy": self.expected_accuracy,
            "binding": {k: list(v) for k, v in self.binding.items()},
            "formulation": self.formulation,
            "converged": bool(self.converged),
            "verified": bool(self.verified),
            "verification": self.verification.to_dict(),
            "stderr": to_jsonable(dict(self.stderr)),
            "info": to_jsonable(dict(self.info)),
        }
