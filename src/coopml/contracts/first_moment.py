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
    brentq,
    minimize,
    nnls,
)
from threadpoolctl import threadpool_limits

from coopml._validation import RandomState, check_choice, check_int, check_positive
from coopml.contracts._moments import Moments
from coopml.contracts.outcomes import OutcomeSpace
from coopml.contracts.problem import ContractProblem
from coopml.contracts.result import ContractResult
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
ACTIVE_TOLS = (1e-2, 1e-4, 1e-6)
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
    391.0
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
    ([1909.0, 1924.7], True)
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
        m, res, kkt, moments = _solve(problem, space, served, formulation, max_iter, tol)

    m = np.where(served, np.maximum(m, 0.0), 0.0)
    f = problem.reservation.utilities
    t = least_rent_rewards(m, problem.costs, f, served)
    seconds = time.perf_counter() - start
    report = verify_contract(problem, m, t, served=served, space=space, tol=tol)
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

    def consider(self, cand: _Candidate, moments: Moments, space: OutcomeSpace) -> bool:
        """Keep ``cand`` if it verifies and beats the incumbent; True once certified."""
        p, served = self.problem, self.served
        if self.best is None or _better(
            p, space, moments, served, self.tol, (cand.m, cand.res), (self.best.m, self.best.res)
        ):
            self.best = cand
            m = np.where(served, np.maximum(cand.m, 0.0), 0.0)
            t = least_rent_rewards(m, p.costs, p.reservation.utilities, served)
            self.kkt = kkt_residual(p, moments, m, t, served, self.sigma, self.tau)
        return self.kkt <= KKT_TOL

    def run(self, moments: Moments, space: OutcomeSpace) -> _Candidate:
        groups = [[int(i)] for i in self.problem.efficiency_order if self.served[i]]
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
        for eps in ACTIVE_TOLS:
            try:
                res = program.polish(rough.res.x, min(self.max_iter, POLISH_ITER), eps)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if self.consider(_Candidate(program.m_of(res.x), res, program), moments, space):
                return


def _better(
    problem: ContractProblem,
    space: OutcomeSpace,
    moments: Moments,
    served: NDArray[np.bool_],
    tol: float,
    candidate: tuple[FloatArray, Any],
    incumbent: tuple[FloatArray, Any],
) -> bool:
    """Whether ``candidate`` verifies and has a higher objective than ``incumbent``."""
    f = problem.reservation.utilities
    m = np.where(served, np.maximum(candidate[0], 0.0), 0.0)
    t = least_rent_rewards(m, problem.costs, f, served)
    if not verify_contract(problem, m, t, served=served, space=space, tol=tol).passed:
        return False
    value = moments.at(m).value
    return bool(value > moments.at(np.where(served, np.maximum(incumbent[0], 0.0), 0.0)).value)


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
) -> tuple[FloatArray, Any, float, Moments]:
    moments = Moments(space, problem.curve, problem.valuation)
    sigma, tau, pooled = _scales(problem, served)
    search = _Search(problem, served, sigma, tau, pooled, formulation == "full", max_iter, tol)
    if space.n_outcomes > COARSE_OUTCOMES:
        # Coarse to fine: solve on sampled outcomes, then Newton-polish the coarse
        # active set on every outcome; fall back to the full search if not certified.
        coarse = problem.outcome_space("sampled", n_samples=COARSE_OUTCOMES, random_state=0)
        rough = search.run(Moments(coarse, problem.curve, problem.valuation), space)
        search.best = None
        search.refine(moments, space, rough)
    if search.best is None or search.kkt > KKT_TOL:
        search.run(moments, space)
    assert search.best is not None
    m, res, kkt = search.best.m, search.best.res, search.kkt
    return m, res, kkt, moments


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
    se_acc, _ = space.stderr(problem.curve(space.counts @ m))
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
        """Pooled start: every group contributes the least efficient type's pooled m."""
        c, f = self.problem.costs, self.problem.reservation.utilities
        first = self.types[0]
        m0 = pooled[first]
        y0 = np.full(self.k, m0) / self.sg
        if not self.full:
            return y0
        return np.concatenate([y0, np.full(self.k, (f[first] + c[first] * m0) / self.tau)])

    def solve(self, pooled: FloatArray, max_iter: int) -> Any:
        x0 = self.start(pooled)
        weight = 1.0 / max(float(np.max(np.abs(self.grad(x0)))), 1e-300)
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
        for eps in ACTIVE_TOLS:
            try:
                polished = self.polish(res.x, min(max_iter, POLISH_ITER), eps)
            except (ValueError, np.linalg.LinAlgError):  # degenerate active set
                continue
            yield self.m_of(polished.x), polished

    def polish(self, x: FloatArray, max_iter: int, eps: float) -> Any:
        """Equality-constrained SQP (exact Hessians) on the constraints active at ``x``.

        Interior points stop a little inside the active constraints, which in the flat
        directions of this program moves ``m`` in the fourth digit; Newton steps on the
        active set recover the vertex. The caller keeps the result only if it verifies
        and improves the objective.
        """
        constraints: list[Any] = []
        linear = self.linear()
        if linear is not None:
            A, lo = np.asarray(linear.A), np.asarray(linear.lb)
            on = A @ x - lo <= eps
            if on.any():
                constraints.append(LinearConstraint(A[on], lo[on], lo[on]))
        live = self.bc(x) <= eps
        if live.any():
            n_bc = self.types.size

            def bc_hess(z: FloatArray, lam: FloatArray) -> FloatArray:
                full_lam = np.zeros(n_bc)
                full_lam[live] = lam
                return self.bc_hess(z, full_lam)

            constraints.append(
                NonlinearConstraint(
                    lambda z: self.bc(z)[live],
                    0.0,
                    0.0,
                    jac=lambda z: self.bc_jac(z)[live],
                    hess=bc_hess,
                )
            )
        weight = 1.0 / max(float(np.max(np.abs(self.grad(x)))), 1e-300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return minimize(
                lambda z: weight * self.value(z),
                x,
                method="trust-constr",
                jac=lambda z: weight * self.grad(z),
                hess=lambda z: weight * self.hess(z),
                constraints=constraints,
                options={
                    "maxiter": max_iter,
                    "gtol": 1e-13,
                    "xtol": 1e-15,
                    "factorization_method": "SVDFactorization",
                },
            )
