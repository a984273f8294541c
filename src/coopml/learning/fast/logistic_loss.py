"""The logistic loss of weighted rows, its gradient and Hessian, for many coalitions'
parameters at once (binomial and multinomial): the kernels of
:class:`~coopml.learning.fast.FastLogisticRegression`'s Newton method and of a
parties-custody agent's answers to ``newton`` requests (:mod:`coopml.custody.newton`).

numpy and the fast learners' :class:`~coopml.learning.fast.Backend` only: an agent
imports this module in a fresh process for every Flower message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml.learning.fast._backend import Backend

__all__ = ["design", "rows_grad_hess", "rows_loss", "targets"]


def design(
    X: NDArray[np.float64], shift: NDArray[np.float64], intercept: bool
) -> NDArray[np.float64]:
    """Rows shifted by ``shift``, with a column of ones when there is an intercept."""
    X = np.asarray(X, dtype=np.float64)
    return np.hstack([X - shift, np.ones((X.shape[0], int(intercept)))])


def targets(codes: NDArray[np.intp], classes: NDArray[np.intp]) -> tuple[Any, Any]:
    """The target of ``classes`` for rows with class indices ``codes`` (indicator of
    ``classes[1]`` for two classes, one-hot (n, K) for more) and which rows have one
    of ``classes`` (0/1)."""
    Y = (np.asarray(codes)[:, None] == np.asarray(classes)[None, :]).astype(np.float64)
    return (Y[:, 1] if classes.size == 2 else Y), Y.any(axis=1).astype(np.float64)


def rows_loss(be: Backend, theta: Any, Xt: Any, target: Any, m: Any) -> Any:
    """Weighted loss of rows ``Xt`` (n, p) with weights ``m`` (b, n), for parameters
    ``theta`` (b, p) (binomial, ``target`` (n,)) or (b, K*p) (multinomial, (n, K))."""
    p = Xt.shape[1]
    if target.ndim == 1:
        eta = theta @ be.swap(Xt)  # (b, n)
        loss = be.logaddexp0(eta) - target * eta
    else:
        th = theta.reshape(theta.shape[0], -1, p)
        eta = be.einsum("np,bkp->bnk", Xt, th)
        loss = -(be.log_softmax(eta, 2) * target).sum(axis=2)
    return (m * loss).sum(axis=1)


def rows_grad_hess(
    be: Backend, theta: Any, Xt: Any, outer: Any, gather: Any, target: Any, m: Any
) -> tuple[Any, Any]:
    """Gradient (b, P) and Hessian (b, P, P) of :func:`rows_loss` (no penalty);
    ``outer`` holds the rows' outer products (upper triangles, (n, p(p+1)/2)) and
    ``gather`` maps a full (p, p) entry to its triangle index."""
    b, p = theta.shape[0], Xt.shape[1]

    def unpack(flat: Any) -> Any:
        return flat[:, gather].reshape(-1, p, p)

    if target.ndim == 1:
        prob = be.expit(theta @ be.swap(Xt))
        return (m * (prob - target)) @ Xt, unpack((m * prob * (1 - prob)) @ outer)
    K = target.shape[1]
    th = theta.reshape(b, K, p)
    prob = be.softmax(be.einsum("np,bkp->bnk", Xt, th), 2)  # (b, n, K)
    grad = be.einsum("bn,bnk,np->bkp", m, prob - target, Xt)
    hess = be.zeros((b, K, p, K, p))
    for k in range(K):
        for j in range(k, K):
            w = m * prob[:, :, k] * (float(k == j) - prob[:, :, j])
            block = unpack(w @ outer)
            hess[:, k, :, j, :] = block
            hess[:, j, :, k, :] = block
    return grad.reshape(b, K * p), hess.reshape(b, K * p, K * p)
