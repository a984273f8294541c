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
standard error is :math:`(\hat\sigma^2_{\ni}/m_{\ni} + \hat\sigma^2_{\not\ni}/m_{\not\ni})^{1/2}`.

References
----------
J. T. Wang and R. Jia, "Data Banzhaf: a robust data valuation framework for machine
learning", AISTATS 2023, PMLR 206, pp. 6388-6421.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from coopml._validation import RandomState, check_int, check_random_state
from coopml.coalitions._sampling import MemoEvaluator, resolve_source, resolve_stopping
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import (
    MaxPermutations,
    SamplerState,
    StandardErrorBelow,
    StoppingRule,
)

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
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
) -> ValuationResult:
    """Estimate raw Banzhaf values with maximum sample reuse (Wang & Jia 2023).

    Parameters
    ----------
    value_fn_or_utility : callable or utility
        ``value_fn(frozenset) -> float`` with ``n_players``, or an object with
        ``n_players``, ``names`` and ``evaluate_masks`` (at most 62 players).
    n_players : int, optional
        Required with a callable.
    stopping : StoppingRule, optional
        Checked after each batch; default :func:`default_msr_stopping`. Budgets in
        permutations count sampled coalitions; ``n_samples`` seen by the rule is the
        smallest per-player, per-side sample count.
    batch_size : int
        Coalitions sampled per batch (evaluated together).
    random_state : int, Generator or None
    names : sequence of str, optional

    Returns
    -------
    ValuationResult
        ``method="msr_banzhaf"`` with ``stderr``, ``converged``, ``n_evaluations``
        (distinct coalitions) and ``info`` (``n_samples`` coalitions, ``stopped_by``).

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
    evaluate = MemoEvaluator(value_fn_or_utility, is_utility, n)
    bits = np.int64(1) << np.arange(n, dtype=np.int64)
    # Per player and side (0: without, 1: with): count, mean, sum of squared deviations.
    count, mean, m2 = np.zeros((2, n)), np.zeros((2, n)), np.zeros((2, n))
    start, n_samples, previous = time.perf_counter(), 0, None
    while True:
        member = rng.random((batch, n)) < 0.5
        values = evaluate(member.astype(np.int64) @ bits)
        for side, rows in ((1, member), (0, ~member)):
            k = rows.sum(axis=0)
            s = values @ rows
            batch_mean = np.divide(s, k, out=np.zeros(n), where=k > 0)
            dev = ((values[:, None] - batch_mean) ** 2 * rows).sum(axis=0)
            total = count[side] + k
            delta = batch_mean - mean[side]
            has = k > 0
            mean[side, has] += delta[has] * k[has] / total[has]
            m2[side, has] += dev[has] + delta[has] ** 2 * count[side, has] * k[has] / total[has]
            count[side] = total
        n_samples += batch
        estimate = mean[1] - mean[0]
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(count > 1, m2 / (count - 1) / count, np.nan)
        stderr = np.sqrt(var.sum(axis=0))
        state = SamplerState(
            n_samples=int(count.min()),
            n_permutations=n_samples,
            n_evaluations=evaluate.n_evaluations,
            elapsed=time.perf_counter() - start,
            means=estimate.copy(),
            stderr=stderr,
            previous_means=previous,
        )
        previous = estimate.copy()
        fired = rule.check(state)
        if fired is not None:
            break
    return ValuationResult(
        values=estimate,
        names=names,
        method="msr_banzhaf",
        stderr=stderr,
        converged=fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={"n_samples": n_samples, "stopped_by": str(fired)},
    )
