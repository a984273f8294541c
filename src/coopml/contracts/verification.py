r"""Verification of a contract menu against every constraint of the program.

A menu :math:`(m_i, t_i)` of Wang, Wu, Liu & Low (AAAI 2025, arXiv:2412.11122) is
implementable when, for the served types,

* IR: :math:`t_i - c_i m_i \ge f_i`;
* IC for every ordered pair: :math:`t_i - c_i m_i \ge t_j - c_i m_j`;
* BC: :math:`t_i \le \bar t_i(m)`;
* the realised rewards of proportional assignment never exceed the trained model and
  average to :math:`t_i`;

and every excluded type prefers training alone to any option (keep-out:
:math:`f_e \ge t_j - c_e m_j`). Every solver in :mod:`coopml.contracts` calls
:func:`verify_contract` on the menu it returns.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.problem import ContractProblem
from coopml.contracts.realisation import max_rewards
from coopml.contracts.result import VerificationReport

__all__ = ["verify_contract"]


def verify_contract(
    problem: ContractProblem,
    contributions: ArrayLike,
    rewards: ArrayLike,
    *,
    served: ArrayLike | None = None,
    space: OutcomeSpace | None = None,
    tol: float = 1e-6,
) -> VerificationReport:
    """Check IR, IC (all pairs), BC, keep-out and realised-reward feasibility.

    Parameters
    ----------
    problem : ContractProblem
    contributions, rewards : array-like of shape (I,)
        The menu, in the order of ``problem.costs``.
    served : array-like of bool, shape (I,), optional
        Served types (default: all). Excluded types must have ``m = t = 0``.
    space : OutcomeSpace, optional
        Outcomes to check BC over (default: every outcome).
    tol : float, default 1e-6
        Absolute tolerance in value units.

    Examples
    --------
    >>> from coopml.contracts import ContractProblem
    >>> problem = ContractProblem(2, [0.02, 0.01], [0.5, 0.5])
    >>> verify_contract(problem, [1000.0, 1000.0], [78.0, 78.0]).passed
    True
    >>> report = verify_contract(problem, [1000.0, 1000.0], [90.0, 90.0])
    >>> report.passed, round(report.bc, 2)
    (False, 8.74)
    """
    c = problem.costs
    f = problem.reservation.utilities
    m = np.asarray(contributions, dtype=np.float64)
    t = np.asarray(rewards, dtype=np.float64)
    s = np.ones(c.size, dtype=bool) if served is None else np.asarray(served, dtype=bool)
    if space is None:
        space = problem.outcome_space("exact")
    u = t - c * m
    ir = float(np.max(f[s] - u[s], initial=0.0))
    # mimic[i, j] = utility of type i taking option j
    mimic = t[None, :] - c[:, None] * m[None, :]
    own = np.where(s, u, f)
    ic = float(np.max((mimic - own[:, None])[:, s], initial=0.0))
    values, tbar = max_rewards(m, space, problem.curve, problem.valuation)
    bc = float(np.max((t - tbar)[s], initial=0.0))
    share = np.divide(t, tbar, out=np.zeros_like(t), where=tbar > 0)
    excess = float(np.max(values) * np.max((share - 1.0)[s], initial=0.0)) if s.any() else 0.0
    realised_mean = ((space.weights * values) @ space.present) * share / space.presence
    gap = float(np.max(np.abs(realised_mean - t)[s & (t > 0)], initial=0.0))
    excluded_paid = float(np.max(np.abs(np.concatenate([m[~s], t[~s]])), initial=0.0))
    nonneg = max(float(np.max(-m, initial=0.0)), float(np.max(-t, initial=0.0)), excluded_paid)
    return VerificationReport(
        ir=ir,
        ic=ic,
        bc=bc,
        realised=max(excess, gap),
        nonnegativity=nonneg,
        tol=tol,
        exact=space.exact,
    )
