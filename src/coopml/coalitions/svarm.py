r"""Stratified SVARM: Shapley values without marginal contributions.

Kolpaczki, Bengs, Muschalik & Hüllermeier ("Approximating the Shapley value without
marginal contributions", AAAI 2024) write the Shapley value of player :math:`i` in a
game :math:`v` on :math:`n` players as a difference of per-size means of coalition
values,

.. math::

    \varphi_i = \frac1n \sum_{\ell=0}^{n-1} \bigl(\varphi^+_{i,\ell} - \varphi^-_{i,\ell}\bigr),

with :math:`\varphi^+_{i,\ell}` the mean of :math:`v(A)` over the coalitions
:math:`A \ni i` of size :math:`\ell + 1` and :math:`\varphi^-_{i,\ell}` the mean over
:math:`A \not\ni i` of size :math:`\ell`. A single evaluation of a coalition :math:`A`
of size :math:`s` is then a sample of a stratum of *every* player: of
:math:`\varphi^+_{i,s-1}` for its members and of :math:`\varphi^-_{i,s}` for the others.
Permutation sampling uses each evaluation for two marginals, stratified marginal sampling
(:func:`~coopml.coalitions.stratified.stratified_shapley`) for half of one.

The estimator, as implemented here (a reconstruction from the paper):

1. **Exact strata.** The coalitions of sizes 0, 1, n-1 and n (:math:`2n + 2`
   evaluations) determine the strata :math:`\varphi^+_{i,0}, \varphi^+_{i,n-2},
   \varphi^+_{i,n-1}` and :math:`\varphi^-_{i,0}, \varphi^-_{i,1}, \varphi^-_{i,n-1}`
   exactly; these hold the largest, most variable marginals of learning curves.
2. **Warm-up.** For every size :math:`s \in [2, n-2]`, a random permutation is cut into
   blocks of :math:`k = \min(s, n-s)` players (the last block filled up from the end);
   the blocks (:math:`k = s`) or their complements (:math:`k = n - s`) are coalitions of
   size :math:`s` that give every player a ``+`` and a ``-`` sample of size :math:`s`.
   Two rounds give every sampled stratum at least two samples, so standard errors are
   defined from the end of the warm-up on (they are NaN before).
3. **Sampling.** Sizes :math:`s \in [2, n-2]` are drawn with probability proportional
   to :math:`1/s + 1/(n-s)` (a smooth form of the paper's distribution, which puts
   more mass on small and large coalitions, whose strata are shared by fewer
   coalitions), then a coalition uniformly among those of size :math:`s`.

Each stratum mean is a sample mean, so :math:`\hat\varphi_i` is unbiased once every
stratum has a sample, and its standard error is derived from the per-stratum sample
variances,

.. math::

    \widehat{\operatorname{se}}(\hat\varphi_i) = \frac1n \Bigl(\sum_\ell
        \hat\sigma^{2}_{+,i,\ell} / m^+_{i,\ell}
        + \hat\sigma^{2}_{-,i,\ell} / m^-_{i,\ell}\Bigr)^{1/2}

(exact strata contribute nothing). A coalition is a sample of exactly one stratum of
each player, so the strata of one player are estimated from disjoint sets of samples;
the formula ignores the weak dependence between the blocks of one warm-up permutation.
The estimate is not exactly efficient; ``info["efficiency_gap"]`` reports
:math:`\sum_i \hat\varphi_i - (v(N) - v(\varnothing))`.

Coalitions are memoised (``n_evaluations`` counts distinct coalitions); each batch's
new coalitions are evaluated together (one ``evaluate_masks`` call for a utility).
Utilities take ``int64`` bitmasks (at most 62 players); a callable
``value_fn(frozenset) -> float`` may have any number of players (Python-integer
bitmasks beyond 62).

References
----------
P. Kolpaczki, V. Bengs, M. Muschalik and E. Hüllermeier, "Approximating the Shapley
value without marginal contributions", AAAI 2024, pp. 13246-13255.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._validation import RandomState, check_int, check_random_state
from coopml.coalitions._sampling import (
    MAX_MASK_PLAYERS,
    MemoEvaluator,
    evaluate_chunk,
    resolve_source,
    resolve_stopping,
)
from coopml.coalitions.executors import Executor, get_executor
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import (
    MaxPermutations,
    SamplerState,
    StandardErrorBelow,
    StoppingRule,
)
from coopml.coalitions.stratified import _merge_strata

__all__ = ["default_svarm_stopping", "svarm_shapley"]

#: Warm-up rounds: every sampled stratum gets at least this many samples first.
WARM_UP_ROUNDS = 2


def default_svarm_stopping() -> StoppingRule:
    """``MaxPermutations(100000) | StandardErrorBelow(0.01, relative_to="max")``.

    For SVARM a budget in permutations counts drawn coalitions (exact, warm-up and
    sampled, repeats included), as for :func:`~coopml.coalitions.msr_banzhaf.msr_banzhaf`.

    Examples
    --------
    >>> default_svarm_stopping()
    MaxPermutations(100000) | StandardErrorBelow(0.01, relative_to='max')
    """
    return MaxPermutations(100_000) | StandardErrorBelow(0.01, relative_to="max")


class _GameUtility:
    """A :class:`CoalitionGame` as a mask utility (table look-ups)."""

    def __init__(self, game: CoalitionGame) -> None:
        self.game = game

    @property
    def n_players(self) -> int:
        return self.game.n_players

    @property
    def names(self) -> tuple[str, ...]:
        return self.game.names

    def evaluate_masks(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.asarray(self.game.table[np.asarray(masks, dtype=np.int64)], dtype=np.float64)


def svarm_shapley(
    value_fn_or_utility: ValueFunction | MaskUtility | CoalitionGame,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    batch_size: int = 256,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
) -> ValuationResult:
    """Estimate Shapley values by stratified SVARM (Kolpaczki et al., AAAI 2024).

    Parameters
    ----------
    value_fn_or_utility : callable, utility or CoalitionGame
        ``value_fn(frozenset_of_player_indices) -> float`` with ``n_players`` (any
        number of players), an object with ``n_players``, ``names`` and
        ``evaluate_masks(int64 masks) -> float64`` (at most 62 players), such as a
        :class:`~coopml.learning.CoalitionUtility`, or a
        :class:`~coopml.coalitions.CoalitionGame` (its table is read).
    n_players : int, optional
        Required with a callable; must match a utility's.
    stopping : StoppingRule, optional
        Checked after every batch (the warm-up included); default
        :func:`default_svarm_stopping`. It must contain a budget. ``MaxPermutations(k)``
        counts drawn coalitions; ``n_samples`` seen by the rule is the smallest sample
        count of a sampled stratum (so ``StandardErrorBelow``'s ``min_samples`` asks
        every stratum for that many samples). Your rule object is not modified.
    batch_size : int
        Coalitions drawn per batch (evaluated together). Budgets may be overrun by less
        than one batch; results depend on it.
    executor : {"serial", "joblib", "ray"} or Executor
        Where each batch's new coalitions are evaluated (split into one chunk per
        worker; the callable or utility must be picklable for parallel executors).
        All sampling happens in this process, so results do not depend on it.
    n_jobs : int, optional
        Worker count for parallel executors (default: all cores).
    random_state : int, numpy.random.Generator or None
        Seed of the permutations, sizes and coalitions.
    names : sequence of str, optional
        Player names; default the utility's names, or ``"0", "1", ...``.

    Returns
    -------
    ValuationResult
        ``method="svarm_shapley"``, ``values`` and ``stderr`` (NaN until the warm-up
        ends; zero for ``n <= 3``, where every stratum is exact), ``converged`` (a
        convergence rule fired, or ``n <= 3``), ``n_evaluations`` (distinct coalitions)
        and ``info`` with ``n_coalitions`` (drawn, repeats included), ``warm_up_done``,
        ``stopped_by`` and ``efficiency_gap``.

    Examples
    --------
    >>> from coopml.coalitions.games import airport_game
    >>> from coopml.coalitions.stopping import MaxPermutations
    >>> game = airport_game(np.arange(1.0, 9.0))  # 8 players, exact values known
    >>> r = svarm_shapley(game, stopping=MaxPermutations(2000), random_state=0)
    >>> r.n_evaluations, r.converged, r.info["stopped_by"]
    (255, False, 'MaxPermutations(2000)')
    >>> bool(np.all(np.abs(r.values - game.shapley().values) < 4 * r.stderr + 1e-12))
    True
    >>> glove = lambda s: float(min(len(s & {0}), len(s & {1, 2})))  # 3 players: exact
    >>> svarm_shapley(glove, 3).values.round(4).tolist()
    [0.6667, 0.1667, 0.1667]
    """
    if isinstance(value_fn_or_utility, CoalitionGame):
        source: Any = _GameUtility(value_fn_or_utility)
    else:
        source = value_fn_or_utility
    is_utility, n, names = resolve_source(source, n_players, names, max_callable_players=None)
    rule = resolve_stopping(default_svarm_stopping() if stopping is None else stopping, n)
    batch = check_int("batch_size", batch_size, minimum=1)
    rng = check_random_state(random_state)
    evaluate = _ExecutorMemo(source, is_utility, n, get_executor(executor, n_jobs))
    to_masks = _mask_encoder(n)

    # Strata [side, player, ell]; side 0: phi^+ (size ell + 1, with i), 1: phi^- (size
    # ell, without i). Running count, mean and sum of squared deviations.
    count, mean, m2 = np.zeros((2, n, n)), np.zeros((2, n, n)), np.zeros((2, n, n))
    n_coalitions = _exact_strata(evaluate, to_masks, n, count, mean)
    sizes = np.arange(2, n - 1)
    sampled = np.isfinite(count) & (count == 0)  # the strata left to sampling
    start, previous, fired, warm_up_done = time.perf_counter(), None, None, True
    estimate, stderr = _estimate(count, mean, m2, sampled)
    if sizes.size:
        p = 1.0 / sizes + 1.0 / (n - sizes)
        p /= p.sum()
        for member, warm in _batches(rng, n, sizes, p, batch):
            drawn = member.sum(axis=1)
            values = evaluate(to_masks(member))
            player = np.broadcast_to(np.arange(n), member.shape)
            ell = np.where(member, drawn[:, None] - 1, drawn[:, None])
            flat = (np.where(member, 0, 1) * n + player) * n + ell
            _merge_strata(count, mean, m2, flat.ravel(), np.repeat(values, n))
            n_coalitions += member.shape[0]
            estimate, stderr = _estimate(count, mean, m2, sampled)
            state = SamplerState(
                n_samples=int(count[sampled].min()),
                n_permutations=n_coalitions,
                n_evaluations=evaluate.n_evaluations,
                elapsed=time.perf_counter() - start,
                means=estimate.copy(),
                stderr=stderr.copy(),
                previous_means=previous,
            )
            previous = estimate.copy()
            fired = rule.check(state)
            if fired is not None:
                warm_up_done = not warm
                break
    full = _full_mask(n)
    gap = float(estimate.sum() - (evaluate.cache[full] - evaluate.cache[0]))
    return ValuationResult(
        values=estimate,
        names=names,
        method="svarm_shapley",
        stderr=stderr,
        converged=True if fired is None else fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_coalitions": n_coalitions,
            "warm_up_done": warm_up_done,
            "stopped_by": "exact (n <= 3)" if fired is None else str(fired),
            "efficiency_gap": gap,
        },
    )


class _ExecutorMemo(MemoEvaluator):
    """A :class:`MemoEvaluator` whose new coalitions are evaluated by an executor."""

    def __init__(self, source: Any, is_utility: bool, n_players: int, executor: Executor) -> None:
        super().__init__(source, is_utility, n_players)
        self.executor = executor

    def __call__(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        if self.executor.n_workers > 1:  # fill the cache in parallel, in a fixed order
            new = [k for k in dict.fromkeys(masks.tolist()) if k not in self.cache]
            chunks = [
                c.tolist()
                for c in np.array_split(np.array(new, dtype=object), self.executor.n_workers)
            ]
            chunks = [c for c in chunks if c]
            work = partial(evaluate_chunk, self.source, self.is_utility, self.n)
            for chunk, values in zip(chunks, self.executor.map(work, chunks), strict=True):
                self.cache.update(zip(chunk, values.tolist(), strict=True))
        return super().__call__(masks)


def _full_mask(n: int) -> int:
    return (1 << n) - 1


def _mask_encoder(n: int) -> Any:
    """``member (rows, n) bool -> bitmasks``: int64 up to 62 players, Python ints beyond."""
    if n <= MAX_MASK_PLAYERS:
        bits = np.int64(1) << np.arange(n, dtype=np.int64)

        def encode(member: NDArray[np.bool_]) -> NDArray[Any]:
            return np.asarray(member.astype(np.int64) @ bits, dtype=np.int64)

    else:

        def encode(member: NDArray[np.bool_]) -> NDArray[Any]:
            packed = np.packbits(member, axis=1, bitorder="little")
            out = np.empty(member.shape[0], dtype=object)
            out[:] = [int.from_bytes(row.tobytes(), "little") for row in packed]
            return out

    return encode


def _exact_strata(
    evaluate: MemoEvaluator,
    to_masks: Any,
    n: int,
    count: NDArray[np.float64],
    mean: NDArray[np.float64],
) -> int:
    """Fill the strata that the coalitions of sizes 0, 1, n-1, n determine (count = inf).

    Returns the number of coalitions evaluated.
    """
    eye = np.eye(n, dtype=bool)
    empty = evaluate(to_masks(np.zeros((1, n), dtype=bool)))
    grand = evaluate(to_masks(np.ones((1, n), dtype=bool)))
    singles = evaluate(to_masks(eye))
    others = evaluate(to_masks(~eye))  # N minus i
    exact = [
        (0, 0, singles),  # phi^+_{i,0} = v({i})
        (1, 0, np.full(n, empty[0])),  # phi^-_{i,0} = v(empty)
        (0, n - 1, np.full(n, grand[0])),  # phi^+_{i,n-1} = v(N)
        (1, n - 1, others),  # phi^-_{i,n-1} = v(N - i)
    ]
    if n >= 2:
        exact += [
            (1, 1, (singles.sum() - singles) / (n - 1)),  # mean v({j}), j != i
            (0, n - 2, (others.sum() - others) / (n - 1)),  # mean v(N - j), j != i
        ]
    for side, ell, values in exact:
        mean[side, :, ell], count[side, :, ell] = values, np.inf
    return 2 * n + 2


def _estimate(
    count: NDArray[np.float64],
    mean: NDArray[np.float64],
    m2: NDArray[np.float64],
    sampled: NDArray[np.bool_],
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Estimates (unsampled strata count as 0) and standard errors (NaN if any k < 2)."""
    n = mean.shape[1]
    estimate = (mean[0] - mean[1]).sum(axis=1) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(sampled, m2 / (count - 1) / count, 0.0)
        var = np.where(sampled & (count < 2), np.nan, var)
    return estimate, np.sqrt(var.sum(axis=(0, 2))) / n


def _batches(
    rng: np.random.Generator, n: int, sizes: NDArray[np.int64], p: NDArray[np.float64], batch: int
) -> Iterator[tuple[NDArray[np.bool_], bool]]:
    """Member matrices of ``batch`` coalitions: the warm-up, then sampled sizes.

    Yields ``(member, in_warm_up)``; the last warm-up batch may be shorter.
    """
    warm: list[NDArray[np.bool_]] = []
    for _ in range(WARM_UP_ROUNDS):
        for s in sizes.tolist():
            k = min(s, n - s)
            perm = rng.permutation(n)
            starts = list(range(0, n - k + 1, k))
            if n % k:
                starts.append(n - k)  # fill the last block from the end
            block = np.zeros((len(starts), n), dtype=bool)
            for row, j in enumerate(starts):
                block[row, perm[j : j + k]] = True
            warm.extend(block if k == s else ~block)
    for j in range(0, len(warm), batch):
        yield np.array(warm[j : j + batch]), True
    while True:
        drawn = rng.choice(sizes, size=batch, p=p)
        keys = rng.random((batch, n)).argsort(axis=1)  # a uniform permutation per row
        yield keys < drawn[:, None], False
