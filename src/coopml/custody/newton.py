r"""Logistic regression in parties custody: a federated batched Newton method.

The objective of coalition :math:`S` is a sum over its parties,
:math:`f_S(\theta) = \sum_{j \in S} L_j(\theta) + \text{penalty}(\theta)`, so its gradient
and Hessian are sums of each party's :math:`\nabla L_j, \nabla^2 L_j`.
:class:`FederatedLogisticRegression` is :class:`~coopml.learning.fast.FastLogisticRegression`
-- the same Newton steps, Armijo line search and stopping rule -- with the one change
that the data's part of the loss, gradient and Hessian is not computed from rows but
asked of the agents: each iteration the operator sends every agent the current
parameters of the coalitions (of a block) it belongs to, each agent returns the
gradient and Hessian (or, in a line search, the loss) of its own rows for each of
them, and the operator sums and steps. The result is the in-process fit's, to rounding
(the objective is strictly convex: one optimum, reached to the same stopping rule).

Here a round trip, not arithmetic, is the cost (over Flower's deployment runtime every
message starts a ClientApp process), so every coalition starts from zero in one block
(:meth:`FederatedLogisticRegression._warm_start`) instead of from the fit on every
party: that fit is a Newton method of its own, about as many round trips again, while
the block's slowest coalitions take as many iterations from either start
(docs/benchmarks.md, "Parties custody").

**With privacy noise** (an agent with a finite-epsilon
:class:`~coopml.custody.privacy.GaussianMechanism`) the fit cannot search along a
line (every loss would be one more release) nor stop when it has converged (when to
stop would depend on the data). It runs a fixed, public number of Newton iterations
instead (:data:`NOISY_ITERATIONS`; the warm start's fit on every party, its
per-party pieces, then every coalition from there) and announces to each agent, in its
first request, the number of gradient--Hessian pairs this plan asks of it (its noise is
calibrated to it: :mod:`coopml.custody.privacy`). Each step post-processes the noisy
sums:

each coalition's Hessian (already symmetric positive semi-definite from every agent)
has its eigenvalues raised to at least :math:`\tau = 2\sqrt{P\sum_{j\in S}\sigma_{H,j}^2}`,
about the spectral norm of the summed noise of a :math:`P \times P` symmetric Gaussian
matrix (:math:`\sigma_{H,j}`: party :math:`j`'s Hessian noise, public): directions the
noise dominates are regularised (a Levenberg--Marquardt-like ridge), never inverted
(:func:`floored_step`). The gradient's noise then moves the parameters by about
:math:`\lVert n\rVert/\tau \approx \sigma_g/(2\sigma_H)` per step (summed
:math:`\sigma`'s) however small epsilon is: the fit settles at that noise floor.

A coalition settles when its last step is below :data:`NOISE_STEPS` times that noise
step plus :data:`NOISY_STEP_TOL` :math:`(1 + \max|\theta|)`; one whose step is larger
(still moving, or diverging) or whose parameters are not finite fails the round, named
(never settled on). Each party's provenance record is
completed with its plan (``newton_pairs``, ``releases``, ``noise_multiplier_newton``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.custody.checks import AgentError, check_psd, entry
from coopml.custody.statistics import Moments
from coopml.custody.transport import Transport
from coopml.learning.fast import FastLogisticRegression
from coopml.learning.fast.logistic import ARMIJO_C, MAX_HALVINGS, SEARCH_ABOVE

__all__ = ["FederatedLogisticRegression"]

#: Step sizes of the backtracking search tried per round trip (1, 1/2, ..., 1/128).
TRIALS = 8
#: Newton iterations of every fit when agents add noise (public: it fixes the number of
#: gradient-Hessian pairs each agent releases, and so their noise).
NOISY_ITERATIONS = 8
#: With noise, a fit settles if its last step (L2) is within NOISE_STEPS times the step
#: the gradient's noise alone makes, plus NOISY_STEP_TOL (1 + max |theta|).
NOISE_STEPS = 4.0
NOISY_STEP_TOL = 1e-3


class FederatedLogisticRegression(FastLogisticRegression):
    """Batched L2 logistic regression whose rows stay with the agents.

    Build it with :meth:`from_agents`; then :meth:`fit_block` fits coalitions as the
    in-process learner does (its blocks carry models, not predictions).
    """

    transport: Transport
    names: tuple[str, ...]
    #: Newton requests sent (one per agent and iteration or line-search trial)
    n_requests: int
    #: whether some agent adds noise (then the fixed plan of the module docstring)
    noisy: bool
    #: with noise: each coalition's last step over the step it may take (<= 1 settles)
    last_step_ratio: NDArray[np.float64]
    _records: tuple[dict[str, Any] | None, ...]
    _plan: dict[str, int] | None
    _planned: set[str]
    _var: dict[tuple[int, ...], NDArray[np.float64]]

    @classmethod
    def from_agents(
        cls, estimator: Any, transport: Transport, moments: Moments
    ) -> FederatedLogisticRegression:
        """The learner over the agents of ``moments.names``, reached through ``transport``."""
        if moments.classes is None or moments.class_counts is None:
            raise ValueError("logistic regression needs a classification market's moments")
        self = cls.__new__(cls)
        self._setup(estimator, len(moments.names), moments.n_features, "numpy")
        self.classes, self.class_counts = moments.classes, moments.class_counts
        self.shift = moments.center(self)["x"]
        self.set_validation(np.empty((0, self.n_features)))
        self.transport, self.names, self.n_requests = transport, moments.names, 0
        records = moments.privacy or (None,) * len(moments.names)
        self.noisy = any(r is not None and not math.isinf(float(r["epsilon"])) for r in records)
        # each party's provenance record, completed in place with its Newton plan
        self._records = records
        self._plan, self._planned = None, set()
        # per class pattern: each party's gradient and Hessian noise variances (M, 2)
        self._var = {}
        return self

    # ------------------------------------------------------------ with privacy noise
    def plan(self, A: NDArray[np.float64]) -> dict[str, int]:
        """Gradient-Hessian pairs the noisy fit of coalitions ``A`` asks of each agent:
        per class pattern, the warm start's :data:`NOISY_ITERATIONS` and its pieces (1),
        then ``NOISY_ITERATIONS - 1`` for every coalition the agent is in."""
        T = NOISY_ITERATIONS
        present = self.present(A)
        patterns, which = np.unique(present, axis=0, return_inverse=True)
        pairs = np.zeros(self.n_players, dtype=np.int64)
        for g in range(patterns.shape[0]):
            members = A[which.ravel() == g] > 0
            pairs += T + 1 + (T - 1) * members.sum(axis=0)
        return {name: int(pairs[j]) for j, name in enumerate(self.names)}

    def _fit_block(self, A: NDArray[np.float64]) -> Any:
        if not self.noisy:
            return super()._fit_block(A)
        if self._plan is not None:
            raise ValueError(
                "with privacy noise every coalition is fit in one block (the agents' noise "
                "is calibrated to one plan of requests)"
            )
        self._plan = self.plan(A)
        block = super()._fit_block(A)
        if not block.ok.all():
            bad = np.flatnonzero(~block.ok)[:5]
            names = [[self.names[i] for i in np.flatnonzero(A[b] > 0)] for b in bad.tolist()]
            raise ValueError(
                f"logistic regression with privacy noise did not settle for "
                f"{int((~block.ok).sum())} coalition(s), e.g. {names}: after "
                f"{NOISY_ITERATIONS} Newton iterations the last step is still larger than "
                f"{NOISE_STEPS:g} times the noise's own step plus {NOISY_STEP_TOL:g} (1 + max "
                "|theta|) (not converged, or diverging), or the parameters are not finite. "
                "Raise epsilon, lower clip (standardised features) or use fewer features; "
                "nothing is settled"
            )
        return block

    def _newton(
        self, A: Any, classes: NDArray[np.intp], start: Any = None, warm: bool = False
    ) -> tuple[Any, Any]:
        if not self.noisy:
            return super()._newton(A, classes, start, warm)
        b, p, K = A.shape[0], self.p, classes.size
        key = tuple(classes.tolist())
        grad = hess = None
        if warm:
            theta0, g_j, h_j, g_pen, h_pen = self._warm_start(classes)
            theta = np.tile(theta0, (b, 1))
            grad, hess = A @ g_j + g_pen, (A @ h_j).reshape(b, *h_pen.shape[1:]) + h_pen
        else:
            theta = np.tile(np.reshape(start, (1, -1)), (b, 1))
        step = np.zeros_like(theta)
        for it in range(NOISY_ITERATIONS):
            if grad is None or hess is None or it > 0:
                grad, hess = self._grad_hess(theta, A, classes)
            var = A @ self._var[key]  # (b, 2): summed gradient and Hessian noise variances
            step, _ = floored_step(grad, hess, var[:, 1])
            theta = theta - step
        finite = np.isfinite(theta).all(axis=1) & np.isfinite(step).all(axis=1)
        size = np.where(finite, np.linalg.norm(step, axis=1), np.inf)
        with np.errstate(divide="ignore", invalid="ignore"):
            noise_step = np.where(var[:, 1] > 0, np.sqrt(var[:, 0] / var[:, 1]) / 2.0, 0.0)
        bound = NOISE_STEPS * noise_step + NOISY_STEP_TOL * (1.0 + np.abs(theta).max(axis=1))
        self.last_step_ratio = size / bound
        converged = finite & (size <= bound)
        return (theta if K == 2 else theta.reshape(b, K, p)), converged

    def _line_search(
        self, th: Any, m: Any, step: Any, slope: Any, classes: NDArray[np.intp]
    ) -> tuple[Any, Any]:
        """The in-process backtracking search, with every round trip carrying
        :data:`TRIALS` halvings (and, in the first, the objective at ``th``): the
        first step size that passes Armijo's test is the one the sequential search
        stops at, so the result is the same in a fraction of the round trips."""
        t = np.ones(th.shape[0])
        new = th - step
        search = np.flatnonzero(np.abs(step).max(axis=1) > SEARCH_ABOVE)
        f0: NDArray[np.float64] | None = None
        for first in range(0, MAX_HALVINGS, TRIALS):
            if search.size == 0:
                break
            k = np.arange(first, min(first + TRIALS, MAX_HALVINGS))
            sizes = 0.5**k  # (T,)
            trials = th[search, None, :] - sizes[None, :, None] * step[search, None, :]
            points = trials.reshape(-1, th.shape[1])
            rows = np.repeat(m[search], k.size, axis=0)
            if f0 is None:  # the objective at th, in the same round trip
                points = np.vstack([th[search], points])
                rows = np.vstack([m[search], rows])
            f = self._objective(points, rows, classes)
            if f0 is None:
                f0, f = f[: search.size], f[search.size :]
            f1 = f.reshape(search.size, k.size)
            bad = f1 > (
                f0[:, None]
                - ARMIJO_C * sizes[None, :] * slope[search, None]
                + 1e-13 * (1.0 + np.abs(f0[:, None]))
            )
            passed = ~bad
            hit = passed.any(axis=1)
            j = np.where(hit, passed.argmax(axis=1), k.size - 1)
            new[search] = trials[np.arange(search.size), j]
            t[search] = np.where(hit, sizes[j], sizes[-1] / 2)
            search, f0 = search[~hit], f0[~hit]
        return new, t

    def _warm_start(self, classes: NDArray[np.intp]) -> tuple[Any, ...]:
        """Every coalition starts at zero (without privacy noise): each party's gradient
        and Hessian there, in one round trip, give every coalition's first step, where
        the in-process learner first fits every party's rows together (a Newton method
        of its own: as many round trips again, for no fewer iterations after it)."""
        if getattr(self, "noisy", False):  # the announced plan counts the pooled start
            return super()._warm_start(classes)
        key = tuple(classes.tolist())
        if key not in self._warm:
            M = self.n_players
            zero = np.zeros(self.p * (1 if classes.size == 2 else classes.size))
            g, h = self._data_grad_hess(np.zeros((M, zero.size)), np.eye(M), classes)
            g_pen, h_pen = self._penalise(zero[None, :], np.zeros((1, zero.size)), None)
            self._warm[key] = (zero, g, h.reshape(M, -1), g_pen, h_pen)
        return self._warm[key]

    def _data_loss(self, theta: Any, A: Any, classes: NDArray[np.intp]) -> Any:
        return self._ask("loss", theta, A, classes)[0]

    def _data_grad_hess(self, theta: Any, A: Any, classes: NDArray[np.intp]) -> tuple[Any, Any]:
        grad, hess = self._ask("grad_hess", theta, A, classes)
        return grad, hess

    def _ask(
        self,
        what: str,
        theta: NDArray[np.float64],
        A: NDArray[np.float64],
        classes: NDArray[np.intp],
    ) -> tuple[Any, Any]:
        """Sum over each coalition's parties of their replies at ``theta`` (b, P)."""
        b, P = theta.shape
        base = {
            "kind": "newton",
            "what": what,
            "classes": self.classes.tolist(),
            "subset": classes.tolist(),
            "shift": self.shift,
            "fit_intercept": self.fit_intercept,
        }
        rows = {j: np.flatnonzero(A[:, j] > 0) for j in range(self.n_players)}
        requests = {self.names[j]: {**base, "theta": theta[r]} for j, r in rows.items() if r.size}
        if self.noisy and self._plan is not None:
            for name in requests.keys() - self._planned:  # each agent's plan, announced once
                requests[name]["plan"] = {"pairs": self._plan[name]}
                self._planned.add(name)
        self.n_requests += len(requests)
        replies = self.transport.exchange(requests)
        var = self._var.setdefault(tuple(classes.tolist()), np.zeros((self.n_players, 2)))
        loss, grad, hess = np.zeros(b), np.zeros((b, P)), np.zeros((b, P, P))
        for j, r in rows.items():
            if not r.size:
                continue
            name = self.names[j]
            reply = replies[name]
            if what == "loss":
                value = entry(name, reply, "loss", (r.size,))
                if (value < 0).any():
                    raise AgentError(name, "sent a negative loss")
                loss[r] += value
            else:
                g = entry(name, reply, "grad", (r.size, P))
                h = entry(name, reply, "hess", (r.size, P, P))
                check_psd(name, "hess", h)
                grad[r] += g
                hess[r] += h
                if self.noisy and self._records[j] is not None:
                    for k, key in enumerate(("sigma_grad", "sigma_hess")):
                        sigma = entry(name, reply, key, ())
                        if sigma < 0:
                            raise AgentError(name, f"sent a negative {key!r}")
                        var[j, k] = float(sigma) ** 2
                    record, own = reply.get("privacy"), self._records[j]
                    if isinstance(record, dict) and own is not None:
                        own.update(record)  # its plan, into the provenance
        return (loss, None) if what == "loss" else (grad, hess)


def floored_step(
    grad: NDArray[np.float64], hess: NDArray[np.float64], noise_var: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Newton steps :math:`H_+^{-1} g` and decrements :math:`\sqrt{g^\top H_+^{-1} g}` of
    a batch (``grad`` (b, P), ``hess`` (b, P, P)), :math:`H_+` having the eigenvalues of
    :math:`H` raised to at least :math:`2\sqrt{P\,v}` (``noise_var`` :math:`v` (b,): the
    variance of each entry of the noise summed into :math:`H`), and to a tiny positive
    value where there is no noise.

    Examples
    --------
    >>> step, dec = floored_step(np.array([[2.0, 0.0]]), np.diag([1.0, -1.0])[None], np.ones(1))
    >>> step.round(6).tolist(), dec.round(6).tolist()  # eigenvalues floored at 2 sqrt(2)
    ([[0.707107, 0.0]], [1.189207])
    """
    P = hess.shape[-1]
    w, V = np.linalg.eigh((hess + np.swapaxes(hess, 1, 2)) / 2.0)
    tiny = 1e-12 * np.maximum(np.abs(w).max(axis=1), 1.0)
    floor = np.maximum(2.0 * np.sqrt(P * np.asarray(noise_var, dtype=np.float64)), tiny)
    w = np.maximum(w, floor[:, None])
    proj = np.einsum("bpq,bp->bq", V, grad)  # V' g
    step = np.einsum("bpq,bq->bp", V, proj / w)
    return step, np.sqrt((proj**2 / w).sum(axis=1))
