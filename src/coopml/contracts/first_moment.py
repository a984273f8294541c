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
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import (
    Bounds,
    LinearConstraint,
    NonlinearConstraint,
    OptimizeResult,
    brentq,
    minimize,
    nnls,
    root,
)
from threadpoolctl import threadpool_limits

from coopml._validation import RandomState, check_choice, check_int, check_positive
from coopml.contracts._moments import Moments
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
MAX_POLISHES = 5
POLISH_ITER = 100
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


def least_rent_rewards(
    contributions: ArrayLike,
    costs: ArrayLike,
    reservation: ArrayLike,
    served: ArrayLike | None = None,
) -> FloatArray:
    """The least rewards ``t`` that make ``m`` individually rational and incentive
    compatible: ``t_i >= f_i + c_i m_i`` and ``t_i >= t_j + c_i (m_i - m_j)`` (served
    ``i, j``), solved as longest paths (Bellman-Ford). Excluded types get 0.

    Examples
    --------
    >>> least_rent_rewards([100.0, 200.0], [0.2, 0.1], [5.0, 10.0]).tolist()
    [25.0, 35.0]
    """
    m = np.asarray(contributions, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    f = np.asarray(reservation, dtype=np.float64)
    s = np.ones(c.size, dtype=bool) if served is None else np.asarray(served, dtype=bool)
    idx = np.flatnonzero(s)
    ms, cs = m[idx], c[idx]
    t = f[idx] + cs * ms
    gain = cs[:, None] * (ms[:, None] - ms[None, :])  # gain[i, j] = c_i (m_i - m_j)
    for _ in range(idx.size):
        new = np.maximum(t, np.max(t[None, :] + gain, axis=1))
        if np.array_equal(new, t):
            break
        t = new
    out = np.zeros(c.size)
    out[idx] = t
    return out


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
        m, res, kkt, moments, report = _solve(problem, space, served, formulation, max_iter, tol)
    t = least_rent_rewards(m, problem.costs, problem.reservation.utilities, served)
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
    return _result(problem, space, moments, m, t, served, formulation, res, report, seconds, kkt)


@dataclass
class _Candidate:
    m: FloatArray
    res: Any
    program: _Program


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
            program = _Program(
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
            program = _Program(
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
        program = _Program(
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
) -> tuple[FloatArray, Any, float, Moments, VerificationReport]:
    moments = Moments(space, problem.curve, problem.valuation)
    sigma, tau, pooled = _scales(problem, served)
    search = _Search(problem, served, sigma, tau, pooled, formulation == "full", max_iter, tol)
    if space.n_outcomes > COARSE_OUTCOMES:
        # Coarse to fine: solve on sampled outcomes, then Newton-polish the coarse
        # active set on every outcome; fall back to the full search if not certified.
        coarse = problem.outcome_space("sampled", n_samples=COARSE_OUTCOMES, random_state=0)
        rough = search.run(Moments(coarse, problem.curve, problem.valuation), coarse)
        search.best, search.value, search.kkt = None, -np.inf, np.inf
        search.refine(moments, space, rough)
    if search.best is None or search.kkt > KKT_TOL:
        search.run(moments, space)
    assert search.best is not None
    return search.best.m, search.best.res, search.kkt, moments, search.report


def _result(
    problem: ContractProblem,
    space: OutcomeSpace,
    moments: Moments,
    m: FloatArray,
    t: FloatArray,
    served: NDArray[np.bool_],
    formulation: str,
    res: Any,
    report: Any,
    seconds: float,
    kkt: float,
) -> ContractResult:
    c = problem.costs
    f = problem.reservation.utilities
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


def _weight(grad: FloatArray) -> float:
    """Objective scale that makes the starting gradient O(1) (1 if it vanishes)."""
    top = float(np.max(np.abs(grad)))
    return 1.0 / top if top > 1e-300 else 1.0


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


class _Program:
    """One formulation over groups of types sharing an option (singletons: no pooling).

    Scaled variables: ``y_g = m_g / sigma_g`` (and, for the full formulation,
    ``z_g = t_g / tau``); ``m = G y`` with ``G[i, g] = sigma_g`` for ``i`` in group ``g``.
    """

    def __init__(
        self,
        problem: ContractProblem,
        moments: Moments,
        groups: list[list[int]],
        served: NDArray[np.bool_],
        sigma: FloatArray,
        tau: float,
        full: bool,
    ) -> None:
        self.problem, self.moments, self.groups, self.tau, self.full = (
            problem,
            moments,
            groups,
            tau,
            full,
        )
        I, k = problem.n_types, len(groups)
        self.k = k
        self.sg = np.array([sigma[g].mean() for g in groups])
        self.G = np.zeros((I, k))
        for a, g in enumerate(groups):
            self.G[g, a] = self.sg[a]
        self.types = np.array([i for g in groups for i in g], dtype=np.intp)  # served, ordered
        self.nx = 2 * k if full else k
        c, f = problem.costs, problem.reservation.utilities
        self.owner = {i: a for a, g in enumerate(groups) for i in g}
        if not full:  # t / tau = B y + b0 (IR of the least efficient type, local downward IC)
            n = self.types.size
            chain = np.zeros((n, I))
            chain[0, self.types[0]] = c[self.types[0]]
            for a in range(1, n):
                chain[a] = chain[a - 1]
                chain[a, self.types[a]] += c[self.types[a]]
                chain[a, self.types[a - 1]] -= c[self.types[a]]
            self.B = chain @ self.G / tau  # rows: served types in order
            self.b0 = np.full(n, f[self.types[0]] / tau)
        self.served = served

    def m_of(self, x: FloatArray) -> FloatArray:
        return np.asarray(self.G @ x[: self.k], dtype=np.float64)

    def t_scaled(self, x: FloatArray) -> FloatArray:
        """``t / tau`` of the served types, in ``self.types`` order."""
        if self.full:
            return np.array([x[self.k + self.owner[i]] for i in self.types])
        return np.asarray(self.B @ x[: self.k] + self.b0, dtype=np.float64)

    def t_jac(self) -> FloatArray:
        """Jacobian of :meth:`t_scaled` in ``x`` (constant)."""
        if not self.full:
            return self.B
        J = np.zeros((self.types.size, self.nx))
        for r, i in enumerate(self.types):
            J[r, self.k + self.owner[i]] = 1.0
        return J

    # objective -Pi and its derivatives
    def value(self, x: FloatArray) -> float:
        return -self.moments.at(self.m_of(x)).value

    def grad(self, x: FloatArray) -> FloatArray:
        g = np.zeros(self.nx)
        g[: self.k] = -self.G.T @ self.moments.at(self.m_of(x)).grad
        return g

    def hess(self, x: FloatArray) -> FloatArray:
        self.moments.at(self.m_of(x))
        return self._embed(-self.moments.hessian(1.0, np.zeros(self.problem.n_types)))

    def _embed(self, H: FloatArray) -> FloatArray:
        out = np.zeros((self.nx, self.nx))
        out[: self.k, : self.k] = self.G.T @ H @ self.G
        return out

    # budget constraints tbar_i(m)/tau - t_i/tau >= 0 for served i
    def bc(self, x: FloatArray) -> FloatArray:
        return self.moments.at(self.m_of(x)).tbar[self.types] / self.tau - self.t_scaled(x)

    def bc_jac(self, x: FloatArray) -> FloatArray:
        J = np.zeros((self.types.size, self.nx))
        J[:, : self.k] = self.moments.at(self.m_of(x)).jac[self.types] @ self.G / self.tau
        return J - self.t_jac()

    def bc_hess(self, x: FloatArray, lam: FloatArray) -> FloatArray:
        self.moments.at(self.m_of(x))
        weights = np.zeros(self.problem.n_types)
        weights[self.types] = lam / self.tau
        return self._embed(self.moments.hessian(0.0, weights))

    def linear(self) -> LinearConstraint | None:
        """IR, IC / monotonicity and keep-out rows, ``A x >= lo``."""
        c, f, tau = self.problem.costs, self.problem.reservation.utilities, self.tau
        T = self.t_jac()
        t0 = np.zeros(self.types.size) if self.full else self.b0
        Mx = np.zeros((self.problem.n_types, self.nx))
        Mx[:, : self.k] = self.G / tau  # m / tau as a function of x
        rows: list[FloatArray] = []
        lo: list[float] = []
        for r, i in enumerate(self.types):  # IR (the simplified chain makes type 1's bind)
            if self.full or r > 0:
                rows.append(T[r] - c[i] * Mx[i])
                lo.append(f[i] / tau - t0[r])
        if self.full:  # IC: type i prefers its group's option to every other group's
            for r, i in enumerate(self.types):
                for q, j in enumerate(self.types):
                    if self.owner[i] != self.owner[j] and j == self.groups[self.owner[j]][0]:
                        rows.append(T[r] - c[i] * Mx[i] - T[q] + c[i] * Mx[j])
                        lo.append(0.0)
        else:  # monotone contributions between consecutive groups
            for a in range(1, self.k):
                row = np.zeros(self.nx)
                row[a], row[a - 1] = 1.0, -self.sg[a - 1] / self.sg[a]
                rows.append(row)
                lo.append(0.0)
        for e in np.flatnonzero(~self.served):  # keep-out: f_e >= t_j - c_e m_j
            for q, j in enumerate(self.types):
                if j == self.groups[self.owner[j]][0]:
                    rows.append(-T[q] + c[e] * Mx[j])
                    lo.append(t0[q] - f[e] / tau)
        if not rows:
            return None
        return LinearConstraint(np.array(rows), np.array(lo), np.inf)

    def start(self, pooled: FloatArray) -> FloatArray:
        """Pooled start: every group contributes the least efficient type's pooled m (the
        least efficient type that would contribute at all, if it would not)."""
        c, f = self.problem.costs, self.problem.reservation.utilities
        willing = [i for i in self.types if pooled[i] > 0]
        first = willing[0] if willing else self.types[0]
        m0 = pooled[first] if willing else float(self.sg.min())
        y0 = np.full(self.k, m0) / self.sg
        if not self.full:
            return y0
        return np.concatenate([y0, np.full(self.k, (f[first] + c[first] * m0) / self.tau)])

    def solve(self, pooled: FloatArray, max_iter: int) -> Any:
        x0 = self.start(pooled)
        weight = _weight(self.grad(x0))
        constraints: list[Any] = [
            NonlinearConstraint(self.bc, 0.0, np.inf, jac=self.bc_jac, hess=self.bc_hess)
        ]
        linear = self.linear()
        if linear is not None:
            constraints.insert(0, linear)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trust-constr's "delta_grad == 0" notices
            return minimize(
                lambda x: weight * self.value(x),
                x0,
                method="trust-constr",
                jac=lambda x: weight * self.grad(x),
                hess=lambda x: weight * self.hess(x),
                constraints=constraints,
                bounds=Bounds(np.zeros(self.nx), np.full(self.nx, np.inf)),
                options={
                    "maxiter": max_iter,
                    "gtol": 1e-12,
                    "xtol": 1e-14,
                    "barrier_tol": 1e-12,
                },
            )

    def candidates(self, pooled: FloatArray, max_iter: int) -> Iterator[tuple[FloatArray, Any]]:
        """The interior-point solution, then its active-set polishes (lazily)."""
        res = self.solve(pooled, max_iter)
        yield self.m_of(res.x), res
        x = self.canonical(res.x)
        for eps in self.active_thresholds(x):
            try:
                polished = self.polish(x, min(max_iter, POLISH_ITER), eps)
            except (ValueError, np.linalg.LinAlgError):  # degenerate active set
                continue
            yield self.m_of(polished.x), polished

    def active_thresholds(self, x: FloatArray) -> list[float]:
        """Candidate activity thresholds: midpoints (geometric) of the largest gaps in the
        sorted constraint slacks at ``x``, largest gap first."""
        linear = self.linear()
        slack = list(self.bc(x))
        if linear is not None:
            slack += list(np.asarray(linear.A) @ x - np.asarray(linear.lb))
        s = np.unique(np.clip(np.array(slack), 1e-14, None))
        s = s[s < 0.1]
        if s.size == 0:
            return [1e-9]
        edges = np.concatenate([s, [0.1]])
        ratio = edges[1:] / edges[:-1]
        order = np.argsort(-ratio)[:MAX_POLISHES]
        return [float(np.sqrt(edges[i] * edges[i + 1])) for i in order]

    def canonical(self, x: FloatArray) -> FloatArray:
        """``x`` with the least-rent rewards for its ``m`` (full formulation): IR and IC
        then hold exactly, so the active set read off at this point is clean."""
        if not self.full:
            return x
        p = self.problem
        t = least_rent_rewards(self.m_of(x), p.costs, p.reservation.utilities, self.served)
        z = np.array([t[g[0]] for g in self.groups]) / self.tau
        return np.concatenate([x[: self.k], z])

    def polish(self, x: FloatArray, max_iter: int, eps: float) -> Any:
        """Newton on the KKT system of the constraints active (to ``eps``) at ``x``.

        Interior points stop a little inside the active constraints, which in the flat
        directions of this program moves ``m`` in the fourth digit. Treating the active
        constraints as equalities, the stationarity and feasibility equations are solved
        by Levenberg-Marquardt with their exact Jacobian (the Hessian of the Lagrangian
        built from the exact Hessians); rank-deficient active sets are fine. The caller
        keeps the result only if it verifies and improves the objective.
        """
        linear = self.linear()
        if linear is not None:
            A0, lo0 = np.asarray(linear.A), np.asarray(linear.lb)
            on = A0 @ x - lo0 <= eps
            A, lo = A0[on], lo0[on]
        else:
            A, lo = np.zeros((0, self.nx)), np.zeros(0)
        live = self.bc(x) <= eps
        n_lin, n_bc, nx = A.shape[0], int(live.sum()), self.nx
        weight = _weight(self.grad(x))

        def parts(z: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
            xx, mu, nu = z[:nx], z[nx : nx + n_lin], z[nx + n_lin :]
            J = self.bc_jac(xx)[live]
            return xx, mu, nu, J

        def equations(z: FloatArray) -> FloatArray:
            xx, mu, nu, J = parts(z)
            stat = weight * self.grad(xx) - A.T @ mu - J.T @ nu
            return np.concatenate([stat, A @ xx - lo, self.bc(xx)[live]])

        def jacobian(z: FloatArray) -> FloatArray:
            xx, _, nu, J = parts(z)
            lam = np.zeros(self.problem.n_types)
            lam[self.types[live]] = nu / self.tau
            self.moments.at(self.m_of(xx))
            H = self._embed(-self.moments.hessian(weight, lam))  # one pass over outcomes
            size = nx + n_lin + n_bc
            out = np.zeros((size, size))
            out[:nx, :nx] = H
            out[:nx, nx : nx + n_lin] = -A.T
            out[:nx, nx + n_lin :] = -J.T
            out[nx : nx + n_lin, :nx] = A
            out[nx + n_lin :, :nx] = J
            return out

        G = np.hstack([A.T, self.bc_jac(x)[live].T])
        mult = np.linalg.lstsq(G, weight * self.grad(x), rcond=None)[0] if G.size else []
        z0 = np.concatenate([x, mult])
        # Gauss-Newton with least-squares steps (quadratic where the system is regular);
        # Levenberg-Marquardt if that stalls.
        z, F = z0, equations(z0)
        nit, message = 0, "KKT polish: Newton"
        while nit < max_iter:
            nit += 1
            step = np.linalg.lstsq(jacobian(z), -F, rcond=None)[0]
            z_new = z + step
            F_new = equations(z_new)
            if not np.linalg.norm(F_new) < np.linalg.norm(F):
                sol = root(equations, z, jac=jacobian, method="lm", options={"maxiter": 50})
                z, F, message = sol.x, equations(sol.x), f"KKT polish: {sol.message}"
                break
            z, F = z_new, F_new
            if np.linalg.norm(step) <= 1e-13 * max(1.0, float(np.linalg.norm(z))):
                break
        viol = float(np.max(np.abs(F[nx:]), initial=0.0))
        return OptimizeResult(
            x=z[:nx],
            success=bool(np.max(np.abs(F), initial=0.0) < 1e-8),
            message=message,
            nit=nit,
            constr_violation=viol,
        )
