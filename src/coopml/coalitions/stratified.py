r"""Stratified sampling estimate of the Shapley value (strata: coalition sizes).

The Shapley value averages, over the sizes :math:`s = 0, \dots, n-1`, the mean marginal
contribution of player :math:`i` to coalitions of that size:

.. math::

    \varphi_i = \frac1n \sum_{s=0}^{n-1} \mu_{i,s}, \qquad
    \mu_{i,s} = \mathbb{E}_{S \subseteq N \setminus \{i\},\, |S| = s}
        \bigl[v(S \cup \{i\}) - v(S)\bigr].

Each stratum :math:`(i, s)` is estimated by the mean of :math:`m_{i,s}` marginals at
uniformly drawn coalitions of size :math:`s`, and

.. math::

    \hat\varphi_i = \frac1n \sum_s \hat\mu_{i,s}, \qquad
    \widehat{\operatorname{se}}(\hat\varphi_i) = \frac1n
        \Bigl(\sum_s \hat\sigma^2_{i,s} / m_{i,s}\Bigr)^{1/2}.

The strata :math:`s = 0` and :math:`s = n - 1` hold one coalition each and are
computed exactly (:math:`2n + 2` evaluations).

**Strata that the budget can fill.** With :math:`n` players there are :math:`n(n-2)`
sampled strata: 4,800 at 50 players, more than a budget of a few thousand evaluations
can visit. The sizes :math:`1, \dots, n-2` of each player are therefore grouped into
:math:`K` contiguous bins :math:`B_1, \dots, B_K`, and a sample of stratum
:math:`(i, b)` draws :math:`s` uniformly from :math:`B_b`, then a uniform coalition of
that size. Its sample mean :math:`\hat\mu_{i,b}` is unbiased for the bin's mean
:math:`\frac{1}{|B_b|}\sum_{s \in B_b} \mu_{i,s}`, so

.. math::

    \hat\varphi_i = \frac1n \Bigl(\mu_{i,0} + \mu_{i,n-1}
        + \sum_b |B_b|\, \hat\mu_{i,b}\Bigr)

is unbiased for any binning. :math:`K = n - 2` (one size a bin) unless the evaluation
budget of the stopping rule cannot give every stratum about 8 samples; then :math:`K`
is the largest number that can (``info["n_strata"]``); :math:`K = 1` is the plain
"random size" sampler of Castro et al. (2009).

**Allocation.** A pilot gives every stratum two samples. After it, samples go to the
strata equally (``allocation="equal"``, Maleki et al. 2013) or (``"neyman"``, the
default) half equally and half in proportion to :math:`|B_b|\tilde\sigma_{i,b}`, the
allocation that minimises the variance (Castro, Gómez, Molina & Tejada 2017). The
equal half is a *defensive* share: a stratum whose first samples happen to agree (a 0/1
game where the player was never pivotal) keeps receiving samples, so it cannot starve
at a wrong mean -- the bias that a pure adaptive Neyman allocation from two pilot
samples showed (estimates summing to 0.47 instead of 1 on a 51-player voting game).
The variances :math:`\tilde\sigma^2` are Agresti--Coull-adjusted
(:mod:`coopml.coalitions._sampling`), which also floors the allocation of strata with
no observed spread. The standard error is

.. math::

    \widehat{\operatorname{se}}(\hat\varphi_i) = \frac1n
        \Bigl(\sum_b |B_b|^2\, \tilde\sigma^2_{i,b} / m_{i,b}\Bigr)^{1/2}.

Unlike permutation sampling the estimate is not exactly efficient;
``info["efficiency_gap"]`` reports :math:`\sum_i \hat\varphi_i - (v(N) - v(\emptyset))`
and ``info["efficiency_gap_stderr"]`` its standard error (the players' strata are
sampled independently, so the variances add).

References
----------
S. Maleki, L. Tran-Thanh, G. Hines, T. Rahwan and A. Rogers, "Bounding the estimation
error of sampling-based Shapley value approximation", arXiv:1306.4265, 2013.
J. Castro, D. Gómez, E. Molina and J. Tejada, "Improving polynomial estimation of the
Shapley value by stratified random sampling with optimum allocation", Computers &
Operations Research 82, 2017, pp. 180-188.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import encode_members
from coopml._validation import RandomState, check_choice, check_int, check_random_state
from coopml.coalitions._sampling import (
    Batch,
    Evaluator,
    MomentsCheckpoint,
    adjusted_stderr,
    budgets,
    merge_moments,
    open_checkpoint,
    resolve_executor,
    resolve_source,
    resolve_stopping,
    run_sampler,
)
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction, default_stopping
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import StoppingRule

__all__ = ["random_coalitions", "stratified_shapley"]

#: Samples every stratum gets before the allocation adapts.
PILOT = 2
#: Samples per stratum that the default binning plans for within an evaluation budget.
PLANNED_SAMPLES = 8
#: Most rows (marginal samples) in one batch by default.
MAX_BATCH = 4096


def random_members(
    players: NDArray[np.intp], sizes: NDArray[np.intp], n_players: int, rng: np.random.Generator
) -> NDArray[np.bool_]:
    """Membership rows of uniform random coalitions of ``sizes[r]`` players.

    Row ``r`` never holds ``players[r]``.
    """
    keys = rng.random((players.size, n_players))
    keys[np.arange(players.size), players] = 2.0  # never among the first |S|
    ranks = keys.argsort(axis=1).argsort(axis=1)
    return np.asarray(ranks < sizes[:, None])


def random_coalitions(
    players: NDArray[np.intp], sizes: NDArray[np.intp], n_players: int, rng: np.random.Generator
) -> NDArray[Any]:
    """Bitmasks of uniform random coalitions of ``sizes[r]`` players, none holding ``players[r]``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> masks = random_coalitions(np.array([0, 2]), np.array([2, 1]), 3, rng)
    >>> masks.tolist()[0], int(masks[1]).bit_count(), int(masks[1]) & 4
    (6, 1, 0)
    """
    return encode_members(random_members(players, sizes, n_players, rng))


def stratified_shapley(
    value_fn_or_utility: ValueFunction | MaskUtility,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    allocation: Literal["neyman", "equal"] = "neyman",
    n_strata: int | None = None,
    batch_size: int | None = None,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> ValuationResult:
    """Estimate Shapley values by stratified sampling over coalition sizes.

    Parameters
    ----------
    value_fn_or_utility : callable or utility
        ``value_fn(frozenset) -> float`` with ``n_players``, or an object with
        ``n_players``, ``names`` and ``evaluate_masks`` (any number of players).
    n_players : int, optional
        Required with a callable.
    stopping : StoppingRule, optional
        Checked after each batch; default :func:`~coopml.coalitions.monte_carlo.default_stopping`.
        ``MaxPermutations(k)`` counts ``n`` marginal samples as one permutation. Budgets
        are never overrun; an evaluation budget below what the exact strata and the
        pilot need (``2n + 2 + 4n``) is refused.
    allocation : {"neyman", "equal"}
        How samples are spread over the strata after the pilot (module docstring).
    n_strata : int, optional
        Size bins per player, ``1 .. n - 2``; default ``n - 2`` or what the
        evaluation budget can fill (module docstring).
    batch_size : int, optional
        Marginal samples per batch; default two per stratum, at least 64 and at most
        4,096.
    executor : {"serial", "joblib", "ray"} or Executor
        Where each batch's new coalitions are evaluated; results do not depend on it.
    n_jobs : int, optional
        Workers of a parallel executor (``n_jobs > 1`` with ``"serial"``: joblib).
    random_state : int, Generator or None
    names : sequence of str, optional
    cache_dir : path, optional
        Checkpoint the run there, to resume after an interruption with exactly the
        result of an uninterrupted run (as :func:`~coopml.coalitions.monte_carlo_shapley`).
    progress : callable, optional
        ``progress(done, total)`` after every batch (as
        :func:`~coopml.coalitions.monte_carlo_shapley`).

    Returns
    -------
    ValuationResult
        ``method="stratified_shapley"`` with ``stderr``, ``converged``,
        ``n_evaluations`` (distinct coalitions) and ``info`` (``n_samples`` marginals,
        ``n_strata``, ``stopped_by``, ``allocation``, ``efficiency_gap``,
        ``efficiency_gap_stderr``, ``n_failures``, ``failures``).

    Examples
    --------
    >>> from coopml.coalitions.stopping import MaxPermutations
    >>> glove = lambda s: float(min(len(s & {0}), len(s & {1, 2})))  # exact: 2/3, 1/6, 1/6
    >>> r = stratified_shapley(glove, 3, stopping=MaxPermutations(400), random_state=0)
    >>> bool(np.all(np.abs(r.values - [2 / 3, 1 / 6, 1 / 6]) <= 4 * r.stderr + 1e-12))
    True
    >>> float(r.values[0]), float(r.stderr[0])  # player 0's strata are all exact
    (0.6666666666666666, 0.0)
    """
    is_utility, n, names = resolve_source(value_fn_or_utility, n_players, names)
    rule = resolve_stopping(default_stopping() if stopping is None else stopping, n)
    allocation = check_choice("allocation", allocation, ("neyman", "equal"))  # type: ignore[assignment]
    limits = budgets(rule)
    n_exact = 2 * n + 2 if n > 1 else 2
    if n_strata is not None:
        n_strata = check_int("n_strata", n_strata, minimum=1, maximum=max(n - 2, 1))
    if limits.evaluations is not None and n > 2:
        need = n_exact + 2 * PILOT * n * (n_strata or 1)
        if limits.evaluations.limit < need:
            raise ValueError(
                f"parameter 'stopping' allows {limits.evaluations.limit} evaluations; "
                f"stratified_shapley needs at least {need} for {n} players (the exact strata "
                "and a pilot of every stratum); raise the budget or use monte_carlo_shapley"
            )
    k = _default_strata(n, limits, n_exact) if n_strata is None else n_strata
    default_batch = min(MAX_BATCH, max(64, PILOT * n * k))
    batch = check_int("batch_size", default_batch if batch_size is None else batch_size, minimum=1)
    rng = check_random_state(random_state)
    evaluate = Evaluator(value_fn_or_utility, is_utility, n, resolve_executor(executor, n_jobs))
    params = {"n": n, "stopping": str(rule), "allocation": allocation, "k": k, "batch": batch}
    checkpoint = open_checkpoint(
        cache_dir, value_fn_or_utility, "stratified_shapley", params, random_state, evaluate
    )
    eye = np.eye(n, dtype=bool)
    empty, grand = encode_members(np.zeros((1, n), bool)), encode_members(np.ones((1, n), bool))
    values_empty, values_grand = evaluate(empty)[0], evaluate(grand)[0]
    singles = evaluate(encode_members(eye)) - values_empty  # s = 0
    lasts = values_grand - evaluate(encode_members(~eye))  # s = n - 1
    sampler = _StrataSampler(n, max(k, 1), rng, batch, allocation, singles, lasts)
    run = run_sampler(
        sampler,
        evaluate,
        rule,
        max_batches=None if n > 2 else 0,
        progress=progress,
        checkpoint=checkpoint,
    )
    estimate, stderr, _ = sampler.state()
    gap = float(estimate.sum() - (values_grand - values_empty))
    fired = run.fired
    return ValuationResult(
        values=estimate,
        names=names,
        method="stratified_shapley",
        stderr=stderr,
        converged=True if n <= 2 else fired is not None and fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_samples": run.n_rows,
            "n_strata": k if n > 2 else 0,
            "stopped_by": "exact (n <= 2)" if n <= 2 else str(fired),
            "allocation": allocation,
            "efficiency_gap": gap,
            "efficiency_gap_stderr": float(np.sqrt(np.sum(stderr**2))),
            **evaluate.failure_info(),
            **({} if checkpoint is None else {"resumed": run.resumed}),
        },
    )


def _default_strata(n: int, limits: Any, n_exact: int) -> int:
    """Bins per player: one size each unless the budget cannot give each ~8 samples."""
    if n <= 2:
        return 0
    planned = PLANNED_SAMPLES * n
    if limits.evaluations is not None:
        k = (limits.evaluations.limit - n_exact) // 2 // planned
    elif limits.permutations is not None:
        k = limits.permutations.limit * n // planned
    else:
        return n - 2
    return int(np.clip(k, 1, n - 2))


class _StrataSampler(MomentsCheckpoint):
    """Marginal samples of strata (player, size bin), pilot first, then allocated."""

    def __init__(
        self,
        n: int,
        k: int,
        rng: np.random.Generator,
        batch: int,
        allocation: str,
        singles: NDArray[np.float64],
        lasts: NDArray[np.float64],
    ) -> None:
        self.n, self.k, self.rng, self.batch, self.allocation = n, k, rng, batch, allocation
        bins = np.array_split(np.arange(1, max(n - 1, 2)), k)
        self.first = np.array([b[0] for b in bins])
        self.width = np.array([b.size for b in bins], dtype=np.float64)
        self.singles, self.lasts = singles, lasts
        self.count, self.mean, self.m2 = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
        both = np.concatenate([singles, lasts])
        self.low, self.high = float(both.min()), float(both.max())

    def propose(self) -> Batch:
        n, k, rng = self.n, self.k, self.rng
        short = np.maximum(PILOT - self.count.ravel(), 0).astype(np.int64)
        if short.sum():  # the pilot, in random order of strata, at most a batch
            per = short
        elif self.allocation == "equal":
            per = np.full(n * k, max(1, self.batch // (n * k)))
        else:
            sd = (self.stderrs() * np.sqrt(self.count)).ravel() * np.tile(self.width, n)
            neyman = sd / sd.sum() if sd.sum() > 0 else np.full(n * k, 1.0 / (n * k))
            per = rng.multinomial(self.batch, 0.5 / (n * k) + 0.5 * neyman)
        flat = rng.permutation(np.repeat(np.arange(n * k), per))[: self.batch]
        players, bins = np.divmod(flat, k)
        sizes = self.first[bins] + (rng.random(flat.size) * self.width[bins]).astype(np.int64)
        without = random_members(players, sizes, n, rng)
        with_i = without.copy()
        with_i[np.arange(flat.size), players] = True
        masks = np.stack([encode_members(with_i), encode_members(without)], axis=1)
        return Batch(masks, {"flat": flat}, units=1.0 / n)

    def update(self, batch: Batch, values: NDArray[np.float64]) -> None:
        marginal = values[:, 0] - values[:, 1]
        self.low, self.high = min(self.low, marginal.min()), max(self.high, marginal.max())
        merge_moments(self.count, self.mean, self.m2, batch.data["flat"], marginal)

    def stderrs(self) -> NDArray[np.float64]:
        return adjusted_stderr(self.count, self.mean, self.m2, self.low, self.high)

    def state(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        sampled = (self.mean * self.width).sum(axis=1) if self.n > 2 else 0.0
        estimate = (self.singles + self.lasts * (self.n > 1) + sampled) / self.n
        if self.n <= 2:
            return estimate, np.zeros(self.n), 0
        stderr = np.sqrt(((self.stderrs() * self.width) ** 2).sum(axis=1)) / self.n
        return estimate, stderr, int(self.count.min())
