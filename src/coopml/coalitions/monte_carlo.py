r"""Monte Carlo estimate of the Shapley value by permutation sampling.

The Shapley value of player :math:`i` in a game :math:`v` on players
:math:`N = \{0, \dots, n-1\}` is the expected marginal contribution of :math:`i` to the
players preceding it in a uniformly random ordering :math:`\pi`:

.. math::

    \varphi_i = \mathbb{E}_\pi\left[v(P_i^\pi \cup \{i\}) - v(P_i^\pi)\right],
    \qquad P_i^\pi = \{j : \pi^{-1}(j) < \pi^{-1}(i)\}.

Castro, Gómez & Tejada ("Polynomial calculation of the Shapley value based on
sampling", Computers & Operations Research 36(5), 2009) estimate it by the sample mean
over :math:`m` random permutations: one permutation yields the marginal
:math:`v(\pi_{\le k}) - v(\pi_{<k})` of every player :math:`\pi_k` from :math:`n + 1`
coalition values. The estimate is unbiased, and its standard error is the sample
standard deviation over :math:`\sqrt{m}`.

**Antithetic permutations.** Each sample is the pair :math:`(\pi, \bar\pi)` with
:math:`\bar\pi` the reversed ordering, and the pair's average marginal is one i.i.d.
sample, so standard errors are computed over pairs (:math:`m` = number of pairs).
A player early in :math:`\pi` is late in :math:`\bar\pi`; for monotone games with
decreasing returns the two marginals are negatively correlated and the variance drops
(Mitchell, Cooper, Frank & Holmes, "Sampling permutations for Shapley value estimation",
JMLR 23, 2022; see Maleki et al., "Bounding the estimation error of sampling-based
Shapley value approximation", 2013, for the related stratified estimators).

**Efficiency.** Every permutation's marginals telescope to :math:`v(N) - v(\varnothing)`,
so the estimate is exactly efficient; this is checked on every result.

**Cost.** Coalition values are memoised within a call, so each distinct coalition is
evaluated once (``n_evaluations`` counts distinct evaluations), and the new coalitions
of a batch of permutations are evaluated together: one ``evaluate_masks`` call per batch
(per worker with a parallel executor), so batched learners get batched work.

**Reproducibility.** Batch :math:`b` draws its permutations from the :math:`b`-th
generator spawned from ``random_state`` (:class:`numpy.random.SeedSequence`); workers
only evaluate coalitions, so the result does not depend on the executor.

**Standard errors** are Agresti--Coull-adjusted (see :mod:`coopml.coalitions._sampling`):
a player never pivotal in the sample still gets the uncertainty the sample leaves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._bitmask import MAX_MASK_PLAYERS
from coopml._validation import RandomState, check_int, check_random_state
from coopml.coalitions._sampling import (
    Batch,
    Evaluator,
    adjusted_stderr,
    evaluate_chunk,
    open_checkpoint,
    resolve_executor,
    resolve_source,
    resolve_stopping,
    run_sampler,
)
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import MaxPermutations, StandardErrorBelow, StoppingRule

__all__ = ["MaskUtility", "default_stopping", "monte_carlo_shapley", "permutation_marginals"]

ValueFunction = Callable[[frozenset[int]], float]


class MaskUtility(Protocol):
    """A coalition utility evaluated on many bitmasks at once (player ``i`` is bit ``i``)."""

    @property
    def n_players(self) -> int: ...

    @property
    def names(self) -> tuple[str, ...]: ...

    def evaluate_masks(self, masks: NDArray[np.int64]) -> NDArray[np.float64]: ...


def default_stopping() -> StoppingRule:
    """The default rule of :func:`monte_carlo_shapley`.

    ``MaxPermutations(2000) | StandardErrorBelow(0.01, relative_to="max")``: stop when
    every standard error is at most 1% of the largest estimated value (converged), or
    after 2,000 permutations (1,000 antithetic pairs; not converged).

    Examples
    --------
    >>> default_stopping()
    MaxPermutations(2000) | StandardErrorBelow(0.01, relative_to='max')
    """
    return MaxPermutations(2000) | StandardErrorBelow(0.01, relative_to="max")


def monte_carlo_shapley(
    value_fn_or_utility: ValueFunction | MaskUtility,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    antithetic: bool = True,
    batch_size: int | None = None,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> ValuationResult:
    """Estimate Shapley values by sampling permutations (Castro et al. 2009).

    Parameters
    ----------
    value_fn_or_utility : callable or utility
        Either ``value_fn(frozenset_of_player_indices) -> float``, or an object with
        ``n_players``, ``names`` and ``evaluate_masks(masks) -> ndarray[float64]``
        taking bitmasks (``int64`` up to 62 players, Python integers beyond), such as a
        :class:`~coopml.learning.CoalitionUtility`. Any number of players.
    n_players : int, optional
        Number of players; required with a callable, must match a utility's.
    stopping : StoppingRule, optional
        Checked after every batch; default :func:`default_stopping`. It must contain a
        budget (``MaxPermutations``, ``MaxTime``, or a ``MaxEvaluations`` of at most
        ``2**n_players``) so that it surely fires. Budgets in evaluations and
        permutations are never overrun: the last batch is cut to fit. Your rule object
        is not modified.
    antithetic : bool
        Sample pairs of a permutation and its reverse; a pair is one sample.
    batch_size : int, optional
        Samples (permutations, or pairs) per batch; default about 256 coalitions per
        batch, ``max(1, 256 // (n_players * (2 if antithetic else 1)))``. Results depend
        on it, not on the executor.
    executor : {"serial", "joblib", "ray"} or Executor
        Where each batch's new coalitions are evaluated (the callable or utility must be
        picklable for parallel executors); worth it only for slow evaluations.
    n_jobs : int, optional
        Workers of a parallel executor (default all cores); ``n_jobs > 1`` or ``-1`` with
        ``executor="serial"`` means local joblib workers.
    random_state : int, numpy.random.Generator or None
        Seed of the permutations.
    names : sequence of str, optional
        Player names; default the utility's names, or ``"0", "1", ...``.
    cache_dir : path, optional
        Checkpoint the run there (a utility with ``fingerprint()`` and a seeded
        ``random_state`` are needed), so an interrupted run resumes where it stopped and
        gives exactly the result of an uninterrupted one; see
        :mod:`coopml.coalitions._sampling`.
    progress : callable, optional
        Called as ``progress(done, total)`` after every batch with the progress of the
        nearest budget (evaluations, permutations or seconds); see
        :mod:`coopml.coalitions._sampling`.

    Returns
    -------
    ValuationResult
        ``method="monte_carlo_shapley"``, ``values`` and ``stderr`` of shape
        ``(n_players,)`` (Agresti--Coull-adjusted, never 0 for an estimated value: see
        :mod:`coopml.coalitions._sampling`), ``converged`` (a convergence rule fired),
        ``n_evaluations`` (distinct coalitions evaluated) and ``info`` with
        ``n_permutations``, ``n_samples``, ``stopped_by`` (the part of the rule that
        fired), ``antithetic``, ``n_failures`` and ``failures`` (substituted fits of a
        utility, from every worker).

    Examples
    --------
    >>> from coopml.coalitions.monte_carlo import monte_carlo_shapley
    >>> from coopml.coalitions.stopping import MaxPermutations
    >>> glove = lambda s: float(min(len(s & {0}), len(s & {1, 2})))  # exact: 2/3, 1/6, 1/6
    >>> r = monte_carlo_shapley(glove, 3, stopping=MaxPermutations(400), random_state=0)
    >>> r.values.round(2).tolist(), float(r.values.sum()), r.converged
    ([0.65, 0.17, 0.18], 1.0, False)
    >>> r.info["stopped_by"], r.info["n_permutations"], r.n_evaluations
    ('MaxPermutations(400)', 400, 8)
    """
    source = value_fn_or_utility
    is_utility, n, names = resolve_source(source, n_players, names)
    rule = resolve_stopping(default_stopping() if stopping is None else stopping, n)
    if not isinstance(antithetic, bool | np.bool_):
        raise TypeError(f"parameter 'antithetic' must be a bool; got {antithetic!r}")
    pairs = 2 if antithetic else 1
    if batch_size is None:
        batch_size = max(1, 256 // (n * pairs))
    batch_size = check_int("batch_size", batch_size, minimum=1)
    evaluate = Evaluator(source, is_utility, n, resolve_executor(executor, n_jobs))
    params = {"n": n, "stopping": str(rule), "antithetic": bool(antithetic), "batch": batch_size}
    checkpoint = open_checkpoint(
        cache_dir, source, "monte_carlo_shapley", params, random_state, evaluate
    )
    sampler = _PermutationSampler(n, check_random_state(random_state), batch_size, bool(antithetic))
    run = run_sampler(sampler, evaluate, rule, progress=progress, checkpoint=checkpoint)
    values, stderr, count = sampler.state()
    full = (1 << n) - 1
    total = evaluate.cache[full] - evaluate.cache[0] if count else 0.0
    scale = max(1.0, max((abs(v) for v in evaluate.cache.values()), default=0.0))
    if count and abs(float(values.sum()) - total) > 1e-9 * scale:  # pragma: no cover
        raise RuntimeError(
            f"efficiency check failed: estimates sum to {values.sum()!r}, v(N) - v(∅) = {total!r}"
        )
    fired = run.fired
    return ValuationResult(
        values=values,
        names=names,
        method="monte_carlo_shapley",
        stderr=stderr,
        converged=fired is not None and fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_permutations": count * pairs,
            "n_samples": count,
            "stopped_by": str(fired),
            "antithetic": bool(antithetic),
            **evaluate.failure_info(),
            **({} if checkpoint is None else {"resumed": run.resumed}),
        },
    )


class _PermutationSampler:
    """Rows of (antithetic pairs of) permutations; a row's masks are its prefixes."""

    def __init__(
        self, n: int, root: np.random.Generator, batch_size: int, antithetic: bool
    ) -> None:
        self.n, self.root, self.batch_size, self.antithetic = n, root, batch_size, antithetic
        self.count, self.mean, self.m2 = 0, np.zeros(n), np.zeros(n)
        self.low, self.high = np.inf, -np.inf

    def propose(self) -> Batch:
        generator = self.root.spawn(1)[0]  # batch b uses the b-th child stream
        perms = generator.permuted(np.tile(np.arange(self.n), (self.batch_size, 1)), axis=1)
        masks = _prefix_masks(perms)
        if self.antithetic:
            masks = np.concatenate([masks, _prefix_masks(perms[:, ::-1].copy())], axis=1)
        return Batch(masks, {"perms": perms}, units=2.0 if self.antithetic else 1.0)

    def update(self, batch: Batch, values: NDArray[np.float64]) -> None:
        perms, width = batch.data["perms"], self.n + 1
        samples = _marginals(perms, values[:, :width])
        if self.antithetic:
            samples = (samples + _marginals(perms[:, ::-1], values[:, width:])) / 2
        self.low = min(self.low, float(samples.min()))
        self.high = max(self.high, float(samples.max()))
        self.count, self.mean, self.m2 = _merge(self.count, self.mean, self.m2, samples)

    def _spawned(self) -> int:
        """Children spawned from the root's seed sequence: batch ``b`` used child ``b``."""
        return int(getattr(self.root.bit_generator.seed_seq, "n_children_spawned", 0))

    def save_state(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        meta = {"count": self.count, "low": self.low, "high": self.high}
        return {"mean": self.mean.copy(), "m2": self.m2.copy()}, meta | {"spawned": self._spawned()}

    def load_state(self, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]) -> None:
        self.mean, self.m2 = arrays["mean"], arrays["m2"]
        self.count, self.low, self.high = meta["count"], meta["low"], meta["high"]
        behind = meta["spawned"] - self._spawned()
        if behind > 0:  # advance to the next batch's stream
            self.root.spawn(behind)

    def state(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        count = np.full(self.n, float(self.count))
        return (
            self.mean,
            adjusted_stderr(count, self.mean, self.m2, self.low, self.high),
            self.count,
        )


def permutation_marginals(
    value_fn: ValueFunction, n_players: int, permutations: ArrayLike
) -> NDArray[np.float64]:
    """Marginal contribution of every player in each permutation (the sampling kernel).

    Each distinct coalition is evaluated once.

    Parameters
    ----------
    value_fn : callable
        ``value_fn(frozenset_of_player_indices) -> float``.
    n_players : int
        Number of players ``n``.
    permutations : array-like of int, shape (m, n)
        Each row an ordering of ``0, ..., n - 1``.

    Returns
    -------
    ndarray of shape (m, n)
        Entry ``[r, i]`` is ``v(P ∪ {i}) - v(P)`` with ``P`` the players before ``i``
        in row ``r``; every row sums to ``v(N) - v(∅)``.

    Examples
    --------
    >>> from coopml.coalitions.monte_carlo import permutation_marginals
    >>> permutation_marginals(lambda s: float(len(s) ** 2), 3, [[2, 0, 1], [0, 1, 2]])
    array([[3., 5., 1.],
           [1., 3., 5.]])
    """
    n = check_int("n_players", n_players, minimum=1)
    perms = np.asarray(permutations)
    if (
        perms.ndim != 2
        or perms.shape[1] != n
        or not np.issubdtype(perms.dtype, np.integer)
        or not np.array_equal(np.sort(perms, axis=1), np.broadcast_to(np.arange(n), perms.shape))
    ):
        raise ValueError(
            f"parameter 'permutations' must be an integer array of shape (m, {n}) whose rows "
            f"are orderings of 0..{n - 1}; got shape {perms.shape}, dtype {perms.dtype}"
        )
    perms = perms.astype(np.int64)

    def evaluate(masks: list[int]) -> NDArray[np.float64]:
        return evaluate_chunk(value_fn, False, n, masks)[0]

    return _marginals(perms, _prefix_values(_prefix_masks(perms), {}, evaluate))


def _prefix_masks(perms: NDArray[np.int64]) -> NDArray[Any]:
    """Bitmasks of the ``n + 1`` prefixes of each permutation, shape (m, n + 1).

    ``int64`` up to 62 players, Python integers (object array) beyond.
    """
    m, n = perms.shape
    if n <= MAX_MASK_PLAYERS:
        bits = np.left_shift(np.int64(1), perms)
    else:
        bits = np.left_shift(np.ones(1, dtype=object), perms.astype(object))
    masks = np.zeros((m, n + 1), dtype=bits.dtype)
    masks[:, 1:] = np.cumsum(bits, axis=1)
    return masks


def _prefix_values(
    masks: NDArray[Any],
    cache: dict[int, float],
    evaluate: Callable[[list[int]], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Values of ``masks``, evaluating (once, together) those not yet in ``cache``."""
    unique, inverse = np.unique(masks.ravel(), return_inverse=True)
    keys = unique.tolist()
    new = [k for k in keys if k not in cache]
    if new:
        cache.update(zip(new, evaluate(new).tolist(), strict=True))
    values = np.array([cache[k] for k in keys], dtype=float)
    return values[inverse.ravel()].reshape(masks.shape)


def _marginals(perms: NDArray[np.int64], prefix_values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scatter the prefix differences ``v(π_{≤k}) - v(π_{<k})`` to players ``π_k``."""
    out = np.empty(perms.shape)
    np.put_along_axis(out, perms, np.diff(prefix_values, axis=1), axis=1)
    return out


def _merge(
    count: int, mean: NDArray[np.float64], m2: NDArray[np.float64], x: NDArray[np.float64]
) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]:
    """Add the rows of ``x`` to running (count, mean, sum of squared deviations) (Chan et al.)."""
    k = x.shape[0]
    x_mean = x.mean(axis=0)
    total = count + k
    delta = x_mean - mean
    mean = mean + delta * (k / total)
    m2 = m2 + ((x - x_mean) ** 2).sum(axis=0) + delta**2 * (count * k / total)
    return total, mean, m2
