r"""Two-type surfaces over the number of participants and the prior.

The two-type experiment of Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) solves the
program on a grid of :math:`(N, p_1)` and plots contributions, rewards and utilities as
surfaces; pooling (:math:`m_1 = m_2`) appears when :math:`p_1` is large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml.contracts.accuracy import AccuracyCurve, GeneralizationBoundCurve
from coopml.contracts.first_moment import solve_contract
from coopml.contracts.problem import ContractProblem
from coopml.contracts.valuation import LinearValuation, Valuation

__all__ = ["TwoTypeSweep", "two_type_sweep"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class TwoTypeSweep:
    """Optimal two-type menus on a grid; arrays of shape (len(n_values), len(p1_values), 2)."""

    costs: FloatArray
    n_values: NDArray[np.int64]
    p1_values: FloatArray
    contributions: FloatArray
    rewards: FloatArray
    utilities: FloatArray
    expected_model_value: FloatArray  # shape (len(n_values), len(p1_values))
    verified: NDArray[np.bool_]

    def to_dataframe(self) -> pd.DataFrame:
        """One row per grid point."""
        N, P = np.meshgrid(self.n_values, self.p1_values, indexing="ij")
        return pd.DataFrame(
            {
                "n_participants": N.ravel(),
                "p1": P.ravel(),
                "m1": self.contributions[..., 0].ravel(),
                "m2": self.contributions[..., 1].ravel(),
                "t1": self.rewards[..., 0].ravel(),
                "t2": self.rewards[..., 1].ravel(),
                "u1": self.utilities[..., 0].ravel(),
                "u2": self.utilities[..., 1].ravel(),
                "expected_model_value": self.expected_model_value.ravel(),
                "verified": self.verified.ravel(),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (rows of :meth:`to_dataframe`)."""
        return {
            "costs": self.costs.tolist(),
            "rows": self.to_dataframe().to_dict(orient="records"),
        }


def two_type_sweep(
    costs: ArrayLike,
    n_values: ArrayLike,
    p1_values: ArrayLike,
    curve: AccuracyCurve | None = None,
    valuation: Valuation | None = None,
) -> TwoTypeSweep:
    """Solve the two-type program on every ``(N, p_1)`` of a grid.

    Examples
    --------
    >>> sweep = two_type_sweep([0.02, 0.01], [4, 10], [0.5, 0.9])
    >>> sweep.contributions.shape, bool(sweep.verified.all())
    ((2, 2, 2), True)
    >>> sweep.contributions[1, 0].round(1).tolist()
    [1915.8, 1917.9]
    """
    c = np.asarray(costs, dtype=np.float64)
    if c.shape != (2,):
        raise ValueError(f"parameter 'costs' must hold two costs; got {np.asarray(costs).tolist()}")
    ns = np.asarray(n_values, dtype=np.int64)
    ps = np.asarray(p1_values, dtype=np.float64)
    if ps.ndim != 1 or np.any((ps <= 0) | (ps >= 1)):
        raise ValueError(f"parameter 'p1_values' must lie in (0, 1); got {ps.tolist()}")
    gb: AccuracyCurve = GeneralizationBoundCurve() if curve is None else curve
    val: Valuation = LinearValuation() if valuation is None else valuation
    shape = (ns.size, ps.size)
    m, t, u = (np.zeros((*shape, 2)) for _ in range(3))
    value = np.zeros(shape)
    ok = np.zeros(shape, dtype=bool)
    for a, N in enumerate(ns):
        for b, p1 in enumerate(ps):
            problem = ContractProblem(int(N), c, [p1, 1.0 - p1], curve=gb, valuation=val)
            res = solve_contract(problem, check=False)
            m[a, b], t[a, b], u[a, b] = res.contributions, res.rewards, res.utilities
            value[a, b], ok[a, b] = res.expected_model_value, res.verified
    return TwoTypeSweep(
        costs=c,
        n_values=ns,
        p1_values=ps,
        contributions=m,
        rewards=t,
        utilities=u,
        expected_model_value=value,
        verified=ok,
    )
