r"""Certified Nash equilibria and social optima of the round game.

An equilibrium of the round game (:mod:`coopml.federated.round_game`) maximises the
weighted potential :math:`\Phi`; the social optimum maximises :math:`\sum_i u_i`. Both
are first found from the scalar fixed point in effective data: given :math:`E`, the
first-order condition of organisation :math:`i` gives

.. math::

    s_i(E) = \mathrm{clip}\Big(\sqrt{\frac{\phi_i h_i^0 n_i}{c_i - w_i\kappa P'(E)}} -
    n_i,\ 0,\ s_i^{max}\Big)

(:math:`s_i^{max}` when the denominator is :math:`\le 0`; equilibrium: :math:`w_i =
B_i`, :math:`\phi_i = G_{ii}\mu`; optimum: :math:`w_i = W = \sum_j B_j`, :math:`\phi_i =
\mu\sum_j G_{ji}`), and :math:`E = E_0 + \kappa\sum_i s_i(E)` is solved with
:func:`scipy.optimize.brentq`. When :math:`\phi_i h_i^0 = 0` (no skew penalty, or no
skew) :math:`s_i(E)` jumps from :math:`s_i^{max}` to 0 and the fixed point can land on a
profile that is no equilibrium; when a column sum :math:`\sum_j G_{ji}` is negative
welfare is not concave. So every solution is **certified**:

* an equilibrium carries ``max_deviation_gain``, the largest utility gain any
  organisation gets from a unilateral deviation (a grid over :math:`[0, s_i^{max}]` with
  both corners, refined by ever finer grids between the best grid point's neighbours
  down to :math:`10^{-12} s_i^{max}`; all organisations in one NumPy batch per step).
  If it exceeds the tolerance, exact best-response dynamics take over from the
  fixed point (and from the corners of the box); ``converged`` is true only when the
  returned profile passes the check.
* an optimum is searched globally (the fixed point, the equilibrium, the corner
  profiles, coordinate ascent with a global one-dimensional search per organisation,
  polished by a bounded truncated-Newton search); it carries ``max_deviation_gain``
  (the largest welfare gain from changing one organisation's amount) and
  ``welfare_check``, the best welfare of an independent multi-start search
  (:func:`scipy.optimize.minimize`, TNC); ``converged`` requires both to be within
  tolerance.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.stats import qmc

from coopml._serialization import to_jsonable
from coopml._validation import check_int, check_positive
from coopml.federated._vectors import per_org
from coopml.federated.round_game import (
    RoundGame,
    arr,
    check_profile,
    utilities,
    utilities_batch,
    weights,
)
from coopml.federated.skew import falling_root, inverse_marginal

__all__ = [
    "GameSolution",
    "best_response_dynamics",
    "deviation_gains",
    "nash_equilibrium",
    "social_optimum",
    "welfare_deviation_gains",
]

FloatArray = NDArray[np.float64]

_N_GRID = 201
_N_ZOOM = 21  # points of each finer grid of the vectorised line search
_MAX_ZOOM = 64  # bound on its rounds (about 12 reach the tolerance)
_MAX_CORNERS = 12  # enumerate the 2^N corner profiles up to this many organisations


@dataclass(frozen=True, kw_only=True)
class GameSolution:
    """A strategy profile of the round game, with its certificate.

    Attributes
    ----------
    s : ndarray of shape (N,)
        Synthetic samples per organisation.
    E : float
        Effective data :math:`E(s)`.
    utilities : ndarray of shape (N,)
        :math:`u_i(s)` (no transfers).
    converged : bool
        Whether the solver met its tolerance **and** the certificate holds
        (``max_deviation_gain``, and for an optimum ``welfare_check``, within tolerance).
    n_iter : int
        Iterations spent (root-finder steps, best-response or coordinate sweeps).
    max_deviation_gain : float
        Equilibrium: the largest gain in utility any organisation gets by changing its
        own amount alone. Optimum: the largest gain in welfare from changing one
        organisation's amount. ``nan`` when not checked.
    welfare_check : float
        Optimum only: the best welfare an independent search found (``nan`` otherwise).
    method : str
        ``"fixed_point"``, ``"best_response"`` or ``"global_search"``.
    """

    s: FloatArray
    E: float
    utilities: FloatArray
    converged: bool
    n_iter: int
    max_deviation_gain: float = float("nan")
    welfare_check: float = float("nan")
    method: str = "fixed_point"

    @property
    def social_welfare(self) -> float:
        """Sum of utilities."""
        return float(self.utilities.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(
            {
                "s": self.s,
                "E": self.E,
                "utilities": self.utilities,
                "social_welfare": self.social_welfare,
                "converged": self.converged,
                "n_iter": self.n_iter,
                "max_deviation_gain": self.max_deviation_gain,
                "welfare_check": self.welfare_check,
                "method": self.method,
            }
        )


# ---------------------------------------------------------------------------------------
# Certificates: one-dimensional global searches on the real payoffs
# ---------------------------------------------------------------------------------------


def _best_on_line(
    game: RoundGame, s: FloatArray, i: int, value: Any, n_grid: int
) -> tuple[float, float]:
    """``(argmax, max)`` over ``x`` in ``[0, s_max_i]`` of ``value(S)`` with ``S`` the
    profile ``s`` whose entry ``i`` is ``x``: a grid with both ends, then a bounded
    scalar search between the best grid point's neighbours."""
    hi = float(arr(game, "s_max")[i])
    grid = np.linspace(0.0, hi, n_grid)
    S = np.repeat(s[None, :], n_grid, axis=0)
    S[:, i] = grid
    vals = value(S)
    k = int(np.argmax(vals))
    x_best, v_best = float(grid[k]), float(vals[k])
    if hi > 0:

        def neg(x: float) -> float:
            row = s.copy()
            row[i] = x
            return -float(value(row[None, :])[0])

        res = minimize_scalar(
            neg,
            bounds=(float(grid[max(k - 1, 0)]), float(grid[min(k + 1, n_grid - 1)])),
            method="bounded",
            options={"xatol": 1e-12 * max(1.0, hi)},
        )
        if -float(res.fun) > v_best:
            x_best, v_best = float(res.x), -float(res.fun)
    return x_best, v_best


def _best_on_lines(game: RoundGame, s: FloatArray, value: Any, n_grid: int) -> FloatArray:
    """:func:`_best_on_line`'s maximum for every organisation at once (vectorised).

    ``value(S, owner)`` scores rows ``S`` of shape (k, N), row ``r`` being the profile
    ``s`` with entry ``owner[r]`` changed. The grid over ``[0, s_max_i]`` (both ends) is
    evaluated for all organisations in one batch; the bracket between the best grid
    point's neighbours is then narrowed by finer grids (:data:`_N_ZOOM` points, a
    tenth of the width each round) down to ``1e-12 * max(1, s_max_i)``, all lines in
    one batch per round. The best value seen is kept, so it is never below the grid's.
    """
    N = game.N
    hi = arr(game, "s_max")
    lines = np.arange(N)

    def score(X: FloatArray) -> FloatArray:
        """Values of the profiles with entry ``i`` set to each ``X[i, :]``."""
        k = X.shape[1]
        owner = np.repeat(lines, k)
        S = np.repeat(s[None, :], N * k, axis=0)
        S[np.arange(N * k), owner] = X.ravel()
        return np.asarray(value(S, owner), dtype=np.float64).reshape(N, k)

    X = hi[:, None] * np.linspace(0.0, 1.0, n_grid)[None, :]
    vals = score(X)
    k = np.argmax(vals, axis=1)
    best = vals[lines, k]
    lo = X[lines, np.maximum(k - 1, 0)]
    up = X[lines, np.minimum(k + 1, n_grid - 1)]
    xatol = 1e-12 * np.maximum(1.0, hi)
    zoom = np.linspace(0.0, 1.0, _N_ZOOM)[None, :]
    for _ in range(_MAX_ZOOM):  # each round shrinks the bracket at least tenfold
        if not np.any((hi > 0) & (up - lo > xatol)):
            break
        X = lo[:, None] + (up - lo)[:, None] * zoom
        vals = score(X)
        k = np.argmax(vals, axis=1)
        best = np.maximum(best, vals[lines, k])
        lo = X[lines, np.maximum(k - 1, 0)]
        up = X[lines, np.minimum(k + 1, _N_ZOOM - 1)]
    return best


def deviation_gains(
    game: RoundGame, s: ArrayLike, *, n_grid: int = _N_GRID, sigma: ArrayLike | None = None
) -> FloatArray:
    """Each organisation's largest utility gain from a unilateral deviation from ``s``.

    Parameters
    ----------
    game : RoundGame
    s : array-like of shape (N,)
        The profile to check.
    n_grid : int, default 201
        Grid points over ``[0, s_max_i]`` (both ends included) before the bounded
        refinement around the best one.
    sigma : array-like of shape (N,), optional
        Per-sample transfers :math:`\\sigma_i` paid to organisation ``i`` for each
        synthetic sample (:func:`coopml.federated.redistribution.redistribution`): the
        gains are then those of the transfer-augmented utilities :math:`u_i(s) +
        \\sigma_i s_i` (lump sums do not depend on the amounts and cancel).

    Returns
    -------
    ndarray of shape (N,)
        ``max_x u_i(x, s_-i) + sigma_i x - u_i(s) - sigma_i s_i``, clipped at 0.

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve, RoundGame
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.0, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> bool(deviation_gains(g, [0.0, 0.0]).max() > 1e-3)    # nobody generates: not stable
    True
    """
    s_arr = check_profile(game, s)
    check_int("n_grid", n_grid, minimum=3)
    paid = np.zeros(game.N) if sigma is None else per_org("sigma", sigma, game.N)
    base = utilities(game, s_arr) + paid * s_arr

    def own(S: FloatArray, owner: NDArray[np.intp]) -> FloatArray:
        rows = np.arange(owner.size)
        return utilities_batch(game, S)[rows, owner] + paid[owner] * S[rows, owner]

    top = _best_on_lines(game, s_arr, own, n_grid)
    return np.maximum(0.0, top - base)


def welfare_deviation_gains(game: RoundGame, s: ArrayLike, *, n_grid: int = _N_GRID) -> FloatArray:
    """The largest welfare gain from changing one organisation's amount, per organisation.

    Same search as :func:`deviation_gains` on :math:`\\sum_j u_j` instead of :math:`u_i`.
    """
    s_arr = check_profile(game, s)
    check_int("n_grid", n_grid, minimum=3)
    base = float(utilities(game, s_arr).sum())
    welfare = _welfare_batch(game)
    top = _best_on_lines(game, s_arr, lambda S, _owner: welfare(S), n_grid)
    return np.maximum(0.0, top - base)


def _welfare_batch(game: RoundGame) -> Any:
    def welfare(S: FloatArray) -> FloatArray:
        return np.asarray(utilities_batch(game, S).sum(axis=1))

    return welfare


def _scale(u: FloatArray) -> float:
    return max(1.0, float(np.max(np.abs(u))))


# ---------------------------------------------------------------------------------------
# The scalar fixed point (fast path)
# ---------------------------------------------------------------------------------------


def _profile_at(game: RoundGame, E: float, w: FloatArray, phi: FloatArray) -> FloatArray:
    """First-order-condition response to effective data ``E``: solves ``w_i kappa P'(E)
    + phi_i (-h_i'(s_i)) - c_i = 0`` for each ``i`` (all or nothing where ``phi_i h0_i = 0``)."""
    n, h0, c, s_max = arr(game, "n"), arr(game, "h0"), arr(game, "c"), arr(game, "s_max")
    dP = float(game.curve.derivative(E))
    out = np.empty(game.N)
    for i in range(game.N):
        denom = c[i] - w[i] * game.kappa * dP
        if denom <= 0:
            out[i] = s_max[i]
        elif phi[i] <= 0 or h0[i] == 0:
            out[i] = 0.0
        else:
            out[i] = inverse_marginal(game.skew_map, denom / phi[i], h0[i], n[i], s_max[i])
    return out


def _fixed_point(
    game: RoundGame, w: FloatArray, phi: FloatArray, tol: float, max_iter: int
) -> tuple[FloatArray, bool, int]:
    """Root of ``E0 + kappa * sum_i s_i(E) - E`` (decreasing in ``E``) by brentq."""
    s_max = arr(game, "s_max")
    lo, hi = game.E0, game.E0 + game.kappa * float(s_max.sum())

    def gap(E: float) -> float:
        return game.E0 + game.kappa * float(_profile_at(game, E, w, phi).sum()) - E

    converged, n_iter = True, 0
    if hi > lo and gap(hi) < 0 < gap(lo):
        E, info = brentq(
            gap, lo, hi, xtol=tol * max(1.0, hi), maxiter=max_iter, full_output=True, disp=False
        )
        converged, n_iter = bool(info.converged), int(info.iterations)
    else:
        E = hi if hi > lo and gap(hi) >= 0 else lo
    return _profile_at(game, float(E), w, phi), converged, n_iter


def _solution(
    game: RoundGame, s: FloatArray, converged: bool, n_iter: int, **extra: Any
) -> GameSolution:
    return GameSolution(
        s=s,
        E=game.E0 + game.kappa * float(s.sum()),
        utilities=utilities(game, s),
        converged=converged,
        n_iter=n_iter,
        **extra,
    )


# ---------------------------------------------------------------------------------------
# Nash equilibrium
# ---------------------------------------------------------------------------------------


def _best_response(game: RoundGame, i: int, s: FloatArray, B_i: float, phi_i: float) -> float:
    """Maximiser of ``u_i(., s_-i)``; its derivative falls in ``s_i`` (``phi_i >= 0``)."""
    n, h0, c, s_max = arr(game, "n"), arr(game, "h0"), arr(game, "c"), arr(game, "s_max")
    E_others = game.E0 + game.kappa * float(s.sum() - s[i])

    def marginal(x: float) -> float:
        dP = float(game.curve.derivative(E_others + game.kappa * x))
        dh = float(game.skew_map.derivative(x, h0[i], n[i]))
        return B_i * game.kappa * dP - phi_i * dh - c[i]

    return falling_root(marginal, float(s_max[i]), 1e-13)


def _sweeps(game: RoundGame, s: FloatArray, tol: float, max_iter: int) -> tuple[bool, int]:
    """Gauss-Seidel best responses in place until no one moves by more than ``tol``."""
    B = weights(game)
    phi = np.diag(game.payoff_matrix) * game.mu
    for sweep in range(1, max_iter + 1):
        change = 0.0
        for i in range(game.N):
            new = _best_response(game, i, s, float(B[i]), float(phi[i]))
            change = max(change, abs(new - s[i]))
            s[i] = new
        if change <= tol:
            return True, sweep
    return False, max_iter


def best_response_dynamics(
    game: RoundGame,
    s0: ArrayLike | None = None,
    *,
    tol: float = 1e-9,
    max_iter: int = 1000,
    certify_tol: float = 1e-9,
) -> GameSolution:
    """Sequential (Gauss-Seidel) best responses from ``s0`` until no one moves by > ``tol``.

    Every best response maximises the organisation's (concave) utility exactly. In a
    potential game with a concave potential the sweeps approach an equilibrium; the
    result is certified like :func:`nash_equilibrium`'s, which it checks independently.
    """
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_positive("certify_tol", certify_tol)
    s = np.zeros(game.N) if s0 is None else check_profile(game, s0).copy()
    converged, n_iter = _sweeps(game, s, tol, max_iter)
    gain = float(deviation_gains(game, s).max())
    ok = converged and gain <= certify_tol * _scale(utilities(game, s))
    return _solution(game, s, ok, n_iter, max_deviation_gain=gain, method="best_response")


def nash_equilibrium(
    game: RoundGame, *, tol: float = 1e-12, max_iter: int = 200, certify_tol: float = 1e-9
) -> GameSolution:
    r"""A Nash equilibrium (a maximiser of the potential :math:`\Phi`), certified.

    The scalar fixed point gives :math:`s_i(E) = \mathrm{clip}(\sqrt{G_{ii}\mu h_i^0 n_i /
    (c_i - B_i\kappa P'(E))} - n_i, 0, s_i^{max})`. The profile is then checked for
    profitable unilateral deviations; if one gains more than ``certify_tol`` (relative
    to ``max(1, max |u|)``) -- the all-or-nothing case :math:`G_{ii}\mu h_i^0 = 0` --
    exact best-response dynamics continue from the fixed point and from both corners of
    the box, and the best-certified profile is returned. The equilibrium is unique when
    every :math:`G_{ii}\mu h_i^0 > 0`; otherwise it is one of possibly many.

    Parameters
    ----------
    game : RoundGame
    tol : float, default 1e-12
        Relative tolerance of the fixed point in :math:`E`.
    max_iter : int, default 200
        Bound on root-finder iterations and on best-response sweeps.
    certify_tol : float, default 1e-9
        Largest deviation gain accepted, relative to ``max(1, max_i |u_i|)``.

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve, RoundGame
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> ne = nash_equilibrium(g)
    >>> ne.s.round(2), ne.converged, ne.max_deviation_gain < 1e-9
    (array([242.8, 460.5]), True, True)

    Without a skew penalty the fixed point alone lands on a corner that is no equilibrium;
    the certificate catches it and best responses repair it:

    >>> flat = g.replace(mu=0.0)
    >>> ne = nash_equilibrium(flat)
    >>> ne.method, ne.converged, ne.s.round(1)
    ('best_response', True, array([  0. , 449.7]))
    """
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_positive("certify_tol", certify_tol)
    B = weights(game)
    phi = np.diag(game.payoff_matrix) * game.mu
    s, solved, n_iter = _fixed_point(game, B, phi, tol, max_iter)
    gain = float(deviation_gains(game, s).max())
    if solved and gain <= certify_tol * _scale(utilities(game, s)):
        return _solution(game, s, True, n_iter, max_deviation_gain=gain)
    best: tuple[float, FloatArray, bool, int] | None = None
    for start in (s, np.zeros(game.N), arr(game, "s_max")):
        trial = start.copy()
        swept, k = _sweeps(game, trial, 1e-9 * max(1.0, float(arr(game, "s_max").max())), max_iter)
        n_iter += k
        g_trial = float(deviation_gains(game, trial).max())
        if best is None or g_trial < best[0]:
            best = (g_trial, trial, swept, k)
        if g_trial <= certify_tol * _scale(utilities(game, trial)):
            break
    assert best is not None
    gain, s, swept, _ = best
    ok = swept and gain <= certify_tol * _scale(utilities(game, s))
    return _solution(game, s, ok, n_iter, max_deviation_gain=gain, method="best_response")


# ---------------------------------------------------------------------------------------
# Social optimum
# ---------------------------------------------------------------------------------------


def _welfare_terms(game: RoundGame) -> tuple[float, FloatArray]:
    """``W = sum_i B_i`` and the skew weights ``mu * sum_j G_ji`` of the welfare."""
    G = game.payoff_matrix
    return float(G.sum()), game.mu * G.sum(axis=0)


def _polish(game: RoundGame, s: FloatArray) -> FloatArray:
    """Truncated Newton (TNC, bounded) on the welfare from ``s`` (analytic gradient);
    keeps ``s`` if that is not better."""
    n, h0, c, s_max = arr(game, "n"), arr(game, "h0"), arr(game, "c"), arr(game, "s_max")
    W, phi = _welfare_terms(game)
    welfare = _welfare_batch(game)
    offset = float(game.payoff_offset.sum())

    def neg(x: FloatArray) -> tuple[float, FloatArray]:
        # sum_i u_i = W P(E) - sum_j phi_j h_j(s_j) + sum_i k_i - c.s (one profile, no
        # (N, N) product); the result is compared with `welfare` below
        E = game.E0 + game.kappa * float(x.sum())
        h = np.asarray(game.skew_map(x, h0, n), dtype=np.float64)
        dh = np.asarray(game.skew_map.derivative(x, h0, n), dtype=np.float64)
        value = W * float(game.curve(E)) - float(phi @ h) + offset - float(c @ x)
        grad = W * game.kappa * float(game.curve.derivative(E)) - phi * dh - c
        return -value, -grad

    res = minimize(
        neg,
        s,
        jac=True,
        method="TNC",
        bounds=list(zip(np.zeros(game.N), s_max, strict=True)),
        options={"maxfun": 2000},
    )
    x = np.clip(np.asarray(res.x, dtype=np.float64), 0.0, s_max)
    return x if welfare(x[None, :])[0] > welfare(s[None, :])[0] else s


def _coordinate_ascent(game: RoundGame, s: FloatArray, tol: float, max_iter: int) -> int:
    """Maximise welfare over one organisation's amount at a time (global 1-D searches),
    in place, until a sweep gains at most ``tol``; returns the sweeps spent."""
    welfare = _welfare_batch(game)
    current = float(welfare(s[None, :])[0])
    for sweep in range(1, max_iter + 1):
        start = current
        for i in range(game.N):
            x, v = _best_on_line(game, s, i, welfare, _N_GRID)
            if v > current:
                s[i], current = x, v
        if current - start <= tol:
            return sweep
    return max_iter


def _corners(game: RoundGame) -> FloatArray:
    s_max = arr(game, "s_max")
    if game.N > _MAX_CORNERS:
        return np.vstack([np.zeros(game.N), s_max])
    mask = np.array(list(itertools.product((0.0, 1.0), repeat=game.N)))
    return mask * s_max


def _welfare_check(game: RoundGame, n_starts: int = 4) -> float:
    """Best welfare of an independent search: TNC from a Halton design of starts."""
    s_max = arr(game, "s_max")
    starts = qmc.Halton(d=game.N, scramble=False).random(n_starts + 1)[1:] * s_max
    welfare = _welfare_batch(game)
    return max(float(welfare(_polish(game, x)[None, :])[0]) for x in starts)


def social_optimum(
    game: RoundGame,
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
    certify_tol: float = 1e-9,
    equilibrium: GameSolution | None = None,
) -> GameSolution:
    r"""The profile maximising social welfare :math:`\sum_i u_i(s)`, certified.

    The scalar fixed point with :math:`w_i \to W = \sum_j B_j` and :math:`\phi_i \to
    \mu\sum_j G_{ji}` (linear model: :math:`W = \sum_j\theta_j(1-\Gamma_j)`,
    :math:`\phi_i = \theta_i(1-\Gamma_i)\mu`) is the optimum when welfare is strictly
    concave. It is accepted when no single organisation's change raises welfare by more
    than ``certify_tol`` and an independent multi-start search finds nothing better;
    otherwise a global search runs (the fixed point, the equilibrium, every corner
    profile for up to 12 organisations, coordinate ascent with a global 1-D search per
    organisation, a bounded truncated-Newton polish) and its best profile is returned,
    never below the equilibrium's welfare.

    Parameters
    ----------
    game : RoundGame
    tol, max_iter : float, int
        Fixed-point tolerance and iteration bound (also bounds the coordinate sweeps).
    certify_tol : float, default 1e-9
        Accepted welfare shortfall, relative to ``max(1, |SW|)``.
    equilibrium : GameSolution, optional
        A precomputed equilibrium (a start of the global search).

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve, RoundGame
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.0, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> so, ne = social_optimum(g), nash_equilibrium(g)
    >>> so.converged, so.social_welfare >= ne.social_welfare
    (True, True)
    """
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    check_positive("certify_tol", certify_tol)
    W, phi = _welfare_terms(game)
    welfare = _welfare_batch(game)
    s, solved, n_iter = _fixed_point(game, np.full(game.N, W), np.maximum(phi, 0.0), tol, max_iter)
    check = _welfare_check(game)
    sw = float(welfare(s[None, :])[0])
    gain = float(welfare_deviation_gains(game, s).max())
    limit = certify_tol * max(1.0, abs(sw))
    if solved and gain <= limit and check <= sw + limit:
        return _solution(game, s, True, n_iter, max_deviation_gain=gain, welfare_check=check)
    ne = nash_equilibrium(game) if equilibrium is None else equilibrium
    corners = _corners(game)
    starts = [s, check_profile(game, ne.s), corners[int(np.argmax(welfare(corners)))]]
    best = s
    for start in starts:
        trial = _polish(game, start.copy())
        n_iter += _coordinate_ascent(game, trial, certify_tol, max_iter)
        trial = _polish(game, trial)
        if welfare(trial[None, :])[0] > welfare(best[None, :])[0]:
            best = trial
    sw = float(welfare(best[None, :])[0])
    gain = float(welfare_deviation_gains(game, best).max())
    limit = certify_tol * max(1.0, abs(sw))
    ok = gain <= limit and check <= sw + limit
    return _solution(
        game, best, ok, n_iter, max_deviation_gain=gain, welfare_check=check, method="global_search"
    )
