r"""The nucleolus of a TU game (Schmeidler 1969).

For an allocation :math:`x` let :math:`\theta(x)` be the vector of excesses
:math:`e(S, x) = v(S) - x(S)` of all :math:`2^n - 2` proper coalitions, sorted in
decreasing order. The nucleolus is the unique efficient allocation that minimises
:math:`\theta(x)` lexicographically; it lies in the least core, hence in the core when
that is non-empty. ``v`` is the zero-normalised game :math:`v(S) - v(\emptyset)` (see
:class:`~coopml.coalitions.CoalitionGame`).

It is computed by the sequence of LPs of Maschler, Peleg & Shapley (1979) and
Kopelowitz (1967). Stage :math:`k` solves

.. math::

    \varepsilon_k = \min_{x, t} t \quad\text{s.t.}\quad v(S) - x(S) \le t \;\;
    (S \text{ free}), \qquad x(S) = v(S) - \varepsilon_{j(S)} \;\; (S \text{ fixed}),

with :math:`N` fixed at excess 0 from the start. Coalitions with a positive dual value
are tight in *every* optimal solution (complementary slackness; the duals sum to 1, so
there is at least one), so they are fixed at :math:`\varepsilon_k`; free coalitions
whose characteristic vectors fall in the span of the fixed ones have a determined
excess and are dropped. Each stage raises the rank of the fixed system by at least one,
so after at most :math:`n - 1` stages it has rank :math:`n` and its unique solution is
the nucleolus.

**Constraint generation.** Each stage LP has up to :math:`2^n - 2` rows but few matter,
so it is solved by constraint (row) generation over a working set of coalitions, as
proposed for the nucleolus by Hallefjord, Helming & Jørnsten (1995); the machinery is
that of :func:`~coopml.coalitions.least_core` (see there). A round solves the LP over
the working set, then projects a reference point (the equal split in the first stage,
the previous stage's solution later) onto the restricted optimal set; one vectorised
pass over the table adds the free coalitions that this point violates most. When none
is violated, that point is feasible for the full stage LP at the restricted optimum
:math:`t`, so :math:`t = \varepsilon_k`, and the working rows' duals, extended by zeros,
are an optimal dual of the full LP: the coalitions fixed from them are exactly those
the full formulation may fix, and the rank argument above is unchanged. The span test
runs lazily, on the coalitions a pass finds violated (and on the working set after each
stage), as :math:`\|C a_S\| \le 10^{-9}` with :math:`C` an orthonormal basis of the
complement of the fixed rows, computed from two subset-sum tables like the excesses.
About 0.03-0.25 s at :math:`n = 16` (against 1-10 s with all rows in every LP), under
0.5 s at :math:`n = 20` and a few seconds at :math:`n = 25`
(``benchmarks/bench_least_core.py``).

References
----------
D. Schmeidler, "The nucleolus of a characteristic function game", SIAM Journal on
Applied Mathematics 17(6) (1969), pp. 1163-1170.
M. Maschler, B. Peleg and L. S. Shapley, "Geometric properties of the kernel, nucleolus,
and related solution concepts", Mathematics of Operations Research 4(4) (1979),
pp. 303-338.
A. Kopelowitz, "Computation of the kernels of simple games and the nucleolus of n-person
games", RM 31, Hebrew University of Jerusalem, 1967.
K. Hallefjord, R. Helming and K. Jørnsten, "Computing the nucleolus when the
characteristic function is given implicitly: a constraint generation approach",
International Journal of Game Theory 24(4) (1995), pp. 357-372.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from coopml._bitmask import coalition_sums
from coopml.coalitions.least_core import (
    _BATCH,
    _DROPPED,
    _START,
    _WORKING,
    SpanTest,
    _generate,
    _incidence,
    _initial_working_set,
    _Table,
)
from coopml.coalitions.result import LeastCoreResult
from coopml.coalitions.shapley import _check_game
from coopml.coalitions.value_table import ValueTable

__all__ = ["nucleolus"]

_DUAL_TOL = 1e-7  # duals below this are treated as zero (HiGHS dual feasibility tolerance)
_SPAN_TOL = 1e-9  # distance of a 0/1 vector to the fixed span below which it is spanned


def nucleolus(game: ValueTable) -> LeastCoreResult:
    """The nucleolus, by the sequence of least-core LPs.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    LeastCoreResult
        ``values`` of shape ``(n,)``; ``epsilon`` is the least-core value (the first
        stage); ``info["stage_epsilons"]`` lists the optimal maximum excess of every
        stage (non-increasing; in degenerate games a value can repeat, when the duals
        of a restricted LP fix fewer coalitions at once than those of the full one
        would), ``info["lp_iterations"]`` the total simplex iterations,
        ``info["generation_rounds"]`` the LPs solved in all and
        ``info["working_set"]`` the coalitions held at the end. ``converged`` is false
        only if the fixed system did not reach rank ``n`` within ``n`` stages.

    Raises
    ------
    RuntimeError
        If HiGHS fails on one of the LPs.

    Examples
    --------
    >>> from coopml.coalitions.games import bankruptcy_game
    >>> r = nucleolus(bankruptcy_game(100, [100, 200, 300]))
    >>> r.values.round(4).tolist(), round(r.epsilon, 4)
    ([33.3333, 33.3333, 33.3333], -33.3333)
    """
    return _nucleolus(_check_game(game))


def _nucleolus(
    game: ValueTable, *, full: bool = False, start: int = _START, batch: int = _BATCH
) -> LeastCoreResult:
    """:func:`nucleolus` with the generation knobs of
    :func:`~coopml.coalitions.least_core._least_core` exposed (``full=True``: every
    coalition in every stage's LP, the formulation before constraint generation)."""
    u = game.zero_normalized()  # a fresh array: scaled in place below
    n = game.n_players
    scale = float(np.abs(u).max()) or 1.0  # a unit-scale game: tolerances are relative
    u /= scale  # solve the scaled game so that tolerances are relative
    table = _Table(u)
    state = table.new_state()
    working = np.arange(1, u.size - 1) if full else _initial_working_set(n)
    state[working] = _WORKING
    fixed, fixed_values = np.array([u.size - 1]), u[-1:]  # independent rows x(S) = u(S) - eps_S
    basis = np.full((1, n), n**-0.5)  # orthonormal basis of the span of the fixed rows
    null = scipy.linalg.null_space(basis).T  # orthonormal basis of its complement
    span: SpanTest | None = None  # only N is spanned at first (and it is never free)
    x = np.full(n, u[-1] / n)  # reference point of the first stage: the equal split
    epsilons: list[float] = []
    iterations = rounds = 0
    while fixed.size < n and len(epsilons) < n:
        stage = _generate(
            table,
            state,
            working,
            fixed,
            fixed_values,
            x,
            null,
            start=0 if epsilons else start,
            batch=batch,
            span=span,
        )
        t, lam, working, x = stage.t, stage.lam, stage.working, stage.x
        epsilons.append(t)
        iterations += stage.info["lp_iterations"]
        rounds += stage.info["generation_rounds"]
        tight = working[lam > min(_DUAL_TOL, lam.max() / 2)]
        for S in tight:  # keep a linearly independent subset of the tight coalitions
            r = ((S >> np.arange(n)) & 1).astype(np.float64)
            for _ in range(2):  # Gram-Schmidt, twice for orthogonality in floating point
                r -= basis.T @ (basis @ r)
            if np.linalg.norm(r) > _SPAN_TOL:
                basis = np.vstack([basis, r / np.linalg.norm(r)])
                fixed, fixed_values = np.r_[fixed, S], np.r_[fixed_values, u[S] - t]
        if fixed.size == n:
            break
        null = scipy.linalg.null_space(basis).T
        span = _span_test(null)
        spanned = span(working)  # includes the coalitions just fixed
        state[working[spanned]] = _DROPPED
        working = working[~spanned]
    converged = fixed.size == n
    if converged:
        x = np.linalg.solve(_incidence(fixed, n), fixed_values)
    return LeastCoreResult(
        values=x * scale + 0.0,  # + 0.0 turns -0.0 into 0.0
        names=game.names,
        method="nucleolus",
        converged=converged,
        n_evaluations=u.size,
        epsilon=epsilons[0] * scale + 0.0 if epsilons else 0.0,
        info={
            "stage_epsilons": [e * scale + 0.0 for e in epsilons],
            "n_stages": len(epsilons),
            "lp_iterations": iterations,
            "generation_rounds": rounds,
            "working_set": int(working.size),
        },
    )


def _span_test(null: NDArray[np.float64]) -> SpanTest:
    r"""Whether coalitions lie in the span of the fixed rows: :math:`\|C a_S\| \le`
    ``_SPAN_TOL`` for ``C = null`` (orthonormal rows spanning the complement), i.e. the
    distance of :math:`a_S` to the span. :math:`C a_S` is the sum of two subset-sum
    tables, over the low and the high half of the bits of ``S``."""
    n = null.shape[1]
    h = n // 2
    low = np.stack([coalition_sums(c[:h]) for c in null], axis=1)
    high = np.stack([coalition_sums(c[h:]) for c in null], axis=1)

    def spanned(masks: NDArray[np.int64]) -> NDArray[np.bool_]:
        r = low[masks & ((1 << h) - 1)] + high[masks >> h]
        return np.asarray(np.einsum("ij,ij->i", r, r) <= _SPAN_TOL**2)

    return spanned
