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
computed exactly. Samples go to the others either equally (``allocation="equal"``,
Maleki et al. 2013) or, after a pilot of two samples per stratum, in proportion to the
estimated standard deviations (``allocation="neyman"``), the allocation that minimises
the total variance (Castro, Gómez, Molina & Tejada 2017). Strata with little variance
(often the small and large coalitions of a learning curve) then cost little.

Unlike permutation sampling the estimate is not exactly efficient;
``info["efficiency_gap"]`` reports :math:`\sum_i \hat\varphi_i - (v(N) - v(\emptyset))`.

References
----------
S. Maleki, L. Tran-Thanh, G. Hines, T. Rahwan and A. Rogers, "Bounding the estimation
error of sampling-based Shapley value approximation", arXiv:1306.4265, 2013.
J. Castro, D. Gómez, E. Molina and J. Tejada, "Improving polynomial estimation of the
Shapley value by stratified random sampling with optimum allocation", Computers &
Operations Research 82, 2017, pp. 180-188.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from coopml._validation import RandomState, check_choice, check_int, check_random_state
from coopml.coalitions._sampling import MemoEvaluator, resolve_source, resolve_stopping
from coopml.coalitions.monte_carlo import MaskUtility, ValueFunction, default_stopping
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import SamplerState, StoppingRule

__all__ = ["random_coalitions", "stratified_shapley"]


def random_coalitions(
    players: NDArray[np.intp], sizes: NDArray[np.intp], n_players: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Bitmasks of uniform random coalitions of ``sizes[r]`` players, none holding ``players[r]``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> masks = random_coalitions(np.array([0, 2]), np.array([2, 1]), 3, rng)
    >>> masks.tolist()[0], int(masks[1]).bit_count(), int(masks[1]) & 4
    (6, 1, 0)
    """
    keys = rng.random((players.size, n_players))
    keys[np.arange(players.size), players] = 2.0  # never among the first |S|
    ranks = keys.argsort(axis=1).argsort(axis=1)
    member = ranks < sizes[:, None]
    return member.astype(np.int64) @ (np.int64(1) << np.arange(n_players, dtype=np.int64))


def stratified_shapley(
    value_fn_or_utility: ValueFunction | MaskUtility,
    n_players: int | None = None,
    *,
    stopping: StoppingRule | None = None,
    allocation: Literal["neyman", "equal"] = "neyman",
    batch_size: int | None = None,
    random_state: RandomState = None,
    names: Sequence[str] | None = None,
) -> ValuationResult:
    """Estimate Shapley values by stratified sampling over coalition sizes.

    Parameters
    ----------
    value_fn_or_utility : callable or utility
        ``value_fn(frozenset) -> float`` with ``n_players``, or an object with
        ``n_players``, ``names`` and ``evaluate_masks`` (at most 62 players).
    n_players : int, optional
        Required with a callable.
    stopping : StoppingRule, optional
        Checked after each batch; default :func:`~coopml.coalitions.monte_carlo.default_stopping`.
        ``MaxPermutations(k)`` counts ``n`` marginal samples as one permutation.
    allocation : {"neyman", "equal"}
        How a batch's samples are spread over the strata (see module docstring).
    batch_size : int, optional
        Marginal samples per batch; default ``2 n (n - 2)`` (two per sampled stratum),
        at least 64.
    random_state : int, Generator or None
    names : sequence of str, optional

    Returns
    -------
    ValuationResult
        ``method="stratified_shapley"`` with ``stderr``, ``converged``,
        ``n_evaluations`` (distinct coalitions) and ``info`` (``n_samples`` marginals,
        ``stopped_by``, ``allocation``, ``efficiency_gap``).

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
    sampled = max(n - 2, 0)  # strata s = 1 .. n-2 per player
    default_batch = max(64, 2 * n * sampled)
    batch = check_int("batch_size", default_batch if batch_size is None else batch_size, minimum=1)
    rng = check_random_state(random_state)
    evaluate = MemoEvaluator(value_fn_or_utility, is_utility, n)
    full = (1 << n) - 1
    bits = np.int64(1) << np.arange(n, dtype=np.int64)
    # Exact strata: s = 0 (v({i}) - v(empty)) and s = n - 1 (v(N) - v(N - i)).
    singles = evaluate(bits) - evaluate(np.zeros(1, dtype=np.int64))[0]
    lasts = evaluate(np.full(1, full, dtype=np.int64))[0] - evaluate(full ^ bits)
    count = np.zeros((n, n))
    mean = np.zeros((n, n))
    m2 = np.zeros((n, n))
    mean[:, 0], count[:, 0] = singles, np.inf
    mean[:, n - 1], count[:, n - 1] = lasts, np.inf
    strata_i, strata_s = np.divmod(np.arange(n * n), n)
    open_strata = np.flatnonzero((strata_s >= 1) & (strata_s <= n - 2))
    start, n_samples, previous, fired = time.perf_counter(), 0, None, None
    estimate, stderr = mean.mean(axis=1), np.zeros(n)
    while sampled:
        k_open = count.ravel()[open_strata]
        if allocation == "equal" or k_open.min() < 2:
            per = np.full(open_strata.size, max(1, batch // open_strata.size))
            per = np.maximum(per, 2 - np.minimum(k_open, 2)).astype(np.int64)
        else:
            sd = np.sqrt(m2.ravel()[open_strata] / (k_open - 1))
            weights = sd + 0.05 * sd.mean() + 1e-12
            per = rng.multinomial(batch, weights / weights.sum())
        flat = np.repeat(open_strata, per)
        players, sizes = strata_i[flat], strata_s[flat]
        without = random_coalitions(players, sizes, n, rng)
        marginal = evaluate(without | bits[players]) - evaluate(without)
        _merge_strata(count, mean, m2, flat, marginal)
        n_samples += flat.size
        estimate = mean.mean(axis=1)
        k = count[:, 1 : n - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            var = np.where(k > 1, m2[:, 1 : n - 1] / (k - 1) / k, np.nan)
        stderr = np.sqrt(var.sum(axis=1)) / n
        state = SamplerState(
            n_samples=int(k.min()),
            n_permutations=n_samples // n,
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
    gap = float(estimate.sum() - (evaluate.cache[full] - evaluate.cache[0]))
    return ValuationResult(
        values=estimate,
        names=names,
        method="stratified_shapley",
        stderr=stderr,
        converged=True if fired is None else fired.converges,
        n_evaluations=evaluate.n_evaluations,
        info={
            "n_samples": n_samples,
            "stopped_by": "exact (n <= 2)" if fired is None else str(fired),
            "allocation": allocation,
            "efficiency_gap": gap,
        },
    )


def _merge_strata(
    count: NDArray[np.float64],
    mean: NDArray[np.float64],
    m2: NDArray[np.float64],
    flat: NDArray[np.intp],
    x: NDArray[np.float64],
) -> None:
    """Add samples ``x`` of strata ``flat`` (flat indices) to running moments (Chan et al.)."""
    size = count.size
    k = np.bincount(flat, minlength=size).astype(np.float64)
    has = k > 0
    s = np.bincount(flat, weights=x, minlength=size)
    batch_mean = np.divide(s, k, out=np.zeros(size), where=has)
    dev = np.bincount(flat, weights=(x - batch_mean[flat]) ** 2, minlength=size)
    c, mu, q = count.reshape(-1), mean.reshape(-1), m2.reshape(-1)  # views
    total = c[has] + k[has]
    delta = batch_mean[has] - mu[has]
    mu[has] += delta * k[has] / total
    q[has] += dev[has] + delta**2 * c[has] * k[has] / total
    c[has] = total
