r"""The complete-information benchmark (first best), information cost and rents.

Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) compare the optimal menu with the
coordinator's first best when types are observed. In outcome :math:`n` everyone present
receives the full trained model and is held to its reservation utility:

.. math:: m_i(n) = \frac{v(a(S(n))) - f_i}{c_i},\qquad S(n) = \sum_i n_i m_i(n),

a fixed point in the total contribution :math:`S`; the coordinator, who maximises
accuracy, picks the largest. Averaging over outcomes gives the benchmark's expected
model value; the **information cost** is
:math:`E\,v(a(n\cdot m^*)) - E\,v(a(S(n)))` (what private information costs the
collective; the paper finds it :math:`\le 0`) and the **information rents** are
:math:`u_i - f_i \ge 0`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import elementwise

from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult

__all__ = ["CompleteInformationResult", "complete_information", "information_cost"]

FloatArray = NDArray[np.float64]
_U = np.logspace(-9.0, 0.0, 181)


@dataclass(frozen=True, kw_only=True)
class CompleteInformationResult:
    """The first-best benchmark.

    Attributes
    ----------
    expected_model_value : float
        ``E[v(a(S(n)))]``.
    expected_accuracy : float
        ``E[a(S(n))]``.
    contributions : ndarray of shape (I,)
        ``E[m_i(n) | n_i >= 1]``, the average first-best contribution of each type.
    utilities : ndarray of shape (I,)
        ``f_i`` (IR binds for everyone in the first best).
    total_contributions, model_values : ndarray of shape (K,)
        ``S(n)`` and ``v(a(S(n)))`` per outcome of the space.
    """

    expected_model_value: float
    expected_accuracy: float
    contributions: FloatArray
    utilities: FloatArray
    total_contributions: FloatArray
    model_values: FloatArray

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (per-outcome arrays left out)."""
        return {
            "expected_model_value": self.expected_model_value,
            "expected_accuracy": self.expected_accuracy,
            "contributions": self.contributions.tolist(),
            "utilities": self.utilities.tolist(),
        }


def complete_information(
    problem: ContractProblem, space: OutcomeSpace | None = None
) -> CompleteInformationResult:
    """Solve the first-best fixed point in every outcome (vectorised root finding).

    Parameters
    ----------
    problem : ContractProblem
    space : OutcomeSpace, optional
        Default: every outcome.

    Examples
    --------
    >>> problem = ContractProblem(10, [0.02, 0.01], [0.5, 0.5])
    >>> bench = complete_information(problem)
    >>> round(bench.expected_model_value, 2), bench.contributions.round(1).tolist()
    (94.33, [1953.7, 3017.0])
    """
    space = problem.outcome_space("exact") if space is None else space
    c = problem.costs
    f = problem.reservation.utilities
    curve, val = problem.curve, problem.valuation
    n = space.counts
    A = n @ (1.0 / c)
    B = n @ (f / c)
    top = float(val(curve.sup)) if np.isfinite(curve.sup) else np.nan
    if not np.isfinite(top):
        top = float(val(curve(1e12)))
    hi = np.maximum(A * top - B, 0.0) + 1.0  # g(S) = A v(a(S)) - B - S < 0 beyond hi

    def gap(S: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
        return np.asarray(a * val(curve(S)) - b - S, dtype=np.float64)

    S = np.zeros(n.shape[0])
    for start in range(0, n.shape[0], 4096):
        sl = slice(start, start + 4096)
        grid = hi[sl, None] * _U[None, :]
        gA = A[sl]
        gB = B[sl]
        vals = gap(grid, gA[:, None], gB[:, None])
        ok = vals >= 0
        has = ok.any(axis=1)
        last = np.where(has, _U.size - 1 - np.argmax(ok[:, ::-1], axis=1), 0)
        rows = np.flatnonzero(has)
        # g(lo) >= 0 > g(hi): the largest root lies in [lo, hi] (Chandrupatla's method)
        lo_s = grid[rows, last[rows]]
        hi_s = grid[rows, np.minimum(last[rows] + 1, _U.size - 1)]
        root = elementwise.find_root(gap, (lo_s, hi_s), args=(gA[rows], gB[rows]))
        if not np.all(root.success):
            raise RuntimeError(f"first-best fixed point: root finding failed ({root.status})")
        S[start + rows] = root.x
    values = np.asarray(val(curve(S)), dtype=np.float64)
    m_n = np.maximum(values[:, None] - f[None, :], 0.0) / c[None, :]
    contributions = np.array(
        [space.conditional_expectations(m_n[:, i])[i] for i in range(problem.n_types)]
    )
    return CompleteInformationResult(
        expected_model_value=space.expectation(values),
        expected_accuracy=space.expectation(curve(S)),
        contributions=contributions,
        utilities=f.copy(),
        total_contributions=S,
        model_values=values,
    )


def information_cost(contract: ContractResult, benchmark: CompleteInformationResult) -> float:
    """``E v(a(n.m*))`` under the optimal menu minus the first best's (``<= 0``).

    Examples
    --------
    >>> from coopml.contracts import solve_contract
    >>> problem = ContractProblem(10, [0.02, 0.01], [0.5, 0.5])
    >>> cost = information_cost(solve_contract(problem), complete_information(problem))
    >>> round(cost, 3)
    -0.737
    """
    return float(contract.expected_model_value - benchmark.expected_model_value)
