r"""The core and the least core of a TU game.

The **core** (Gillies 1959) is the set of efficient allocations no coalition can
improve on by leaving: :math:`x(N) = v(N)` and :math:`x(S) \ge v(S)` for all
:math:`S`, where :math:`x(S) = \sum_{i \in S} x_i`. The **least core** (Maschler,
Peleg & Shapley 1979) relaxes every constraint by the smallest uniform subsidy that
makes the set non-empty,

.. math::

    \varepsilon^* = \min_{x, \varepsilon} \varepsilon
    \quad \text{s.t.} \quad x(N) = v(N), \;
    x(S) \ge v(S) - \varepsilon \;\; \forall\, \emptyset \ne S \subsetneq N,

an LP with :math:`n + 1` variables and :math:`2^n - 2` constraints.
:math:`\varepsilon^* \le 0` iff the core is non-empty. As everywhere in coopml, ``v``
is the zero-normalised game :math:`v(S) - v(\emptyset)` (see
:class:`~coopml.coalitions.CoalitionGame`), so allocations divide the gain over the
empty coalition.

The least core is usually a set. :func:`least_core` returns the point of it **closest
in Euclidean norm to the Shapley value**: the Shapley value itself whenever it is in
the least core, otherwise the smallest correction that makes it stable. The point is
unique (strictly convex objective over a convex set), so it does not depend on which
optimal vertex the solver happens to find; it is computed as a least-distance problem,
by NNLS (Lawson & Hanson 1974, ch. 23), and every answer is checked against the KKT
conditions.

**Constraint generation.** Only a few coalitions are tight at the optimum, so the LP is
solved by row (constraint) generation, the cutting-plane scheme of Kelley (1960), used
for the nucleolus by Hallefjord, Helming & Jørnsten (1995). HiGHS solves the LP over a
*working set* of coalitions: at first the singletons (which keep every restricted LP
bounded), their complements and the few hundred coalitions of largest excess at the
Shapley value. Its value :math:`t` is a lower bound on :math:`\varepsilon^*`. The
Shapley value is then projected onto the restricted set
:math:`\{x(N) = v(N),\ x(S) \ge v(S) - t \text{ for } S \text{ in the working set}\}`,
and one vectorised pass over the value table computes every excess
:math:`e(S, y) = v(S) - y(S)` at that projection :math:`y` (:math:`y(S)` as the sum of
two subset-sum tables, over the low and the high half of the players' bits), and the
coalitions whose excess exceeds :math:`t` by more than :math:`10^{-12}` join the working
set, the largest excesses first, a batch of a few hundred per round. When there are
none, :math:`y` satisfies every constraint at level :math:`t`, so
:math:`t = \varepsilon^*` and :math:`y` is the least-core point closest to the Shapley
value: the projection onto a relaxation that lies in the set is the projection onto
the set. Separating at this projection rather than at the simplex vertex matters: the
optimal face is often large, and vertex cuts then zig-zag for dozens of rounds.
``epsilon`` is the largest excess of the returned allocation over all coalitions, which
lies within about :math:`10^{-11} \max(1, \max_S |v(S)|)` of the LP bound.
A handful of rounds of small LPs replace one LP with :math:`2^n - 2` rows: about
0.02-0.25 s at :math:`n = 16` and under 1 s at :math:`n = 20`, against 1-4.5 s and
about 20 s; :math:`n = 25` (the largest table coopml builds, 256 MiB) takes seconds,
most of them the Shapley value (``benchmarks/bench_least_core.py``).

References
----------
M. Maschler, B. Peleg and L. S. Shapley, "Geometric properties of the kernel, nucleolus,
and related solution concepts", Mathematics of Operations Research 4(4) (1979),
pp. 303-338.
C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*, Prentice-Hall, 1974.
J. E. Kelley, "The cutting-plane method for solving convex programs", Journal of the
SIAM 8(4) (1960), pp. 703-712.
K. Hallefjord, R. Helming and K. Jørnsten, "Computing the nucleolus when the
characteristic function is given implicitly: a constraint generation approach",
International Journal of Game Theory 24(4) (1995), pp. 357-372.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog, lsq_linear, nnls

from coopml._bitmask import coalition_sums
from coopml._validation import check_positive
from coopml.coalitions.result import LeastCoreResult
from coopml.coalitions.shapley import _check_game, shapley_from_table
from coopml.coalitions.value_table import ValueTable

__all__ = ["core_contains", "least_core"]

#: Tolerance for least-core membership checks, relative to ``max_S |v(S)|`` (the game
#: is solved at unit scale).
_TOL = 1e-7
#: A coalition outside the working set is violated when its excess exceeds the bound by
#: more than this (scaled game, like every tolerance here).
_CG_TOL = 1e-12
#: Slack on the least-core constraints of the projection (as in the full formulation).
_PROJ_SLACK = 1e-12
#: Coalitions of largest excess at the start point that join the first working set.
_START = 400
#: Most violated coalitions added per constraint-generation round.
_BATCH = 300
#: Table entries per block of the vectorised pass (bounds its temporary memory).
_BLOCK = 1 << 18

#: ``span(masks)`` is True where a coalition lies in the span of the fixed coalitions.
SpanTest = Callable[[NDArray[np.int64]], NDArray[np.bool_]]


def least_core(game: ValueTable) -> LeastCoreResult:
    r"""The least-core allocation closest to the Shapley value, and :math:`\varepsilon^*`.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    LeastCoreResult
        ``values`` (shape ``(n,)``) is efficient and satisfies
        :math:`x(S) \ge v(S) - \varepsilon^*` for every coalition, checked against the
        whole table; ``epsilon`` is :math:`\varepsilon^*`, reported as the largest
        excess of ``values`` (it exceeds the LP's lower bound ``info["lp_value"]`` by at
        most about ``1e-11 * max|v|``; ``converged`` requires at most
        ``1e-7 * max|v|``). ``info`` holds the last LP's status and message,
        the simplex iterations of all LPs (``lp_iterations``), the constraint-generation
        rounds (``generation_rounds``), the final working-set size (``working_set``)
        and the distance to the Shapley value. For one player ``epsilon`` is 0 (there
        is no proper coalition to constrain). Should the least-distance step ever fail
        its KKT check with both NNLS solvers, the LP's vertex (certified against the
        table the same way) is returned instead, with ``converged=False`` and the
        reason in ``info["tie_break_failed"]``.

    Raises
    ------
    RuntimeError
        If HiGHS does not solve an LP (the message is the solver's).

    Examples
    --------
    >>> from coopml.coalitions.games import glove_game
    >>> r = least_core(glove_game(1, 2))
    >>> r.values.round(6).tolist(), round(r.epsilon, 6)
    ([1.0, 0.0, 0.0], 0.0)
    """
    return _least_core(_check_game(game))


def _least_core(
    game: ValueTable, *, full: bool = False, start: int = _START, batch: int = _BATCH
) -> LeastCoreResult:
    """:func:`least_core` with the generation knobs exposed (tests and benchmarks).

    ``full=True`` puts every coalition in the working set from the start: one LP with
    all :math:`2^n - 2` rows and one NNLS over all of them (the formulation before
    constraint generation, kept as the reference). ``start`` and ``batch`` size the
    first and every later addition to the working set.
    """
    u = game.zero_normalized()  # a fresh array: scaled in place below
    n = game.n_players
    phi = shapley_from_table(u)
    if n == 1:
        return LeastCoreResult(
            values=u[-1:], names=game.names, method="least_core", n_evaluations=u.size
        )
    scale = float(np.abs(u).max()) or 1.0  # a unit-scale game: tolerances are relative
    x_phi = (phi + (u[-1] - phi.sum()) / n) / scale  # projection onto x(N) = v(N)
    u /= scale  # solve the scaled game so that tolerances are relative
    table = _Table(u)
    state = table.new_state()
    working = np.arange(1, u.size - 1) if full else _initial_working_set(n)
    state[working] = _WORKING
    fixed, fixed_values = np.array([u.size - 1]), u[-1:]  # x(N) = v(N)
    null = scipy.linalg.null_space(np.ones((1, n))).T  # orthonormal basis of {sum = 0}
    problem = (fixed, fixed_values, x_phi, null)
    stage = _generate(table, state, working, *problem, start=start, batch=batch)
    # stage.x is the point of {x(N) = v(N), x(S) >= v(S) - t} closest to x_phi, and no
    # coalition exceeds t there by more than ~1e-11, so t <= eps* <= max excess <= t + ~1e-11
    x, eps = stage.x, stage.max_excess
    converged = stage.certified_by == "projection" and eps - stage.t <= _TOL
    if not converged:  # never seen; fall back to the LP's (solver-dependent) vertex
        failure = (
            "no least-distance solver passed the KKT check"
            if stage.certified_by == "vertex"
            else f"the projection violates a coalition by {(eps - stage.t) * scale:.3g}"
        )
        if stage.certified_by == "projection":  # certify the vertex against the table
            stage = _generate(
                table, state, stage.working, *problem, start=0, batch=batch, project=False
            )
        x = stage.x_lp + (u[-1] - stage.x_lp.sum()) / n
        eps = table.max_excess(x)
        stage.info["tie_break_failed"] = failure
    return LeastCoreResult(
        values=x * scale + 0.0,  # + 0.0 turns -0.0 into 0.0
        names=game.names,
        method="least_core",
        converged=converged,
        n_evaluations=u.size,
        epsilon=eps * scale + 0.0,
        info=stage.info
        | {
            "lp_value": stage.t * scale,
            "distance_to_shapley": float(np.linalg.norm(x * scale - phi)),
        },
    )


def core_contains(game: ValueTable, x: ArrayLike, tol: float = 1e-9) -> bool:
    """Whether the allocation ``x`` lies in the core of ``game``.

    Parameters
    ----------
    game : CoalitionGame
    x : array-like of shape (n,)
        One payoff per player.
    tol : float
        Absolute tolerance on efficiency and on every coalition constraint.

    Returns
    -------
    bool
        ``|x(N) - v(N)| <= tol`` and ``x(S) >= v(S) - tol`` for every non-empty ``S``.

    Examples
    --------
    >>> from coopml.coalitions.games import glove_game
    >>> core_contains(glove_game(1, 2), [1.0, 0.0, 0.0])
    True
    >>> core_contains(glove_game(1, 2), [0.5, 0.25, 0.25])
    False
    """
    v = _check_game(game).zero_normalized()
    tol = check_positive("tol", tol, strict=False)
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (game.n_players,) or not np.all(np.isfinite(x)):
        raise ValueError(
            f"parameter 'x' must be a finite array of shape ({game.n_players},), one payoff "
            f"per player; got shape {x.shape}"
        )
    sums = coalition_sums(x)
    return bool(abs(sums[-1] - v[-1]) <= tol and np.all(sums[1:] >= v[1:] - tol))


# ---------------------------------------------------------------------- kernels
# Coalition states in the generation bookkeeping (one byte per coalition).
_FREE, _WORKING, _DROPPED = 0, 1, 2


class _Table:
    r"""The scaled game ``u`` seen as a ``(2^{n-h}, 2^h)`` matrix, ``h = n // 2``.

    Row ``S >> h`` and column ``S & (2^h - 1)`` hold ``u(S)``, so the excess of every
    coalition at ``x`` is ``U - x_high(S >> h) - x_low(S & (2^h - 1))`` with two small
    subset-sum tables: one pass over the table, in blocks, with no per-coalition index.
    """

    def __init__(self, u: NDArray[np.float64]) -> None:
        self.u = u
        self.n = u.size.bit_length() - 1
        self.h = self.n // 2
        self.U = u.reshape(-1, 1 << self.h)
        self.rows = max(1, _BLOCK >> self.h)  # rows per block

    def new_state(self) -> NDArray[np.uint8]:
        """All coalitions free, except the empty and the grand coalition."""
        state = np.zeros(self.u.size, dtype=np.uint8)
        state[[0, -1]] = _DROPPED
        return state

    def _blocks(self, x: NDArray[np.float64]) -> Iterator[tuple[int, NDArray[np.float64]]]:
        """Yield ``(offset, excesses)`` of consecutive blocks (∅ and N set to -inf)."""
        x_low, x_high = coalition_sums(x[: self.h]), coalition_sums(x[self.h :])
        n_rows = self.U.shape[0]
        for r0 in range(0, n_rows, self.rows):
            r1 = min(r0 + self.rows, n_rows)
            e = self.U[r0:r1] - x_high[r0:r1, None]
            e -= x_low
            e = e.ravel()
            if r0 == 0:
                e[0] = -np.inf
            if r1 == n_rows:
                e[-1] = -np.inf
            yield r0 << self.h, e

    def max_excess(self, x: NDArray[np.float64]) -> float:
        """:math:`\\max_{\\emptyset \\ne S \\subsetneq N} v(S) - x(S)`."""
        return max(float(e.max()) for _, e in self._blocks(x))

    def add_most_violated(
        self,
        x: NDArray[np.float64],
        state: NDArray[np.uint8],
        threshold: float,
        k: int,
        span: SpanTest | None = None,
    ) -> tuple[float, NDArray[np.int64]]:
        """One pass: the maximum excess over all proper coalitions, and the (at most)
        ``k`` free coalitions of largest excess above ``threshold``, which are marked
        as working. With ``span``, free candidates in the span of the fixed coalitions
        are marked dropped instead (their excess is determined)."""
        masks = np.zeros(0, dtype=np.int64)
        excess = np.zeros(0)
        e_max, bar = -np.inf, threshold  # bar: k-th largest excess kept so far, once k are
        for offset, e in self._blocks(x):
            e_max = max(e_max, float(e.max()))
            idx = np.flatnonzero((e > bar) & (state[offset : offset + e.size] == _FREE))
            if idx.size == 0:
                continue
            new_masks, new_excess = _top_independent(idx + offset, e[idx], k, state, span)
            masks, excess = np.r_[masks, new_masks], np.r_[excess, new_excess]
            if masks.size >= k:
                top = np.argpartition(-excess, k - 1)[:k]
                masks, excess = masks[top], excess[top]
                bar = max(bar, float(excess.min()))
        state[masks] = _WORKING
        return e_max, np.sort(masks)


def _top_independent(
    masks: NDArray[np.int64],
    excess: NDArray[np.float64],
    k: int,
    state: NDArray[np.uint8],
    span: SpanTest | None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``k`` candidates of largest excess that are not spanned (spanned ones tested on
    the way are marked dropped), in groups of ``4 k`` so that few are tested."""
    if span is None:
        if masks.size > k:
            top = np.argpartition(-excess, k - 1)[:k]
            masks, excess = masks[top], excess[top]
        return masks, excess
    kept_m, kept_e, n_kept = [], [], 0
    while masks.size and n_kept < k:
        if masks.size > 4 * k:
            order = np.argpartition(-excess, 4 * k - 1)
            head, rest = order[: 4 * k], order[4 * k :]
        else:
            head, rest = np.arange(masks.size), np.zeros(0, dtype=np.int64)
        spanned = span(masks[head])
        state[masks[head[spanned]]] = _DROPPED
        good = head[~spanned]
        kept_m.append(masks[good])
        kept_e.append(excess[good])
        n_kept += good.size
        masks, excess = masks[rest], excess[rest]
    return np.concatenate(kept_m), np.concatenate(kept_e)


def _initial_working_set(n: int) -> NDArray[np.int64]:
    """Singletons and their complements (the singletons keep every restricted LP bounded)."""
    singles = np.int64(1) << np.arange(n, dtype=np.int64)
    masks = np.unique(np.r_[singles, ((1 << n) - 1) ^ singles])
    return masks[(masks > 0) & (masks < (1 << n) - 1)]  # no empty or grand coalition


@dataclass
class _Stage:
    """Outcome of :func:`_generate` (scaled game)."""

    t: float  #: optimal value of the LP (restricted to ``working``, certified for all)
    x_lp: NDArray[np.float64]  #: the LP's vertex (may violate coalitions outside the set)
    lam: NDArray[np.float64]  #: duals of the ``working`` rows (an optimal dual of the full LP)
    x: NDArray[np.float64]  #: the certificate: optimal for the full LP
    max_excess: float  #: max excess at ``x`` over *all* proper coalitions
    working: NDArray[np.int64]  #: final working set, sorted
    certified_by: str  #: "projection" or "vertex" (fallback)
    info: dict[str, Any]


def _generate(
    table: _Table,
    state: NDArray[np.uint8],
    working: NDArray[np.int64],
    fixed: NDArray[np.int64],
    fixed_values: NDArray[np.float64],
    reference: NDArray[np.float64],
    null: NDArray[np.float64],
    *,
    start: int,
    batch: int,
    span: SpanTest | None = None,
    project: bool = True,
) -> _Stage:
    r"""Solve :math:`\min t` s.t. :math:`v(S) - x(S) \le t` for every free (``state``
    not dropped) coalition and ``x(fixed) = fixed_values``, by constraint generation
    from the working set ``working`` (whose coalitions are marked working in ``state``).

    Each round solves the LP over the working set (value :math:`t`, a lower bound) and
    then the point :math:`y` closest to ``reference`` that satisfies the fixed rows and
    :math:`e(S, y) \le t` on the working set (``null``: orthonormal rows spanning the
    null space of the fixed rows). The pass over the table at :math:`y` adds the most
    violated free coalitions; when there are none, :math:`y` is feasible for the full
    LP at value :math:`t` (to ``_CG_TOL``), which certifies that :math:`t` is optimal
    and that the working rows' duals are an optimal dual of the full LP. Separating at
    this projection, which moves little from round to round, and not at the simplex
    vertex avoids the zig-zag of vertex cuts when the optimal face is large. Should
    the projection ever fail (see :func:`_least_distance`), or with ``project=False``,
    the rounds separate at the vertex instead (``certified_by="vertex"``).
    """
    iterations, rounds = 0, 0
    mode = "projection" if project else "vertex"
    x0 = _affine_point(fixed, fixed_values, reference)
    if start > 0:  # the coalitions that complain most about the reference point
        working = np.r_[working, table.add_most_violated(x0, state, -np.inf, start, span)[1]]
    while True:
        rounds += 1
        t, x_lp, lam, info = _min_max_excess(table.u, working, fixed, fixed_values)
        iterations += info["lp_iterations"]
        y = _closest_point(table.u, working, t, x0, null) if mode == "projection" else None
        if y is None:
            y, mode = x_lp, "vertex"
        e_max, added = table.add_most_violated(y, state, t + _CG_TOL, batch, span)
        if added.size == 0:
            break
        working = np.r_[working, added]
    order = np.argsort(working)
    info |= {
        "lp_iterations": iterations,
        "generation_rounds": rounds,
        "working_set": int(working.size),
    }
    return _Stage(t, x_lp, lam[order], y, e_max, working[order], mode, info)


def _affine_point(
    fixed: NDArray[np.int64],
    fixed_values: NDArray[np.float64],
    reference: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The point of ``{x : x(fixed) = fixed_values}`` closest to ``reference``."""
    A = _incidence(fixed, reference.size)
    return reference + np.linalg.lstsq(A, fixed_values - A @ reference, rcond=None)[0]


def _closest_point(
    u: NDArray[np.float64],
    working: NDArray[np.int64],
    t: float,
    x0: NDArray[np.float64],
    null: NDArray[np.float64],
) -> NDArray[np.float64] | None:
    r"""The point closest to ``x0`` of :math:`\{x_0 + N^\top z\}` (``N = null``) with
    :math:`x(S) \ge u(S) - t` for ``S`` in ``working``, or None if no solver succeeds.

    With :math:`x = x_0 + N^\top z` this is the least-distance problem
    :math:`\min \|z\|` s.t. :math:`G z \ge h`, :math:`G = B N^\top`,
    :math:`h = u(S) - t - x_0(S)`; see :func:`_least_distance`.
    """
    B = _incidence(working, x0.size)
    h = u[working] - (t + _PROJ_SLACK) - B @ x0
    if h.max() <= 0:
        return x0
    z = _least_distance(B @ null.T, h, maxiter=50 * working.size)
    return None if z is None else x0 + null.T @ z


def _least_distance(
    G: NDArray[np.float64], h: NDArray[np.float64], maxiter: int
) -> NDArray[np.float64] | None:
    r""":math:`\arg\min \|z\|` s.t. :math:`G z \ge h`, as an NNLS (Lawson & Hanson 1974,
    ch. 23): if :math:`w \ge 0` minimises :math:`\|E w - f\|` with
    :math:`E = [G^\top; h^\top]` and :math:`f = e_{d+1}`, the residual :math:`r` gives
    :math:`z = -r_{1..d} / r_{d+1}` and the multipliers :math:`\mu = w / (-r_{d+1})`.

    The answer is checked against the KKT conditions, which suffice for this convex
    problem: :math:`G z \ge h` and a duality gap :math:`\mu^\top (G z - h)` at
    rounding level. SciPy's NNLS is tried first; since SciPy 1.12 it has been known to
    return a suboptimal point without an error on degenerate problems (scipy issues
    21140, 25389), so a failed check retries with SciPy's bounded-variable least
    squares (BVLS). None if both fail.

    The problem is solved for :math:`h / \max|h|` (and :math:`z` scaled back): the
    NNLS form compares :math:`h` with the unit target :math:`f`, so excesses many orders
    of magnitude below 1 (a game valued in 1e-7) would otherwise look inconsistent.
    """
    unit = float(np.abs(h).max())
    if unit == 0.0:
        return np.zeros(G.shape[1])
    z = _least_distance_unit(G, h / unit, maxiter)
    if z is None:
        return None
    z, scale = z * unit, 1.0 + unit
    slack = G @ z - h
    return z if slack.min() >= -1e-11 * scale else None


def _least_distance_unit(
    G: NDArray[np.float64], h: NDArray[np.float64], maxiter: int
) -> NDArray[np.float64] | None:
    """:func:`_least_distance` for ``max |h| = 1``, KKT-checked."""
    E = np.vstack([G.T, h])
    f = np.eye(E.shape[0])[-1]
    scale = 2.0
    for solver in (nnls, _bvls):
        try:
            w = solver(E, f, maxiter=maxiter)[0]
        except (RuntimeError, np.linalg.LinAlgError):
            continue
        r = E @ w - f
        if not r[-1] < 0:  # r[-1] = 0 means the constraints are inconsistent
            continue
        z, mu = -r[:-1] / r[-1], w / -r[-1]
        slack = G @ z - h
        if slack.min() >= -1e-11 * scale and mu @ np.abs(slack) <= 1e-12 * scale * (1 + mu.sum()):
            return z
    return None


def _bvls(
    A: NDArray[np.float64], b: NDArray[np.float64], maxiter: int
) -> tuple[NDArray[np.float64], float]:
    """NNLS as bounded-variable least squares (SciPy's ``lsq_linear(method="bvls")``, Stark
    & Parker 1995), an independent solver to fall back on; same return as ``nnls``."""
    res = lsq_linear(A, b, bounds=(0.0, np.inf), method="bvls", max_iter=maxiter)
    if res.status < 1:
        raise RuntimeError(res.message)
    return res.x, float(np.linalg.norm(A @ res.x - b))


def _incidence(masks: NDArray[np.int64], n: int) -> NDArray[np.float64]:
    """Characteristic vectors of coalitions: row ``k`` has 1 at the members of ``masks[k]``."""
    return ((masks[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _min_max_excess(
    v: NDArray[np.float64],
    free: NDArray[np.int64],
    fixed: NDArray[np.int64],
    fixed_values: NDArray[np.float64],
) -> tuple[float, NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    r"""Solve :math:`\min t` s.t. :math:`v(S) - x(S) \le t` for ``S`` in ``free`` and
    :math:`x(S) = ` ``fixed_values`` for ``S`` in ``fixed`` (HiGHS, sparse rows).

    Returns ``t``, ``x`` of shape ``(n,)``, the dual values :math:`\lambda \ge 0` of the
    ``free`` rows (shape ``(len(free),)``, summing to 1) and an info dict.
    """
    n = v.size.bit_length() - 1
    m = free.size
    rows, cols = np.nonzero(_incidence(free, n))
    # variables (x_0, ..., x_{n-1}, t); row S reads -x(S) - t <= -v(S)
    A_ub = scipy.sparse.csr_array(
        (-np.ones(rows.size + m), (np.r_[rows, np.arange(m)], np.r_[cols, np.full(m, n)])),
        shape=(m, n + 1),
    )
    A_eq = scipy.sparse.csr_array(np.c_[_incidence(fixed, n), np.zeros(fixed.size)])
    res = linprog(
        np.eye(n + 1)[n],
        A_ub=A_ub,
        b_ub=-v[free],
        A_eq=A_eq,
        b_eq=fixed_values,
        bounds=(None, None),
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"least-core LP failed (HiGHS status {res.status}): {res.message}")
    info = {
        "lp_status": int(res.status),
        "lp_message": str(res.message),
        "lp_iterations": int(res.nit),
    }
    return float(res.x[n]), res.x[:n], -res.ineqlin.marginals, info
