r"""The contracting environment of Wang, Wu, Liu & Low, *Paid with Models* (AAAI 2025,
arXiv:2412.11122).

A coordinator publishes a menu of contracts :math:`(m_i, t_i)_{i=1..I}` to :math:`N`
participants (a known number) whose cost types are private and i.i.d. with prior
:math:`p`. A type-:math:`i` participant pays :math:`c_i m` to contribute :math:`m` data
points; option :math:`i` asks for :math:`m_i` and pays a model of expected value
:math:`t_i`. The trained model has accuracy :math:`a(n \cdot m)`, so its value depends
on the random type-count profile :math:`n`. The paper orders types
:math:`c_1 > c_2 > \dots > c_I` (type 1 least efficient); here costs may come in any
order and every result is reported in the order given.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import RandomState, check_int
from coopml.contracts.accuracy import AccuracyCurve, GeneralizationBoundCurve
from coopml.contracts.outcomes import (
    MAX_ENUMERATED,
    OutcomeSpace,
    check_prior,
    enumerate_outcomes,
    n_compositions,
    sample_outcomes,
)
from coopml.contracts.reservation import ReservationResult, reservation_utilities
from coopml.contracts.valuation import LinearValuation, Valuation

__all__ = ["ContractProblem", "check_costs"]

FloatArray = NDArray[np.float64]


def check_costs(costs: ArrayLike) -> FloatArray:
    """Validate per-type marginal costs: a non-empty list of distinct finite numbers > 0.

    Examples
    --------
    >>> check_costs([0.2, 0.1]).tolist()
    [0.2, 0.1]
    """
    try:
        c = np.asarray(costs, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"parameter 'costs' must be a list of numbers; got {costs!r}") from None
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"parameter 'costs' must be a non-empty list; got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c <= 0):
        raise ValueError(f"parameter 'costs' must hold finite numbers > 0; got {c.tolist()}")
    if np.unique(c).size != c.size:
        raise ValueError(
            "parameter 'costs' must hold distinct values (types with equal cost are one "
            f"type: merge their prior mass); got {c.tolist()}"
        )
    return c


class ContractProblem:
    """A contract design problem: participants, private cost types, prior, curve, valuation.

    Immutable once built.

    Parameters
    ----------
    n_participants : int
        The known number ``N`` of participants.
    costs : array-like of shape (I,)
        Distinct marginal costs ``c_i > 0`` of the types, in any order.
    prior : array-like of shape (I,)
        Positive type probabilities (normalised).
    curve : AccuracyCurve, default GeneralizationBoundCurve()
    valuation : Valuation, default LinearValuation(100)

    Examples
    --------
    >>> problem = ContractProblem(10, [0.20, 0.16, 0.12, 0.08, 0.04], [0.2] * 5)
    >>> problem.reservation.utilities.round(2).tolist()
    [6.77, 13.15, 20.75, 30.34, 44.16]
    >>> problem.efficiency_order.tolist()
    [0, 1, 2, 3, 4]
    """

    n_participants: int
    costs: FloatArray
    prior: FloatArray
    curve: AccuracyCurve
    valuation: Valuation

    def __init__(
        self,
        n_participants: int,
        costs: ArrayLike,
        prior: ArrayLike,
        curve: AccuracyCurve | None = None,
        valuation: Valuation | None = None,
    ) -> None:
        curve = GeneralizationBoundCurve() if curve is None else curve
        valuation = LinearValuation() if valuation is None else valuation
        c = check_costs(costs)
        p = check_prior(prior, c.size)
        c.setflags(write=False)
        p.setflags(write=False)
        if not isinstance(curve, AccuracyCurve):
            raise TypeError(
                "parameter 'curve' must be an accuracy curve (callable with a "
                f"derivatives(M) method and a sup); got {curve!r}"
            )
        if not isinstance(valuation, Valuation):
            raise TypeError(
                "parameter 'valuation' must be a valuation (callable with a derivatives(r) "
                f"method); got {valuation!r}"
            )
        values = {
            "n_participants": check_int("n_participants", n_participants, minimum=1),
            "costs": c,
            "prior": p,
            "curve": curve,
            "valuation": valuation,
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ContractProblem is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return (
            f"ContractProblem(n_participants={self.n_participants}, costs={self.costs.tolist()}, "
            f"prior={self.prior.round(6).tolist()}, curve={self.curve!r}, "
            f"valuation={self.valuation!r})"
        )

    @property
    def n_types(self) -> int:
        """Number of types ``I``."""
        return int(self.costs.size)

    @property
    def efficiency_order(self) -> NDArray[np.intp]:
        """Type indices from least efficient (highest cost) to most efficient."""
        return np.argsort(-self.costs, kind="stable")

    @cached_property
    def reservation(self) -> ReservationResult:
        """Training alone: reservation contributions and utilities ``f``."""
        return reservation_utilities(self.costs, self.curve, self.valuation)

    @property
    def n_outcomes(self) -> int:
        """Number of outcomes ``C(N+I-1, I-1)``."""
        return n_compositions(self.n_participants, self.n_types)

    def outcome_space(
        self,
        method: str = "auto",
        n_samples: int = 200_000,
        random_state: RandomState = None,
    ) -> OutcomeSpace:
        """Outcomes to take expectations over.

        ``"exact"`` enumerates every composition; ``"sampled"`` draws ``n_samples``
        multinomial outcomes; ``"auto"`` enumerates up to 20 million outcomes.
        """
        if method not in ("auto", "exact", "sampled"):
            raise ValueError(
                f"parameter 'outcomes' must be one of 'auto', 'exact', 'sampled'; got {method!r}"
            )
        if method == "sampled" or (method == "auto" and self.n_outcomes > MAX_ENUMERATED):
            return sample_outcomes(self.n_participants, self.prior, n_samples, random_state)
        return enumerate_outcomes(self.n_participants, self.prior)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description."""
        return {
            "n_participants": self.n_participants,
            "costs": self.costs.tolist(),
            "prior": self.prior.tolist(),
            "curve": repr(self.curve),
            "valuation": repr(self.valuation),
        }
