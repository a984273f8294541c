"""The first-moment program in scaled variables, one formulation at a time (private).

:class:`Program` builds the objective, its exact gradient and Hessian, the linear IR/IC
constraints and the nonlinear budget constraints of one formulation (``"full"`` or
``"simplified"``) over groups of types sharing an option, and solves it with scipy's
``trust-constr``; active-set polishes re-solve the KKT system of a candidate's active
constraints with a Levenberg-Marquardt root finder. The search over formulations,
poolings and polishes is in :mod:`coopml.contracts.first_moment`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import (
    Bounds,
    LinearConstraint,
    NonlinearConstraint,
    OptimizeResult,
    minimize,
    root,
)

from coopml.contracts._moments import Moments
from coopml.contracts.least_rent import least_rent_rewards
from coopml.contracts.problem import ContractProblem

FloatArray = NDArray[np.float64]
MAX_POLISHES = 5
POLISH_ITER = 100


def _weight(grad: FloatArray) -> float:
    """Objective scale that makes the starting gradient O(1) (1 if it vanishes)."""
    top = float(np.max(np.abs(grad)))
    return 1.0 / top if top > 1e-300 else 1.0


class Program:
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
