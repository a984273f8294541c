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
   One round gives every sampled stratum a sample, so standard errors are finite from
   the end of the warm-up on (infinite before). The warm-up costs about
   :math:`2n \ln(n/2)` evaluations (about 12,000 at 1,000 players); an evaluation
   budget below it and the exact strata is refused with the number needed.
3. **Sampling.** Sizes :math:`s \in [2, n-2]` are drawn with probability proportional
   to :math:`1/s + 1/(n-s)` (a smooth form of the paper's distribution, which puts
   more mass on small and large coalitions, whose strata are shared by fewer
   coalitions), then a coalition uniformly among those of size :math:`s`.

Each stratum mean is a sample mean, so :math:`\hat\varphi_i` is unbiased once every
stratum has a sample, and its standard error is derived from the per-stratum sample
variances,

.. math::

    \widehat{\operatorname{se}}(\hat\varphi_i) = \frac1n \Bigl(\sum_\ell
        \tilde\sigma^{2}_{+,i,\ell} / m^+_{i,\ell}
        + \tilde\sigma^{2}_{-,i,\ell} / m^-_{i,\ell}\Bigr)^{1/2}

(exact strata contribute nothing; :math:`\tilde\sigma^2` are the Agresti--Coull-adjusted
variances of :mod:`coopml.coalitions._sampling`, over the observed range of values, so a
stratum whose few samples agree still carries uncertainty). A coalition is a sample of
exactly one stratum of each player, so the strata of one player are estimated from
disjoint sets of samples; the formula ignores the weak dependence between the blocks of
one warm-up permutation.
The estimate is not exactly efficient; ``info["efficiency_gap"]`` reports
:math:`\sum_i \hat\varphi_i - (v(N) - v(\varnothing))` and
``info["efficiency_gap_stderr"]`` the bound :math:`\sum_i \widehat{\operatorname{se}}_i`
on its standard error (the players' estimates share coalitions, so their errors are
correlated and the bound makes no assumption about how).

Coalitions are memoised (``n_evaluations`` counts distinct coalitions); each batch's
new coalitions are evaluated together (one ``evaluate_masks`` call for a utility), on
the executor. Any number of players: ``int64`` bitmasks up to 62, Python integers
beyond.

References
----------
P. Kolpaczki, V. Bengs, M. Muschalik and E. Hüllermeier, "Approximating the Shapley
value without marginal contributions", AAAI 2024, pp. 13246-13255.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import encode_members
from coopml._validation import RandomState, check_int, check_random_state
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
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import MaxPermutations, StandardErrorBelow, StoppingRule

__all__ = ["default_svarm_stopping", "svarm_shapley"]

#: Warm-up rounds: every sampled stratum gets at least this many samples first (one
#: suffices for the Agresti--Coull-adjusted standard errors).
WARM_UP_ROUNDS = 1


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

    def fingerprint(self) -> str:
        """SHA-256 of the table (the key of a checkpoint)."""
        return hashlib.sha256(np.ascontiguousarray(self.game.table).tobytes()).hexdigest()


def svarm_shapley(
    value_fn_or_utility: ValueFunction | MaskUtility | CoalitionGame,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    batch_size: int | None = None,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> ValuationResult:
    """Estimate Shapley values by stratified SVARM (Kolpaczki et al., AAAI 2024).

    Parameters
    ----------
    value_fn_or_utility : callable, utility or CoalitionGame
        ``value_fn(frozenset_of_player_indices) -> float`` with ``n_players`` (any
        number of players), an object with ``n_players``, ``names`` and
        ``evaluate_masks(masks) -> float64`` (any number of players), such as a
        :class:`~coopml.learning.CoalitionUtility`, or a
        :class:`~coopml.coalitions.CoalitionGame` (its table is read).
    n_players : int, optional
        Required with a callable; must match a utility's.
    stopping : StoppingRule, optional
        Checked after every batch (the warm-up included); default
        :func:`default_svarm_stopping`. It must contain a budget. ``MaxPermutations(k)``
        counts drawn coalitions after the ``2n + 2`` exact ones; ``n_samples`` seen by
        the rule is the smallest sample count of a sampled stratum (so
        ``StandardErrorBelow``'s ``min_samples`` asks every stratum for that many
        samples). Your rule object is not modified.
    batch_size : int, optional
        Coalitions drawn per batch (evaluated together); default ``max(256, 2n)`` (each
        batch updates all :math:`2n^2` strata). Results depend on it. Budgets
        are never overrun: the last batch is cut to fit; an evaluation budget below the
        exact strata and the warm-up is refused.
    executor : {"serial", "joblib", "ray"} or Executor
        Where each batch's new coalitions are evaluated (split into one chunk per
        worker; the callable or utility must be picklable for parallel executors).
        All sampling happens in this process, so results do not depend on it.
    n_jobs : int, optional
        Worker count for parallel executors (default: all cores); ``n_jobs > 1`` with
        ``"serial"`` means local joblib workers.
    random_state : int, numpy.random.Generator or None
        Seed of the permutations, sizes and coalitions.
    names : sequence of str, optional
        Player names; default the utility's names, or ``"0", "1", ...``.
    cache_dir : path, optional
        Checkpoint the run there, to resume after an interruption with exactly the
        result of an uninterrupted run (as :func:`~coopml.coalitions.monte_carlo_shapley`).
    progress : callable, optional
        ``progress(done, total)`` after every batch (as
        :func:`~coopml.coalitions.monte_carlo_shapley`).

    Returns
    -------
    ValuationResult
        ``method="svarm_shapley"``, ``values`` and ``stderr`` (infinite until the warm-up
        ends; zero for ``n <= 3``, where every stratum is exact), ``converged`` (a
        convergence rule fired, or ``n <= 3``), ``n_evaluations`` (distinct coalitions)
        and ``info`` with ``n_coalitions`` (drawn, repeats included), ``warm_up_done``,
        ``stopped_by``, ``efficiency_gap``, ``efficiency_gap_stderr``, ``n_failures``
        and ``failures``.

    Examples
    --------
    >>> from coopml.coalitions.games import airport_game
    >>> from coopml.coalitions.stopping import MaxPermutations
    >>> game = airport_game(np.arange(1.0, 9.0))  # 8 players, exact values known
    >>> r = svarm_shapley(game, stopping=MaxPermutations(2000), random_state=0)
    >>> r.n_evaluations, r.converged, r.info["stopped_by"]
    (252, False, 'MaxPermutations(2000)')
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
    is_utility, n, names = resolve_source(source, n_players, names)
    rule = resolve_stopping(default_svarm_stopping() if stopping is None else stopping, n)
    batch = check_int(
        "batch_size", max(256, 2 * n) if batch_size is None else batch_size, minimum=1
    )
    rng = check_random_state(random_state)
    sizes = np.arange(2, n - 1)
    limits = budgets(rule)
    need = 2 * n + 2 + _warm_up_size(n, sizes)
    if limits.evaluations is not None and sizes.size and limits.evaluations.limit < need:
        raise ValueError(
            f"parameter 'stopping' allows {limits.evaluations.limit} evaluations; "
            f"svarm_shapley needs at least {need} for {n} players (the exact strata and the "
            "warm-up that samples every stratum once); raise the budget or use "
            "monte_carlo_shapley"
        )
    evaluate = Evaluator(source, is_utility, n, resolve_executor(executor, n_jobs))
    params = {"n": n, "stopping": str(rule), "batch": batch}
    checkpoint = open_checkpoint(cache_dir, source, "svarm_shapley", params, random_state, evaluate)
    sampler = _SvarmSampler(n, rng, sizes, batch)
    sampler.exact(evaluate)
    run = run_sampler(
        sampler,
        evaluate,
        rule,
        max_batches=None if sizes.size else 0,
        progress=progress,
        checkpoint=checkpoint,
    )
    estimate, stderr, _ = sampler.state()
    full = (1 << n) - 1
    gap = float(estimate.sum() - (evaluate.cache[full] - evaluate.cache[0]))
    fired = run.fired
    return ValuationResult(
        values=estimate,
        names=names,
        method="svarm_shapley",
        stderr=stderr,
        converged=True if not sizes.size else fired is not None and fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_coalitions": 2 * n + 2 + run.n_rows,
            "warm_up_done": run.n_rows >= sampler.n_warm,
            "stopped_by": "exact (n <= 3)" if not sizes.size else str(fired),
            "efficiency_gap": gap,
            "efficiency_gap_stderr": float(stderr.sum()),
            **evaluate.failure_info(),
            **({} if checkpoint is None else {"resumed": run.resumed}),
        },
    )


class _SvarmSampler(MomentsCheckpoint):
    """Coalitions (warm-up, then sampled sizes), each a sample of a stratum of every player.

    Strata ``[side, player, ell]``; side 0: :math:`\\varphi^+` (size ``ell + 1``, with
    ``i``), side 1: :math:`\\varphi^-` (size ``ell``, without ``i``).
    """

    extra_state = ("position",)

    def __init__(
        self, n: int, rng: np.random.Generator, sizes: NDArray[np.int64], batch: int
    ) -> None:
        self.n = n
        self.count, self.mean, self.m2 = (
            np.zeros((2, n, n)),
            np.zeros((2, n, n)),
            np.zeros((2, n, n)),
        )
        self.n_warm = _warm_up_size(n, sizes)
        p = 1.0 / np.maximum(sizes, 1) + 1.0 / np.maximum(n - sizes, 1)
        self.rng, self.sizes, self.p, self.batch = rng, sizes, p / max(p.sum(), 1.0), batch
        self.warm = _warm_up(rng, n, sizes)
        self.position = 0  # rows of the warm-up proposed so far
        self.low, self.high = np.inf, -np.inf

    def exact(self, evaluate: Evaluator) -> None:
        values = _exact_strata(evaluate, self.n, self.count, self.mean)
        self.low, self.high = float(values.min()), float(values.max())
        self.sampled = np.isfinite(self.count) & (self.count == 0)

    def propose(self) -> Batch:
        """The next rows of the warm-up (the last batch may be shorter), then sampled sizes."""
        if self.position < self.warm.shape[0]:
            member = self.warm[self.position : self.position + self.batch]
            self.position += member.shape[0]
        else:
            drawn = self.rng.choice(self.sizes, size=self.batch, p=self.p)
            keys = self.rng.random((self.batch, self.n)).argsort(axis=1)  # uniform permutations
            member = keys < drawn[:, None]
        return Batch(encode_members(member)[:, None], {"member": member})

    def update(self, batch: Batch, values: NDArray[np.float64]) -> None:
        n, member, values = self.n, batch.data["member"], values[:, 0]
        self.low, self.high = min(self.low, values.min()), max(self.high, values.max())
        drawn = member.sum(axis=1)
        player = np.broadcast_to(np.arange(n), member.shape)
        ell = np.where(member, drawn[:, None] - 1, drawn[:, None])
        flat = (np.where(member, 0, 1) * n + player) * n + ell
        merge_moments(self.count, self.mean, self.m2, flat.ravel(), np.repeat(values, n))

    def state(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        n = self.n
        estimate = (self.mean[0] - self.mean[1]).sum(axis=1) / n
        se = adjusted_stderr(self.count, self.mean, self.m2, self.low, self.high)
        se = np.where(self.sampled | np.isinf(self.count), se, 0.0)
        n_samples = int(self.count[self.sampled].min()) if self.sampled.any() else 0
        return estimate, np.sqrt((se**2).sum(axis=(0, 2))) / n, n_samples


def _warm_up_size(n: int, sizes: NDArray[np.int64]) -> int:
    """Coalitions of the warm-up: the blocks of one permutation per size."""
    return int(sum(-(-n // min(s, n - s)) for s in sizes.tolist())) * WARM_UP_ROUNDS


def _exact_strata(
    evaluate: Evaluator, n: int, count: NDArray[np.float64], mean: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Fill the strata that the coalitions of sizes 0, 1, n-1, n determine (count = inf).

    Returns the values of those coalitions.
    """
    eye = np.eye(n, dtype=bool)
    empty = evaluate(encode_members(np.zeros((1, n), dtype=bool)))
    grand = evaluate(encode_members(np.ones((1, n), dtype=bool)))
    singles = evaluate(encode_members(eye))
    others = evaluate(encode_members(~eye))  # N minus i
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
    return np.concatenate([empty, grand, singles, others])


def _warm_up(rng: np.random.Generator, n: int, sizes: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Member rows of the warm-up: for each size, the blocks of one random permutation."""
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
    return np.array(warm, dtype=bool).reshape(-1, n)
