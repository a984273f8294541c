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

an LP with :math:`n + 1` variables and :math:`2^n - 2` constraints, solved with HiGHS.
:math:`\varepsilon^* \le 0` iff the core is non-empty. As everywhere in coopml, ``v``
is the zero-normalised game :math:`v(S) - v(\emptyset)` (see
:class:`~coopml.coalitions.CoalitionGame`), so allocations divide the gain over the
empty coalition.

The least core is usually a set. :func:`least_core` returns the point of it **closest
in Euclidean norm to the Shapley value**: the Shapley value itself whenever it is in
the least core, otherwise the smallest correction that makes it stable. The point is
unique (strictly convex objective over a convex set), so it does not depend on which
optimal vertex the solver happens to find; it is computed exactly as a least-distance
problem with Lawson & Hanson's NNLS (1974, ch. 23).

References
----------
M. Maschler, B. Peleg and L. S. Shapley, "Geometric properties of the kernel, nucleolus,
and related solution concepts", Mathematics of Operations Research 4(4) (1979),
pp. 303-338.
C. L. Lawson and R. J. Hanson, *Solving Least Squares Problems*, Prentice-Hall, 1974.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog, nnls

from coopml._validation import check_positive
from coopml.coalitions._bitmask import coalition_sums
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.result import LeastCoreResult
from coopml.coalitions.shapley import _check_game, shapley_from_table

__all__ = ["core_contains", "least_core"]

#: Tolerance, relative to ``max(1, max_S |v(S)|)``, for least-core membership checks.
_TOL = 1e-7


def least_core(game: CoalitionGame) -> LeastCoreResult:
    r"""The least-core allocation closest to the Shapley value, and :math:`\varepsilon^*`.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    LeastCoreResult
        ``values`` (shape ``(n,)``) is efficient and satisfies
        :math:`x(S) \ge v(S) - \varepsilon^*` up to ``1e-7 * max(1, max|v|)``
        (``converged`` reports this check); ``epsilon`` is :math:`\varepsilon^*` (the
        maximum excess attained by the LP solution); ``info`` holds the LP status,
        message and iteration count and the distance to the Shapley value. For one
        player ``epsilon`` is 0 (there is no proper coalition to constrain). Should the
        projection ever fail that check, the LP's vertex is returned instead, with
        ``converged=False`` and the violation in ``info["tie_break_failed"]``.

    Raises
    ------
    RuntimeError
        If HiGHS does not solve the LP (the message is the solver's).

    Examples
    --------
    >>> from coopml.coalitions.games import glove_game
    >>> r = least_core(glove_game(1, 2))
    >>> r.values.round(6).tolist(), round(r.epsilon, 6)
    ([1.0, 0.0, 0.0], 0.0)
    """
    v = _check_game(game).zero_normalized()
    n = game.n_players
    phi = shapley_from_table(v)
    if n == 1:
        return LeastCoreResult(
            values=v[-1:], names=game.names, method="least_core", n_evaluations=v.size
        )
    scale = max(1.0, float(np.abs(v).max()))
    u = v / scale  # solve the scaled game so that tolerances are relative
    grand = v.size - 1
    free = np.arange(1, grand)
    _, x_lp, _, info = _min_max_excess(u, free, np.array([grand]), u[-1:])
    x_lp += (u[-1] - x_lp.sum()) / n  # exactly efficient; eps is attained by x_lp
    eps = float(np.max(u[free] - coalition_sums(x_lp)[free]))
    # x = phi + Q y, Q an orthonormal basis of {sum = 0}: least distance ||y|| subject to
    # (B Q) y >= h with h = u(S) - eps - phi(S); solved as an NNLS (Lawson & Hanson, ch. 23).
    x = (phi + (v[-1] - phi.sum()) / n) / scale  # projection onto x(N) = v(N) if v(0) != 0
    h = u[free] - (eps + 1e-12) - coalition_sums(x)[free]
    if h.max() > 0:
        Q = scipy.linalg.null_space(np.ones((1, n)))
        E = np.vstack([(_incidence(free, n) @ Q).T, h])
        f = np.eye(n)[-1]
        r = E @ nnls(E, f, maxiter=50 * free.size)[0] - f
        x = x + Q @ (-r[:-1] / r[-1])
    violation = float(np.max(u[free] - coalition_sums(x)[free]) - eps)
    converged = violation <= _TOL  # False also for NaN
    if not converged:  # never seen; fall back to the LP's (solver-dependent) vertex
        x, info["tie_break_failed"] = x_lp, violation * scale
    return LeastCoreResult(
        values=x * scale + 0.0,  # + 0.0 turns -0.0 into 0.0
        names=game.names,
        method="least_core",
        converged=converged,
        n_evaluations=v.size,
        epsilon=eps * scale + 0.0,
        info=info | {"distance_to_shapley": float(np.linalg.norm(x * scale - phi))},
    )


def core_contains(game: CoalitionGame, x: ArrayLike, tol: float = 1e-9) -> bool:
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
