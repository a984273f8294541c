r"""Maximum-sample-reuse (MSR) estimate of the Banzhaf value.

The (raw) Banzhaf value is the difference of two means over uniformly random coalitions
:math:`S` (each player included independently with probability 1/2):

.. math::

    \beta_i = \mathbb{E}[v(S) \mid i \in S] - \mathbb{E}[v(S) \mid i \notin S].

Wang & Jia (2023) estimate both means from *the same* samples: every sampled coalition
updates every player, on the side of the difference it belongs to,

.. math::

    \hat\beta_i = \frac{1}{|\mathcal S_{\ni i}|}\sum_{S \in \mathcal S_{\ni i}} v(S)
        - \frac{1}{|\mathcal S_{\not\ni i}|}\sum_{S \in \mathcal S_{\not\ni i}} v(S),

so :math:`m` utility evaluations give every player about :math:`m/2` samples on each
side, instead of the :math:`2` evaluations per marginal of the plain estimator. The
standard error is :math:`(\tilde\sigma^2_{\ni}/m_{\ni} +
\tilde\sigma^2_{\not\ni}/m_{\not\ni})^{1/2}`, with the Agresti--Coull-adjusted variances
of :mod:`coopml.coalitions._sampling` (the range is that of the observed coalition
values, :math:`v(\varnothing)` and :math:`v(N)` included: both are evaluated first, so
that a sample in which a rare coalition never appears does not look certain).

References
----------
J. T. Wang and R. Jia, "Data Banzhaf: a robust data valuation framework for machine
learning", AISTATS 2023, PMLR 206, pp. 6388-6421.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import encode_members
from coopml._validation import RandomState, check_int, check_random_state
from coopml.coalitions._sampling import (
    Batch,
    Evaluator,
    MomentsCheckpoint,
    adjusted_stderr,
    merge_moments,
    open_checkpoint,
    resolve_executor,
    resolve_source,
    resolve_stopping,
    run_sampler,
)
from coopml.coalitions.executors import Executor, ProgressCallback
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import MaxPermutations, StandardErrorBelow, StoppingRule

__all__ = ["default_msr_stopping", "msr_banzhaf"]


def default_msr_stopping() -> StoppingRule:
    """``MaxPermutations(10000) | StandardErrorBelow(0.01, relative_to="max")``.

    For MSR a budget in permutations counts sampled coalitions.

    Examples
    --------
    >>> default_msr_stopping()
    MaxPermutations(10000) | StandardErrorBelow(0.01, relative_to='max')
    """
    return MaxPermutations(10_000) | StandardErrorBelow(0.01, relative_to="max")


def msr_banzhaf(
    value_fn_or_utility: ValueFunction | MaskUtility,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    batch_size: int = 256,
    executor: str | Executor = "serial",
    n_jobs: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> ValuationResult:
    """Estimate raw Banzhaf values with maximum sample reuse (Wang & Jia 2023).

    Parameters
    ----------
    value_fn_or_utility : callable or utility
        ``value_fn(frozenset) -> float`` with ``n_players``, or an object with
        ``n_players``, ``names`` and ``evaluate_masks`` (any number of players; see
        :mod:`coopml.coalitions._sampling` for the masks).
    n_players : int, optional
        Required with a callable.
    stopping : StoppingRule, optional
        Checked after each batch; default :func:`default_msr_stopping`. Budgets in
        permutations count sampled coalitions; ``n_samples`` seen by the rule is the
        smallest per-player, per-side sample count. Budgets are never overrun.
    batch_size : int
        Coalitions sampled per batch (evaluated together).
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
        ``method="msr_banzhaf"`` with ``stderr`` (Agresti--Coull-adjusted per side),
        ``converged``, ``n_evaluations`` (distinct coalitions) and ``info``
        (``n_samples`` coalitions, ``stopped_by``, ``n_failures``, ``failures``).

    Examples
    --------
    >>> from coopml.coalitions.stopping import MaxPermutations
    >>> majority = lambda s: float(2 * (0 in s) + len(s - {0}) >= 3)  # exact: .75, .25, .25
    >>> r = msr_banzhaf(majority, 3, stopping=MaxPermutations(4000), random_state=0)
    >>> bool(np.all(np.abs(r.values - [0.75, 0.25, 0.25]) < 4 * r.stderr))
    True
    """
    is_utility, n, names = resolve_source(value_fn_or_utility, n_players, names)
    rule = resolve_stopping(default_msr_stopping() if stopping is None else stopping, n)
    batch = check_int("batch_size", batch_size, minimum=1)
    rng = check_random_state(random_state)
    evaluate = Evaluator(value_fn_or_utility, is_utility, n, resolve_executor(executor, n_jobs))
    params = {"n": n, "stopping": str(rule), "batch": batch}
    checkpoint = open_checkpoint(
        cache_dir, value_fn_or_utility, "msr_banzhaf", params, random_state, evaluate
    )
    sampler = _MSRSampler(n, rng, batch)
    # v(empty) and v(N) anchor the range of the standard errors' adjustment: a sample whose
    # values all agree (a rare event unseen) must not look certain.
    anchors = evaluate(encode_members(np.array([[False] * n, [True] * n])))
    sampler.low, sampler.high = float(anchors.min()), float(anchors.max())
    run = run_sampler(sampler, evaluate, rule, progress=progress, checkpoint=checkpoint)
    estimate, stderr, _ = sampler.state()
    fired = run.fired
    return ValuationResult(
        values=estimate,
        names=names,
        method="msr_banzhaf",
        stderr=stderr,
        converged=fired is not None and fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_samples": run.n_rows,
            "stopped_by": str(fired),
            **evaluate.failure_info(),
            **({} if checkpoint is None else {"resumed": run.resumed}),
        },
    )


class _MSRSampler(MomentsCheckpoint):
    """Uniform random coalitions; each updates every player on its side of the mean."""

    def __init__(self, n: int, rng: np.random.Generator, batch: int) -> None:
        self.n, self.rng, self.batch = n, rng, batch
        # Per side (0: without, 1: with) and player: count, mean, squared deviations.
        self.count, self.mean, self.m2 = np.zeros((2, n)), np.zeros((2, n)), np.zeros((2, n))
        self.low, self.high = np.inf, -np.inf

    def propose(self) -> Batch:
        member = self.rng.random((self.batch, self.n)) < 0.5
        return Batch(encode_members(member)[:, None], {"member": member})

    def update(self, batch: Batch, values: NDArray[np.float64]) -> None:
        member, values = batch.data["member"], values[:, 0]
        self.low, self.high = min(self.low, values.min()), max(self.high, values.max())
        side = np.where(member, 1, 0)
        flat = (side * self.n + np.arange(self.n)).ravel()
        merge_moments(self.count, self.mean, self.m2, flat, np.repeat(values, self.n))

    def state(self) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
        se = adjusted_stderr(self.count, self.mean, self.m2, self.low, self.high)
        return self.mean[1] - self.mean[0], np.sqrt((se**2).sum(axis=0)), int(self.count.min())
