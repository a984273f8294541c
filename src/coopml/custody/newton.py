r"""Logistic regression in parties custody: a federated batched Newton method.

The objective of coalition :math:`S` is a sum over its parties,
:math:`f_S(\theta) = \sum_{j \in S} L_j(\theta) + \text{penalty}(\theta)`, so its gradient
and Hessian are sums of each party's :math:`\nabla L_j, \nabla^2 L_j`.
:class:`FederatedLogisticRegression` is :class:`~coopml.learning.fast.FastLogisticRegression`
-- the same warm starts, Newton steps, Armijo line search and stopping rule -- with the
one change that the data's part of the loss, gradient and Hessian is not computed from
rows but asked of the agents: each iteration the operator sends every agent the
current parameters of the coalitions (of a block) it belongs to, each agent returns
the gradient and Hessian (or, in a line search, the loss) of its own rows for each of
them, and the operator sums and steps. The result is the in-process fit's, to rounding.
"""

from __future__ import annotations

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


class FederatedLogisticRegression(FastLogisticRegression):
    """Batched L2 logistic regression whose rows stay with the agents.

    Build it with :meth:`from_agents`; then :meth:`fit_block` fits coalitions as the
    in-process learner does (its blocks carry models, not predictions).
    """

    transport: Transport
    names: tuple[str, ...]
    #: Newton requests sent (one per agent and iteration or line-search trial)
    n_requests: int

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
        return self

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
        self.n_requests += len(requests)
        replies = self.transport.exchange(requests)
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
        return (loss, None) if what == "loss" else (grad, hess)
