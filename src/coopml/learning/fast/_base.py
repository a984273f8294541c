"""The interface of a batched exact learner and helpers shared by the implementations.

A fast learner is built once from the parties' training rows (one block of rows per
party) and the validation features. It condenses each party's rows into sufficient
statistics, and then fits *many* coalitions at once: a coalition is a 0/1 row of a
membership matrix ``A`` of shape ``(B, M)``, so coalition statistics are the matrix
products ``A @ stats``. Every fit reproduces the model scikit-learn's own ``fit``
would return on the coalition's pooled rows, to the tolerance each learner states;
a coalition whose fit the batched kernel cannot reproduce to that tolerance (rank
deficient, ill conditioned, a validation prediction on a decision boundary) is
flagged ``ok=False`` and the caller refits it with scikit-learn itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

__all__ = ["FastBlock", "FastLearner", "masked_argmax", "membership", "spd_solve"]


def membership(masks: NDArray[np.int64], n_players: int) -> NDArray[np.float64]:
    """0/1 membership matrix of shape ``(len(masks), n_players)`` (player ``i`` is bit ``i``).

    Examples
    --------
    >>> membership(np.array([5, 2]), 3).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    bits = (np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(n_players)) & 1
    return bits.astype(np.float64)


@dataclass
class FastBlock:
    """The fits of a block of ``B`` coalitions.

    Attributes
    ----------
    ok : ndarray of bool, shape (B,)
        Whether the batched fit reproduces scikit-learn's; others must be refit.
    predictions : ndarray of shape (B, n_val)
        Validation predictions: targets (regression) or indices into the learner's
        ``classes`` (classification); undefined where ``ok`` is false.
    params : dict of str to ndarray
        Batched fitted parameters (leading axis ``B``), read by
        :meth:`FastLearner.estimator`.
    """

    ok: NDArray[np.bool_]
    predictions: NDArray[Any]
    params: dict[str, NDArray[Any]] = field(default_factory=dict)


class FastLearner(ABC):
    """Sufficient statistics of every party, and a batched fit over coalitions.

    Parameters
    ----------
    estimator : scikit-learn estimator
        An unfitted estimator that :meth:`supports` accepts; its parameters are read.
    X_parts : sequence of ndarray of shape (n_j, n_features)
        Training features of each party, in player order.
    y_parts : sequence of ndarray of shape (n_j,)
        Training targets of each party.
    X_val : ndarray of shape (n_val, n_features)
        Validation features every coalition's model predicts.
    """

    #: Estimator classes this learner reproduces (exact type match).
    estimator_types: ClassVar[tuple[type, ...]]
    #: Whether predictions are class indices.
    is_classifier: ClassVar[bool] = False

    def __init__(
        self,
        estimator: Any,
        X_parts: Sequence[NDArray[np.float64]],
        y_parts: Sequence[NDArray[Any]],
        X_val: NDArray[np.float64],
    ) -> None:
        self.estimator_params = estimator.get_params(deep=False)
        self.estimator_class = type(estimator)
        self.n_players = len(X_parts)
        self.n_features = int(X_val.shape[1])
        self.X_val = X_val
        y_all = np.concatenate([np.asarray(y) for y in y_parts])
        if self.is_classifier:
            self.classes, codes = np.unique(y_all, return_inverse=True)
            bounds = np.cumsum([0] + [len(y) for y in y_parts])
            self.codes = [codes[bounds[j] : bounds[j + 1]] for j in range(self.n_players)]
            #: class counts of each party, shape (M, K)
            self.class_counts = np.stack(
                [np.bincount(c, minlength=self.classes.size) for c in self.codes]
            ).astype(np.float64)
        self._prepare(X_parts, y_parts, X_val)

    @abstractmethod
    def _prepare(
        self,
        X_parts: Sequence[NDArray[np.float64]],
        y_parts: Sequence[NDArray[Any]],
        X_val: NDArray[np.float64],
    ) -> None:
        """Precompute the learner's per-party statistics (called by ``__init__``)."""

    @classmethod
    def supports(cls, estimator: Any) -> bool:
        """Whether ``estimator`` (its exact class and parameters) is reproduced exactly."""
        return type(estimator) in cls.estimator_types and cls._supports_params(
            estimator.get_params(deep=False)
        )

    @classmethod
    @abstractmethod
    def _supports_params(cls, params: dict[str, Any]) -> bool: ...

    @abstractmethod
    def fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        """Fit the coalitions given by the rows of the membership matrix ``A`` (B, M).

        Classifiers are only given coalitions holding at least two classes.
        """

    @abstractmethod
    def _set_fitted(self, model: Any, block: FastBlock, b: int) -> None: ...

    def estimator(self, block: FastBlock, b: int) -> Any:
        """A fitted scikit-learn estimator equal to coalition ``b`` of ``block``."""
        model = self.estimator_class(**self.estimator_params)
        model.n_features_in_ = self.n_features
        self._set_fitted(model, block, b)
        return model

    def present(self, A: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Which classes each coalition holds, shape (B, K)."""
        return (A @ self.class_counts) > 0


def masked_argmax(
    scores: NDArray[np.float64], present: NDArray[np.bool_], tie_tol: float
) -> tuple[NDArray[np.intp], NDArray[np.bool_]]:
    """``argmax`` over the last axis of ``scores`` (B, n_val, K) among present classes (B, K).

    Returns the class indices (B, n_val) and, per coalition, whether some validation
    point has its two best scores within ``tie_tol * (1 + |best|)``: rounding could
    then decide its class differently from scikit-learn, so that coalition is refit.
    Exact ties go to the first (smallest) class, as in scikit-learn's
    ``classes_[argmax]``.
    """
    masked = np.where(present[:, None, :], scores, -np.inf)
    top2 = -np.partition(-masked, 1, axis=2)[:, :, :2]
    near = top2[:, :, 0] - top2[:, :, 1] <= tie_tol * (1.0 + np.abs(top2[:, :, 0]))
    return masked.argmax(axis=2), near.any(axis=1)


def spd_solve(
    C: NDArray[np.float64],
    rhs: NDArray[np.float64],
    rcond: float,
    candidates: NDArray[np.bool_] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.float64]]:
    """Solve ``C x = rhs`` for a batch of symmetric positive semi-definite ``C`` (B, d, d).

    ``ok`` is false where ``C`` is numerically singular: its Cholesky factorisation fails
    or the ratio of its smallest to largest pivot (a lower bound on ``1 / cond(C)``) is
    at most ``rcond``. Solutions where ``ok`` is false are zero. Also returns the
    Cholesky pivots (B, d) (zero where the factorisation failed). ``candidates`` marks
    the matrices worth factorising (others are known singular, e.g. too few rows).
    """
    B = C.shape[0]
    pivots = np.zeros((B, C.shape[1]))
    idx = np.arange(B) if candidates is None else np.flatnonzero(candidates)
    try:
        pivots[idx] = np.diagonal(np.linalg.cholesky(C[idx]), axis1=1, axis2=2) ** 2
    except np.linalg.LinAlgError:
        for b in idx.tolist():
            try:
                pivots[b] = np.diagonal(np.linalg.cholesky(C[b])) ** 2
            except np.linalg.LinAlgError:
                pivots[b] = 0.0
    ok = pivots.min(axis=1) > rcond * pivots.max(axis=1)
    x = np.zeros(rhs.shape)
    if ok.any():
        x[ok] = np.linalg.solve(C[ok], rhs[ok])
    return x, ok, pivots
