r"""The convex first-moment program for optimal contracts paid with models.

Wang, Wu, Liu & Low, *Paid with Models: Optimal Contract Design for Collaborative
Machine Learning* (AAAI 2025, arXiv:2412.11122). Paying with a random model makes the
original screening problem non-convex; the first-moment transformation replaces each
stochastic reward by its expected value :math:`t_i` and a budget constraint, giving

.. math::

    \max_{m \ge 0,\ t \ge 0}\ \Pi(m) = \sum_n P(n)\, a(n\cdot m)
    \quad\text{s.t.}\quad
    \begin{cases}
    t_i - c_i m_i \ge f_i & \text{(IR)}\\
    t_i - c_i m_i \ge t_j - c_i m_j,\ i \ne j & \text{(IC)}\\
    t_i \le \bar t_i(m) = E[v(a(n\cdot m)) \mid n_i \ge 1] & \text{(BC)}
    \end{cases}

With :math:`a` and :math:`v` concave the objective is concave and each BC set is convex
(:math:`\bar t_i` is concave), so this is a convex program; every feasible
:math:`(m, t)` is realised by proportional assignment
(:mod:`coopml.contracts.realisation`).

Two formulations are solved with scipy's ``trust-constr`` (interior point) with exact
gradients and exact Hessians of the objective and of every BC constraint:

* ``"full"`` -- variables :math:`(m, t)`, IR, IC for every ordered pair, BC;
* ``"simplified"`` -- the constraint set implied by the paper's analysis: types ordered
  :math:`c_1 > \dots > c_I`, :math:`m_1 \le \dots \le m_I`, IR of type 1 and local
  downward IC as equalities (so :math:`t` is a linear function of :math:`m`), the other
  IR and all BC as inequalities.

Variables are scaled per type (a contribution by the type's pooled-contract size, a
reward by the value of the best model), which keeps badly scaled cost structures
(costs spanning 500x) well conditioned. The objective does not depend on :math:`t`, so
rewards are not unique; both formulations report the least-rent rewards for the optimal
:math:`m` (the least :math:`t` satisfying IR and all IC, a longest-path computation),
which is exactly the :math:`t` the simplified formulation pins down. Types can be
excluded (``serve``); an excluded type gets no option and keep-out constraints
:math:`f_e \ge t_j - c_e m_j` make it prefer training alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import OptimizeResult, brentq, nnls
from threadpoolctl import threadpool_limits

from coopml._validation import RandomState, check_choice, check_int, check_positive
from coopml.contracts._moments import Moments
from coopml.contracts._program import POLISH_ITER, Program
from coopml.contracts.least_rent import least_rent_rewards
from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult, VerificationReport
from coopml.contracts.verification import verify_contract

__all__ = [
    "ContractError",
    "check_served",
    "least_rent_rewards",
    "pooled_contribution",
    "solve_contract",
]

FloatArray = NDArray[np.float64]
_GRID = np.logspace(-3, 12, 1501)
BINDING_TOL = 1e-5
POOLING_REL = 1e-2
KKT_TOL = 1e-7
COARSE_OUTCOMES = 50_000


class ContractError(RuntimeError):
    """The program is infeasible, or the solver returned a menu that fails verification."""


def check_served(serve: ArrayLike | None, n_types: int) -> NDArray[np.bool_]:
    """Validate a served-types mask (default: serve everyone)."""
    if serve is None:
        return np.ones(n_types, dtype=bool)
    s = np.asarray(serve)
    if s.shape != (n_types,) or s.dtype != bool:
        raise ValueError(
            f"parameter 'serve' must be {n_types} booleans (one per type); got {serve!r}"
        )
    if not s.any():
        raise ValueError("parameter 'serve' must serve at least one type; got none")
    return s.copy()


def pooled_contribution(problem: ContractProblem, cost: float, reservation: float) -> float:
    """Largest ``m`` with ``v(a(N m)) - cost * m >= reservation``: the pooled contract a
    type would accept if all ``N`` participants contributed ``m`` (0 if none).

    Examples
    --------
    >>> problem = ContractProblem(10, [0.2, 0.04], [0.5, 0.5])
    >>> round(pooled_contribution(problem, 0.2, problem.reservation.utilities[0]), 1)
    398.5
    """
    N = problem.n_participants
    h = problem.valuation(problem.curve(N * _GRID)) - cost * _GRID - reservation
    pos = np.flatnonzero(h > 0)
    if pos.size == 0:
        return 0.0
    j = int(pos[-1])
    if j == _GRID.size - 1:
        raise ContractError(
            f"contributions are unbounded: v(a(N m)) - {cost} m keeps growing; the accuracy "
            "curve must be bounded"
        )

    def gap(m: float) -> float:
        return float(problem.valuation(problem.curve(N * m)) - cost * m - reservation)

    return float(brentq(gap, _GRID[j], _GRID[j + 1], xtol=1e-12, rtol=1e-14))


def _scales(
    problem: ContractProblem, served: NDArray[np.bool_]
) -> tuple[FloatArray, float, FloatArray]:
    f = problem.reservation.utilities
    c = problem.costs
    sigma = np.ones(c.size)
    pooled = np.zeros(c.size)
    for i in np.flatnonzero(served):
        pooled[i] = pooled_contribution(problem, float(c[i]), float(f[i]))
        sigma[i] = pooled[i] if pooled[i] > 0 else max(problem.reservation.contributions[i], 1.0)
    sup = problem.curve.sup
    top = float(problem.valuation(sup)) if np.isfinite(sup) else np.nan
    if not np.isfinite(top) or top <= 0:
        top = float(problem.valuation(problem.curve(problem.n_participants * sigma.max())))
    return sigma, max(top, 1e-12), pooled


def solve_contract(
    problem: ContractProblem,
    *,
    formulation: str = "full",
    serve: ArrayLike | None = None,
    outcomes: str | OutcomeSpace = "auto",
    n_samples: int = 200_000,
    random_state: RandomState = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    check: bool = True,
) -> ContractResult:
    """Solve the first-moment program for the optimal menu of contracts.

    Parameters
    ----------
    problem : ContractProblem
    formulation : {"full", "simplified"}, default "full"
        All IR/IC/BC constraints over ``(m, t)``, or the paper's reduced constraint set
        over ``m`` (see the module docstring).
    serve : array-like of bool, shape (I,), optional
        Which types get an option (default all); the others are kept out.
    outcomes : {"auto", "exact", "sampled"} or OutcomeSpace, default "auto"
        Outcomes to take expectations over (``"auto"`` enumerates up to 20 million).
    n_samples : int, default 200000
        Draws for ``outcomes="sampled"``.
    random_state : int, Generator or None
        Seed for sampled outcomes.
    tol : float, default 1e-6
        Verification tolerance (absolute, value units).
    max_iter : int, default 2000
        Iteration cap of ``trust-constr``.
    check : bool, default True
        Raise :class:`ContractError` if the menu fails verification; otherwise return it
        with ``verified == False``.

    Returns
    -------
    ContractResult

    Examples
    --------
    >>> problem = ContractProblem(10, [0.02, 0.01], [0.5, 0.5])
    >>> res = solve_contract(problem)
    >>> res.contributions.round(1).tolist(), res.verified
    ([1915.8, 1917.9], True)
    """
    if not isinstance(problem, ContractProblem):
        raise TypeError(f"parameter 'problem' must be a ContractProblem; got {problem!r}")
    formulation = check_choice("formulation", formulation, ("full", "simplified"))
    served = check_served(serve, problem.n_types)
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if isinstance(outcomes, OutcomeSpace):
        if outcomes.n_types != problem.n_types:
            raise ValueError(
                f"parameter 'outcomes' must have {problem.n_types} types; got {outcomes.n_types}"
            )
        space = outcomes
    else:
        space = problem.outcome_space(outcomes, n_samples=n_samples, random_state=random_state)
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        # scipy's small pivoted QR factorisations inside trust-constr are orders of
        # magnitude slower with multithreaded OpenBLAS on few cores.
        solved = _solve(problem, space, served, formulation, max_iter, tol)
    res, report = solved.res, solved.report
    seconds = time.perf_counter() - start
    if not report.passed and res.constr_violation > 1e-6:
        raise ContractError(
            "no menu satisfies IR, IC and BC for the served types "
            f"{(np.flatnonzero(served) + 1).tolist()} (constraint violation "
            f"{res.constr_violation:.2e} after {res.nit} iterations); the program looks "
            "infeasible -- try excluding the least efficient types (solve_with_exclusion)"
        )
    if check and not report.passed:
        raise ContractError(
            f"the solver's menu fails verification (largest violation "
            f"{report.max_violation:.2e} > tol {tol:g}; {report.to_dict()}); status: {res.message}"
        )
    return _result(problem, space, served, formulation, solved, seconds)


@dataclass(frozen=True)
class _Solved:
    """The search's answer: contributions, the solver's result, the KKT residual, the
    moments on every outcome and the verification report."""

    m: FloatArray
    res: Any
    kkt: float
    moments: Moments
    report: VerificationReport


@dataclass
class _Candidate:
    m: FloatArray
    res: Any
    program: Program


class _Search:
    """Interior point, active-set polishes, one pooling round; keeps the best verified
    menu and stops as soon as one is certified optimal by :func:`kkt_residual`."""

    def __init__(
        self,
        problem: ContractProblem,
        served: NDArray[np.bool_],
        sigma: FloatArray,
        tau: float,
        pooled: FloatArray,
        full: bool,
        max_iter: int,
        tol: float,
    ) -> None:
        self.problem, self.served, self.sigma, self.tau = problem, served, sigma, tau
        self.pooled, self.full, self.max_iter, self.tol = pooled, full, max_iter, tol
        self.best: _Candidate | None = None
        self.kkt = np.inf
        self.value = -np.inf
        self.report: VerificationReport

    def consider(self, cand: _Candidate, moments: Moments, space: OutcomeSpace) -> bool:
        """Keep ``cand`` if it verifies and beats the incumbent; True once certified."""
        p, served = self.problem, self.served
        m = np.where(served, np.maximum(cand.m, 0.0), 0.0)
        t = least_rent_rewards(m, p.costs, p.reservation.utilities, served)
        report = verify_contract(p, m, t, served=served, space=space, tol=self.tol)
        if report.passed or self.best is None:
            value = moments.at(m).value
            if (
                self.best is None
                or (report.passed and not self.report.passed)
                or (report.passed and value > self.value)
            ):
                cand.m = m
                self.best, self.value, self.report = cand, value, report
                self.kkt = kkt_residual(p, moments, m, t, served, self.sigma, self.tau)
        return bool(self.report.passed and self.kkt <= KKT_TOL)

    def run(self, moments: Moments, space: OutcomeSpace) -> _Candidate:
        groups = [[int(i)] for i in self.problem.efficiency_order if self.served[i]]
        if np.all(self.problem.reservation.utilities[self.served] == 0):
            # nobody gains by training alone: the empty menu is feasible, a fallback
            program = Program(
                self.problem, moments, groups, self.served, self.sigma, self.tau, self.full
            )
            trivial = OptimizeResult(
                x=np.zeros(program.nx),
                success=False,
                message="empty menu",
                nit=0,
                constr_violation=0.0,
            )
            self.consider(
                _Candidate(np.zeros(self.problem.n_types), trivial, program), moments, space
            )
        for attempt in range(2):
            program = Program(
                self.problem, moments, groups, self.served, self.sigma, self.tau, self.full
            )
            for m, res in program.candidates(self.pooled, self.max_iter):
                if self.consider(_Candidate(m, res, program), moments, space):
                    break
            assert self.best is not None
            # Interior points approach weakly active pooling constraints slowly: re-solve
            # once with near-equal neighbours pooled.
            new_groups = _pooling_groups(
                self.best.m, self.problem.efficiency_order, self.served, POOLING_REL
            )
            if self.kkt <= KKT_TOL or attempt or len(new_groups) == len(groups):
                break
            groups = new_groups
        assert self.best is not None
        return self.best

    def refine(self, moments: Moments, space: OutcomeSpace, rough: _Candidate) -> None:
        """Polish a coarse solution's active set on ``moments`` (every outcome)."""
        program = Program(
            self.problem,
            moments,
            rough.program.groups,
            self.served,
            self.sigma,
            self.tau,
            self.full,
        )
        x = program.canonical(rough.res.x)
        for eps in program.active_thresholds(x):
            try:
                res = program.polish(x, min(self.max_iter, POLISH_ITER), eps)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if self.consider(_Candidate(program.m_of(res.x), res, program), moments, space):
                return


def kkt_residual(
    problem: ContractProblem,
    moments: Moments,
    contributions: FloatArray,
    rewards: FloatArray,
    served: NDArray[np.bool_],
    sigma: FloatArray,
    tau: float,
    active_tol: float = 1e-9,
) -> float:
    """Relative residual of the KKT stationarity condition of the full program at
    ``(m, t)``: ``min_{lambda >= 0} ||grad(-Pi) - sum_k lambda_k grad g_k|| / ||grad Pi||``
    over the constraints ``g_k >= 0`` active to ``active_tol`` (scaled units). The
    program is convex, so a feasible point with residual ~0 is a global optimum.
    """
    c, f = problem.costs, problem.reservation.utilities
    idx = np.flatnonzero(served)
    k = idx.size
    s = sigma[idx]
    mom = moments.at(contributions)
    m, t = contributions[idx], rewards[idx]
    cols: list[FloatArray] = []

    def add(value: float, grad_m: FloatArray, grad_t: FloatArray) -> None:
        if value <= active_tol:
            cols.append(np.concatenate([grad_m * s / tau, grad_t]))

    eye = np.eye(k)
    for a, i in enumerate(idx):
        add((t[a] - c[i] * m[a] - f[i]) / tau, -c[i] * eye[a], eye[a])
        add((mom.tbar[i] - t[a]) / tau, mom.jac[i, idx], -eye[a])
        add(m[a] / s[a], eye[a] * tau / s[a], np.zeros(k))
        add(t[a] / tau, np.zeros(k), eye[a])
        for b in range(k):
            if a != b:
                value = (t[a] - c[i] * m[a] - t[b] + c[i] * m[b]) / tau
                add(value, -c[i] * (eye[a] - eye[b]), eye[a] - eye[b])
    for e in np.flatnonzero(~served):
        for b in range(k):
            add((f[e] - t[b] + c[e] * m[b]) / tau, c[e] * eye[b], -eye[b])
    grad = np.concatenate([-mom.grad[idx] * s, np.zeros(k)])
    norm = float(np.linalg.norm(grad))
    if norm < 1e-300:  # flat (clipped) region of the curve: no certificate
        return float("inf")
    if not cols:
        return float(np.linalg.norm(grad)) / max(norm, 1e-300)
    _, residual = nnls(np.array(cols).T, grad)
    return float(residual) / max(norm, 1e-300)


def _solve(
    problem: ContractProblem,
    space: OutcomeSpace,
    served: NDArray[np.bool_],
    formulation: str,
    max_iter: int,
    tol: float,
) -> _Solved:
    moments = Moments(space, problem.curve, problem.valuation)
    sigma, tau, pooled = _scales(problem, served)
    full = formulation == "full"
    search = _Search(problem, served, sigma, tau, pooled, full, max_iter, tol)
    if space.n_outcomes > COARSE_OUTCOMES:
        # Coarse to fine: solve on sampled outcomes, then Newton-polish the coarse
        # active set on every outcome (a fresh search: candidates verified on the sample
        # do not count); fall back to the full search if not certified.
        coarse = problem.outcome_space("sampled", n_samples=COARSE_OUTCOMES, random_state=0)
        rough = search.run(Moments(coarse, problem.curve, problem.valuation), coarse)
        search = _Search(problem, served, sigma, tau, pooled, full, max_iter, tol)
        search.refine(moments, space, rough)
    if search.best is None or search.kkt > KKT_TOL:
        search.run(moments, space)
    assert search.best is not None
    return _Solved(search.best.m, search.best.res, search.kkt, moments, search.report)


def _result(
    problem: ContractProblem,
    space: OutcomeSpace,
    served: NDArray[np.bool_],
    formulation: str,
    solved: _Solved,
    seconds: float,
) -> ContractResult:
    c = problem.costs
    f = problem.reservation.utilities
    m, res, kkt, moments, report = solved.m, solved.res, solved.kkt, solved.moments, solved.report
    t = least_rent_rewards(m, c, f, served)
    mom = moments.at(m)
    tbar = mom.tbar
    u = np.where(served, t - c * m, f)
    value = space.expectation(mom.model_value)
    se_value, se_tbar = space.stderr(mom.model_value)
    se_acc = 0.0 if space.exact else space.stderr(problem.curve(space.counts @ m))[0]
    return ContractResult(
        costs=c,
        prior=problem.prior,
        n_participants=problem.n_participants,
        contributions=m,
        rewards=t,
        utilities=u,
        reservation_utilities=f,
        reservation_contributions=problem.reservation.contributions,
        max_rewards=np.where(served, tbar, 0.0),
        served=served,
        expected_model_value=value,
        expected_accuracy=mom.value,
        binding=_binding(c, f, m, t, tbar, served),
        formulation=formulation,
        converged=bool(res.success),
        verification=report,
        stderr={
            "expected_model_value": se_value,
            "expected_accuracy": se_acc,
            "max_rewards": se_tbar,
        },
        info={
            "status": str(res.message),
            "iterations": int(res.nit),
            "seconds": seconds,
            "evaluations": moments.n_evaluations,
            "outcomes": "exact" if space.exact else "sampled",
            "n_outcomes": space.n_outcomes,
            "n_samples": space.n_samples,
            "constraint_violation": float(res.constr_violation),
            "kkt_residual": kkt,
            "optimal": bool(kkt <= KKT_TOL),
        },
    )


def _binding(
    c: FloatArray,
    f: FloatArray,
    m: FloatArray,
    t: FloatArray,
    tbar: FloatArray,
    served: NDArray[np.bool_],
) -> dict[str, list[str]]:
    scale = max(1.0, float(np.max(np.abs(t))))
    eps = BINDING_TOL * scale
    idx = np.flatnonzero(served)
    u = t - c * m
    out: dict[str, list[str]] = {"IR": [], "IC": [], "BC": [], "keep_out": []}
    for i in idx:
        if u[i] - f[i] <= eps:
            out["IR"].append(str(i + 1))
        if tbar[i] - t[i] <= eps:
            out["BC"].append(str(i + 1))
        for j in idx:
            if i != j and u[i] - (t[j] - c[i] * m[j]) <= eps:
                out["IC"].append(f"{i + 1}>{j + 1}")
    for e in np.flatnonzero(~served):
        for j in idx:
            if f[e] - (t[j] - c[e] * m[j]) <= eps:
                out["keep_out"].append(f"{e + 1}>{j + 1}")
    return out


def _pooling_groups(
    m: FloatArray, order: NDArray[np.intp], served: NDArray[np.bool_], rel: float
) -> list[list[int]]:
    """Adjacent served types (in efficiency order) whose contributions differ by < rel."""
    groups: list[list[int]] = []
    for i in (int(j) for j in order if served[j]):
        if groups and abs(m[i] - m[groups[-1][-1]]) <= rel * max(m[i], m[groups[-1][-1]], 1e-12):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
