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

The batched kernels run on a backend (:mod:`coopml.learning.fast._backend`): numpy by
default, or torch on a device (``device="cpu"``, ``"cuda"``) when torch is installed;
either way a block's results come back as numpy arrays.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from coopml.learning.fast._backend import Backend, NumpyBackend, get_backend

__all__ = [
    "FastBlock",
    "FastLearner",
    "StatisticsLearner",
    "masked_argmax",
    "membership",
    "spd_solve",
]

#: BLAS threads while a numpy-backend learner fits a block (``None``: the library's
#: default). The batched kernels are many small factorisations and thin matrix
#: products; on 2 cores a second BLAS thread made a whole LDA table (M = 18) cost 1.5x
#: the CPU time and, on a loaded machine, 3x the wall time, so one thread is the default
#: (parallelism comes from the executor's processes).
BLAS_THREADS: int | None = 1
_CONTROLLER: list[Any] = []


def blas_threads() -> AbstractContextManager[Any]:
    """Limit BLAS to :data:`BLAS_THREADS` threads (threadpoolctl, a scikit-learn
    dependency; the controller is built once per process, after numpy has loaded)."""
    if BLAS_THREADS is None:
        return nullcontext()
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0].limit(limits=BLAS_THREADS, user_api="blas")


def membership(masks: NDArray[np.int64], n_players: int) -> NDArray[np.float64]:
    """0/1 membership matrix of shape ``(len(masks), n_players)`` (player ``i`` is bit ``i``).

    Examples
    --------
    >>> membership(np.array([5, 2]), 3).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    from coopml._bitmask import decode_masks  # int64, or Python ints beyond 62 players

    return decode_masks(masks, n_players).astype(np.float64)


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
    device : str, optional
        Where the batched kernels run: ``None`` (the default, see
        :func:`~coopml.learning.fast.set_default_device`) or ``"numpy"`` for numpy, or
        a torch device (``"cpu"``, ``"cuda"``; needs torch) for the torch backend.
        Results agree across backends to rounding.
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
        device: str | None = None,
    ) -> None:
        self._setup(estimator, len(X_parts), int(X_val.shape[1]), device)
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

    def _setup(self, estimator: Any, n_players: int, n_features: int, device: str | None) -> None:
        """What every learner holds before any data: backend, estimator, sizes."""
        self.backend: Backend = get_backend(device)
        self.estimator_params = estimator.get_params(deep=False)
        self.estimator_class = type(estimator)
        self.n_players = n_players
        self.n_features = n_features
        self._configure()

    def _configure(self) -> None:  # noqa: B027 - optional hook, most learners read params
        """Read the estimator's parameters (no data); called by every constructor."""

    @classmethod
    def shell(cls, estimator: Any, n_features: int, classes: Any = None) -> Any:
        """A learner without data whose :meth:`estimator` rebuilds fitted models from a
        block's ``params`` (what a validation set's owner needs in parties custody).

        Examples
        --------
        >>> from coopml.learning.fast import FastLinearRegression
        >>> from sklearn.linear_model import Ridge
        >>> shell = FastLinearRegression.shell(Ridge(), 2)
        >>> block = FastBlock(np.ones(1, bool), np.zeros((1, 0)),
        ...                   {"coef": np.array([[1.0, 2.0]]), "intercept": np.array([0.5])})
        >>> shell.estimator(block, 0).predict(np.array([[1.0, 1.0]])).tolist()
        [3.5]
        """
        self = cls.__new__(cls)
        self._setup(estimator, 0, n_features, "numpy")
        if classes is not None:
            self.classes = np.asarray(classes)
        return self

    def center(self, n: float, sum_x: NDArray[np.float64], sum_y: float = 0.0) -> dict[str, Any]:
        """The shift applied to every party's rows before its statistics are taken: the
        grand mean of the features (``n`` rows summing to ``sum_x``). Moments about a
        nearby point lose little to cancellation; the models do not depend on it."""
        return {"x": np.asarray(sum_x, dtype=np.float64) / n}

    @classmethod
    def supports(cls, estimator: Any) -> bool:
        """Whether ``estimator`` (its exact class and parameters) is reproduced exactly."""
        return type(estimator) in cls.estimator_types and cls._supports_params(
            estimator.get_params(deep=False)
        )

    @classmethod
    @abstractmethod
    def _supports_params(cls, params: dict[str, Any]) -> bool: ...

    @classmethod
    def suits(cls, X_parts: Sequence[NDArray[np.float64]], y_parts: Sequence[NDArray[Any]]) -> bool:
        """Whether the batched fit is worth it on this data (default: always); a learner
        whose batches would need too much memory or time declines, and every coalition
        is then refit with scikit-learn."""
        return True

    def fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        """Fit the coalitions given by the rows of the membership matrix ``A`` (B, M).

        Classifiers are only given coalitions holding at least two classes. With the
        numpy backend, BLAS runs with :data:`BLAS_THREADS` threads meanwhile.
        """
        if self.backend.name != "numpy":
            return self._fit_block(A)
        with blas_threads():
            return self._fit_block(A)

    def _fit_block(self, A: NDArray[np.float64]) -> FastBlock:
        """The batched fit behind :meth:`fit_block`: implement this (or, as before,
        override :meth:`fit_block` itself, which then runs without the thread limit)."""
        raise NotImplementedError(
            f"{type(self).__name__} implements neither fit_block nor _fit_block"
        )

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


class StatisticsLearner(FastLearner):
    """A fast learner whose coalition models need only sums of per-party statistics.

    Each party's statistics come from :meth:`party_statistics` (a pure function of its
    own rows, the common :meth:`center` and the number of classes), so they can be
    computed where the rows live and summed elsewhere: :meth:`from_statistics` builds
    the learner from them (parties custody, :mod:`coopml.custody`), and ``__init__``
    computes them from rows in process. Both paths run the same kernels.
    """

    def _prepare(
        self,
        X_parts: Sequence[NDArray[np.float64]],
        y_parts: Sequence[NDArray[Any]],
        X_val: NDArray[np.float64],
    ) -> None:
        ys = (
            list(self.codes)
            if self.is_classifier
            else [np.asarray(y, dtype=np.float64) for y in y_parts]
        )
        n = float(sum(X.shape[0] for X in X_parts))
        sum_x = np.sum([X.sum(axis=0) for X in X_parts], axis=0)
        sum_y = 0.0 if self.is_classifier else float(sum(y.sum() for y in ys))
        self.shifts = self.center(n, sum_x, sum_y)
        K = self.classes.size if self.is_classifier else 0
        stats = [
            self.party_statistics(X, y, self.shifts, K) for X, y in zip(X_parts, ys, strict=True)
        ]
        self.load_statistics(stack_statistics(stats), X_val)

    @classmethod
    def from_statistics(
        cls,
        estimator: Any,
        statistics: Sequence[dict[str, NDArray[np.float64]]],
        center: dict[str, Any],
        *,
        classes: Any = None,
        X_val: NDArray[np.float64] | None = None,
        device: str | None = None,
    ) -> Any:
        """The learner built from each party's :meth:`party_statistics` (player order),
        taken about ``center``; without ``X_val`` its blocks carry no predictions.

        Examples
        --------
        >>> from coopml.learning.fast import FastGaussianNB
        >>> from sklearn.naive_bayes import GaussianNB
        >>> rng = np.random.default_rng(0)
        >>> X, y = rng.normal(size=(40, 2)), rng.integers(0, 2, 40)
        >>> c = {"x": X.mean(axis=0)}
        >>> stats = [FastGaussianNB.party_statistics(X[s], y[s], c, 2)
        ...          for s in (slice(0, 20), slice(20, 40))]
        >>> fast = FastGaussianNB.from_statistics(GaussianNB(), stats, c, classes=[0, 1])
        >>> model = fast.estimator(fast.fit_block(np.array([[1.0, 1.0]])), 0)
        >>> bool(np.allclose(model.theta_, GaussianNB().fit(X, y).theta_))
        True
        """
        n_features = int(np.asarray(center["x"]).shape[0])
        self = cls.__new__(cls)
        self._setup(estimator, len(statistics), n_features, device)
        stacked = stack_statistics(statistics)
        if self.is_classifier:
            self.classes = np.asarray(classes)
            self.class_counts = stacked["counts"]
        self.shifts = center
        self.X_val = np.empty((0, n_features)) if X_val is None else X_val
        self.load_statistics(stacked, self.X_val)
        return self

    @staticmethod
    @abstractmethod
    def party_statistics(
        X: NDArray[np.float64], y: NDArray[Any], center: dict[str, Any], n_classes: int
    ) -> dict[str, NDArray[np.float64]]:
        """One party's statistics from its rows ``X`` and targets ``y`` (class indices
        into the learner's ``classes`` for a classifier), about ``center``."""

    @abstractmethod
    def load_statistics(
        self, statistics: dict[str, NDArray[np.float64]], X_val: NDArray[np.float64]
    ) -> None:
        """Keep the stacked statistics (leading axis: players) for the batched fits."""


def stack_statistics(
    statistics: Sequence[dict[str, NDArray[np.float64]]],
) -> dict[str, NDArray[np.float64]]:
    """Stack the parties' statistics: one array per name, leading axis the parties.

    Examples
    --------
    >>> stack_statistics([{"n": np.array(2.0)}, {"n": np.array(3.0)}])["n"].tolist()
    [2.0, 3.0]
    """
    return {
        k: np.stack([np.asarray(s[k], dtype=np.float64) for s in statistics]) for k in statistics[0]
    }


def masked_argmax(
    scores: Any, present: Any, tie_tol: float, backend: Backend | None = None
) -> tuple[Any, Any]:
    """``argmax`` over the last axis of ``scores`` (B, n_val, K) among present classes (B, K).

    Returns the class indices (B, n_val) and, per coalition, whether some validation
    point has its two best scores within ``tie_tol * (1 + |best|)``: rounding could
    then decide its class differently from scikit-learn, so that coalition is refit.
    Exact ties go to the first (smallest) class, as in scikit-learn's
    ``classes_[argmax]``. Arrays are the ``backend``'s (default numpy).

    Examples
    --------
    >>> s = np.array([[[0.0, 1.0], [2.0, 2.0]]])
    >>> idx, tie = masked_argmax(s, np.array([[True, True]]), 1e-9)
    >>> idx.tolist(), tie.tolist()
    ([[1, 0]], [True])
    """
    be = backend or NumpyBackend()
    if scores.shape[-1] == 2 and bool(present.all()):  # binary: no masking, no partition
        s0, s1 = scores[..., 0], scores[..., 1]
        best = be.where(s1 > s0, s1, s0)
        near = be.abs(s1 - s0) <= tie_tol * (1.0 + be.abs(best))
        return (s1 > s0) * 1, near.any(axis=1)
    masked = be.where(present[:, None, :], scores, -np.inf)
    best, second = be.top2(masked)
    near = best - second <= tie_tol * (1.0 + be.abs(best))
    return be.argmax(masked, 2), near.any(axis=1)


def spd_solve(
    C: Any,
    rhs: Any,
    rcond: float,
    candidates: Any = None,
    backend: Backend | None = None,
) -> tuple[Any, Any, Any]:
    """Solve ``C x = rhs`` for a batch of symmetric positive semi-definite ``C`` (B, d, d).

    ``ok`` is false where ``C`` is numerically singular: its Cholesky factorisation fails
    or the ratio of its smallest to largest pivot (a lower bound on ``1 / cond(C)``) is
    at most ``rcond``. Solutions where ``ok`` is false are zero. Also returns the
    Cholesky pivots (B, d) (zero where the factorisation failed). ``candidates`` marks
    the matrices worth factorising (others are known singular, e.g. too few rows).
    Arrays are the ``backend``'s (default numpy).

    Examples
    --------
    >>> C = np.array([[[2.0, 0.0], [0.0, 4.0]], [[1.0, 1.0], [1.0, 1.0]]])
    >>> x, ok, _ = spd_solve(C, np.ones((2, 2, 1)), 1e-8)
    >>> x[:, :, 0].tolist(), ok.tolist()
    ([[0.5, 0.25], [0.0, 0.0]], [True, False])
    """
    be = backend or NumpyBackend()
    B = C.shape[0]
    if candidates is None or bool(candidates.all()):
        L, factored = be.cholesky(C)
    else:
        idx = be.flatnonzero(candidates)
        L = be.zeros(C.shape)
        factored = be.zeros(B, dtype=bool)
        if idx.shape[0]:
            L[idx], factored[idx] = be.cholesky(C[idx])
    pivots = be.diagonal(L) ** 2
    ok = factored & (be.amin(pivots, 1) > rcond * be.amax(pivots, 1))
    return be.cho_solve(L, C, rhs, ok), ok, pivots
