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
the nucleolus. Each LP has :math:`n + 1` variables and up to :math:`2^n - 2` rows:
fine up to :math:`n \approx 15` (milliseconds for :math:`n \le 8`, about 1 s at 15).

References
----------
D. Schmeidler, "The nucleolus of a characteristic function game", SIAM Journal on
Applied Mathematics 17(6) (1969), pp. 1163-1170.
M. Maschler, B. Peleg and L. S. Shapley, "Geometric properties of the kernel, nucleolus,
and related solution concepts", Mathematics of Operations Research 4(4) (1979),
pp. 303-338.
A. Kopelowitz, "Computation of the kernels of simple games and the nucleolus of n-person
games", RM 31, Hebrew University of Jerusalem, 1967.
"""

from __future__ import annotations

import numpy as np

from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.least_core import _incidence, _min_max_excess
from coopml.coalitions.result import LeastCoreResult
from coopml.coalitions.shapley import _check_game

__all__ = ["nucleolus"]

_DUAL_TOL = 1e-7  # duals below this are treated as zero (HiGHS dual feasibility tolerance)
_SPAN_TOL = 1e-9  # distance of a 0/1 vector to the fixed span below which it is spanned


def nucleolus(game: CoalitionGame) -> LeastCoreResult:
    """The nucleolus, by the sequence of least-core LPs.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    LeastCoreResult
        ``values`` of shape ``(n,)``; ``epsilon`` is the least-core value (the first
        stage); ``info["stage_epsilons"]`` lists the optimal maximum excess of every
        stage, ``info["lp_iterations"]`` the total simplex iterations. ``converged`` is
        false only if the fixed system did not reach rank ``n`` within ``n`` stages.

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
    v = _check_game(game).zero_normalized()
    n = game.n_players
    scale = max(1.0, float(np.abs(v).max()))
    u = v / scale  # solve the scaled game so that tolerances are relative
    grand = v.size - 1
    fixed, fixed_values = np.array([grand]), u[-1:]  # independent rows x(S) = u(S) - eps_S
    basis = np.full((1, n), n**-0.5)  # orthonormal basis of the span of the fixed rows
    free = np.arange(1, grand)
    epsilons: list[float] = []
    iterations = 0
    x = np.full(n, u[-1] / n)
    while fixed.size < n and free.size and len(epsilons) < n:
        t, x, lam, info = _min_max_excess(u, free, fixed, fixed_values)
        epsilons.append(t)
        iterations += info["lp_iterations"]
        tight = free[lam > min(_DUAL_TOL, lam.max() / 2)]
        for S in tight:  # keep a linearly independent subset of the tight coalitions
            r = ((S >> np.arange(n)) & 1).astype(np.float64)
            for _ in range(2):  # Gram-Schmidt, twice for orthogonality in floating point
                r -= basis.T @ (basis @ r)
            if np.linalg.norm(r) > _SPAN_TOL:
                basis = np.vstack([basis, r / np.linalg.norm(r)])
                fixed, fixed_values = np.r_[fixed, S], np.r_[fixed_values, u[S] - t]
        B = _incidence(free, n)
        free = free[np.linalg.norm(B - (B @ basis.T) @ basis, axis=1) > _SPAN_TOL]
    converged = fixed.size == n
    if converged:
        x = np.linalg.solve(_incidence(fixed, n), fixed_values)
    return LeastCoreResult(
        values=x * scale + 0.0,  # + 0.0 turns -0.0 into 0.0
        names=game.names,
        method="nucleolus",
        converged=converged,
        n_evaluations=v.size,
        epsilon=epsilons[0] * scale + 0.0 if epsilons else 0.0,
        info={
            "stage_epsilons": [e * scale + 0.0 for e in epsilons],
            "n_stages": len(epsilons),
            "lp_iterations": iterations,
        },
    )
