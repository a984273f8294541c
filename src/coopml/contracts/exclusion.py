r"""Stage 1: type selection (exclusion of types) with keep-out constraints.

Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) let the coordinator first choose which
types to serve. An excluded type :math:`e` is offered nothing it wants: keep-out
constraints :math:`f_e \ge t_j - c_e m_j` for every offered option :math:`j` make it
train alone, contributing nothing to the collective model. The coordinator picks the
served set with the highest expected accuracy. ``candidates="threshold"`` tries
serving the :math:`k` most efficient types for every :math:`k` (what screening theory
suggests: exclusion starts with the least efficient); ``"all"`` tries every non-empty
subset (``2^I - 1`` programs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml._validation import check_choice
from coopml.contracts.first_moment import ContractError, solve_contract
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult

__all__ = ["ExclusionResult", "solve_with_exclusion"]


@dataclass(frozen=True, kw_only=True)
class ExclusionResult:
    """The best served set and every set tried.

    Attributes
    ----------
    best : ContractResult
        The optimal menu for the best served set.
    tried : list of (tuple of int, float or None)
        Served types (1-based) and the expected accuracy reached (``None`` if the
        program was infeasible).
    """

    best: ContractResult
    tried: list[tuple[tuple[int, ...], float | None]] = field(default_factory=list)

    @property
    def served(self) -> NDArray[np.bool_]:
        """Mask of the served types of the best menu."""
        return self.best.served

    def to_dataframe(self) -> pd.DataFrame:
        """One row per served set tried."""
        return pd.DataFrame(
            {
                "served": [",".join(map(str, s)) for s, _ in self.tried],
                "expected_accuracy": [np.nan if v is None else v for _, v in self.tried],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary."""
        return {
            "best": self.best.to_dict(),
            "tried": [{"served": list(s), "expected_accuracy": v} for s, v in self.tried],
        }


def solve_with_exclusion(
    problem: ContractProblem, candidates: str = "threshold", **solve_kwargs: Any
) -> ExclusionResult:
    """Choose the served types and the menu jointly (stage 1 + stage 2).

    Parameters
    ----------
    problem : ContractProblem
    candidates : {"threshold", "all"}, default "threshold"
    **solve_kwargs
        Passed to :func:`solve_contract` (``formulation``, ``outcomes``, ...).

    Examples
    --------
    >>> problem = ContractProblem(10, [0.5, 0.4, 0.03, 0.02, 0.001], [0.2] * 5)
    >>> res = solve_with_exclusion(problem)
    >>> res.served.tolist(), res.best.verified
    ([True, True, True, True, True], True)
    >>> len(res.tried)
    5
    """
    candidates = check_choice("candidates", candidates, ("threshold", "all"))
    order = problem.efficiency_order  # least efficient first
    I = problem.n_types
    if candidates == "threshold":
        sets = [tuple(sorted(int(i) for i in order[k:])) for k in range(I)]
    else:
        sets = [s for r in range(1, I + 1) for s in combinations(range(I), r)]
    space = problem.outcome_space(solve_kwargs.pop("outcomes", "auto"))
    best: ContractResult | None = None
    tried: list[tuple[tuple[int, ...], float | None]] = []
    for s in sets:
        serve = np.zeros(I, dtype=bool)
        serve[list(s)] = True
        try:
            res = solve_contract(problem, serve=serve, outcomes=space, **solve_kwargs)
        except ContractError:
            tried.append((tuple(i + 1 for i in s), None))
            continue
        tried.append((tuple(i + 1 for i in s), res.expected_accuracy))
        if best is None or res.expected_accuracy > best.expected_accuracy:
            best = res
    if best is None:
        raise ContractError("no served set admits a feasible menu")
    return ExclusionResult(best=best, tried=tried)
