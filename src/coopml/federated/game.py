r"""The per-round synthetic-data game of coopetitive cross-silo federated learning.

Reconstruction of the round game of CoCoGen+ (*Cooperate to Compete: Strategic Data
Generation and Incentivization Framework for Coopetitive Cross-Silo Federated Learning*,
arXiv 2604.14886, 2026; earlier CoCoGen, GLOBECOM 2025). The paper's full text was not
available: the functional forms below are a **reconstruction** consistent with its
abstract (learning gain − generation cost − loss from strengthening rivals; a weighted
potential game per round; a payoff redistribution compensating competition losses).
The accuracy curve and the skew map are objects, so other forms plug in.

Organisations :math:`i = 1..N` hold :math:`n_i` real samples with label skew
:math:`h_i^0 = \tfrac12\lVert p_i - u\rVert_1` and choose :math:`s_i \in [0, s_i^{max}]`
synthetic samples drawn with labels from the reference distribution :math:`u`.

.. math::

    h_i(s_i) &= h_i^0\, n_i / (n_i + s_i) \quad\text{(skew after mixing)}\\
    E(s) &= \textstyle\sum_j n_j (1 - h_j^0) + \kappa \sum_j s_j\\
    A_i(s) &= P(E(s)) - \mu\, h_i(s_i), \qquad P(E) = A_{max} - a E^{-b}\\
    u_i(s) &= \theta_i A_i(s) - \tfrac{\gamma_i}{N-1} \textstyle\sum_{j\ne i}
              \theta_j A_j(s) - c_i s_i

With weights :math:`B_i = \theta_i - \gamma_i\,\mathrm{mean}_{j\ne i}\theta_j > 0` the
function :math:`\Phi(s) = P(E(s)) - \sum_j [\theta_j \mu h_j(s_j) + c_j s_j]/B_j` is a
weighted potential: :math:`u_i(s_i, s_{-i}) - u_i(s_i', s_{-i}) = B_i[\Phi(s_i, s_{-i})
- \Phi(s_i', s_{-i})]`. It is strictly concave, so the Nash equilibrium is unique; it is
found from a scalar fixed point in :math:`E` by bisection and verified by best-response
dynamics. The social optimum solves the same fixed point with :math:`B_i \to W =
\sum_j \theta_j (1 - \Gamma_j)` (:math:`\Gamma_j` = mean of :math:`\gamma_i` over
:math:`i \ne j`) and :math:`\theta_i \to \theta_i(1-\Gamma_i)` in the skew term. The
redistribution pays :math:`\sigma_i` per synthetic sample plus a lump sum, which makes
the optimum the unique equilibrium, balances the budget and leaves nobody below its
equilibrium payoff.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml._validation import check_fraction, check_int, check_positive

__all__ = [
    "AccuracyCurve",
    "AccuracyModel",
    "GameSolution",
    "MixingSkew",
    "Redistribution",
    "RoundGame",
    "SkewMap",
    "accuracies",
    "best_response_dynamics",
    "effective_data",
    "nash_equilibrium",
    "potential",
    "redistribution",
    "social_optimum",
    "social_welfare",
    "utilities",
    "weights",
]

FloatArray = NDArray[np.float64]


# ---------------------------------------------------------------------------------------
# Pluggable functional forms
# ---------------------------------------------------------------------------------------


@runtime_checkable
class AccuracyModel(Protocol):
    """A global accuracy curve :math:`P(E)`: increasing and concave in effective data."""

    def __call__(self, E: ArrayLike) -> Any: ...

    def derivative(self, E: ArrayLike) -> Any: ...


@dataclass(frozen=True)
class AccuracyCurve:
    r"""Power-law accuracy curve :math:`P(E) = A_{max} - a E^{-b}` (reconstructed form).

    Parameters
    ----------
    A_max : float
        Asymptotic accuracy, > 0.
    a : float
        Scale of the accuracy gap, > 0.
    b : float
        Decay exponent, > 0.

    Examples
    --------
    >>> P = AccuracyCurve(A_max=0.95, a=2.0, b=0.5)
    >>> round(float(P(400.0)), 4), round(float(P.derivative(400.0)), 6)
    (0.85, 0.000125)
    >>> E = np.array([50.0, 100.0, 200.0, 400.0, 800.0])
    >>> fitted = AccuracyCurve.fit(E, P(E))
    >>> round(fitted.A_max, 3), round(fitted.a, 3), round(fitted.b, 3)
    (0.95, 2.0, 0.5)
    """

    A_max: float
    a: float
    b: float

    def __post_init__(self) -> None:
        check_positive("A_max", self.A_max)
        check_positive("a", self.a)
        check_positive("b", self.b)

    def __call__(self, E: ArrayLike) -> Any:
        E_arr = np.asarray(E, dtype=np.float64)
        return self.A_max - self.a * np.power(E_arr, -self.b)

    def derivative(self, E: ArrayLike) -> Any:
        """:math:`P'(E) = a b E^{-b-1}` (> 0, decreasing)."""
        E_arr = np.asarray(E, dtype=np.float64)
        return self.a * self.b * np.power(E_arr, -self.b - 1.0)

    @classmethod
    def fit(cls, E: ArrayLike, acc: ArrayLike, *, A_max_bound: float = 1.0) -> AccuracyCurve:
        """Least-squares fit to pilot runs (effective data ``E``, measured accuracy ``acc``).

        Parameters
        ----------
        E : array-like of shape (n_runs,)
            Effective data sizes of the pilot runs (> 0), at least three distinct values.
        acc : array-like of shape (n_runs,)
            Accuracy measured in each run.
        A_max_bound : float, default 1.0
            Upper bound on the fitted asymptote (1 for accuracies).
        """
        from scipy.optimize import OptimizeWarning, curve_fit

        E_arr = np.asarray(E, dtype=np.float64).ravel()
        acc_arr = np.asarray(acc, dtype=np.float64).ravel()
        if E_arr.shape != acc_arr.shape:
            raise ValueError(
                f"parameters 'E' and 'acc' must have the same length; got {E_arr.size} "
                f"and {acc_arr.size}"
            )
        if np.unique(E_arr).size < 3:
            raise ValueError(
                f"parameter 'E' must hold at least 3 distinct values; got {np.unique(E_arr).size}"
            )
        if not (np.all(np.isfinite(E_arr)) and np.all(E_arr > 0)):
            raise ValueError("parameter 'E' must be finite and > 0")
        if not np.all(np.isfinite(acc_arr)):
            raise ValueError("parameter 'acc' must be finite")
        upper = max(float(A_max_bound), float(acc_arr.max()) + 1e-6)

        def model(x: FloatArray, A: float, log_a: float, b: float) -> FloatArray:
            return A - np.exp(log_a) * np.power(x, -b)

        best: tuple[float, FloatArray] | None = None
        for b0 in (0.3, 0.7, 1.5):
            gap = max(upper - float(acc_arr.min()), 1e-3)
            p0 = [
                min(float(acc_arr.max()) + 1e-3, upper),
                math.log(gap) + b0 * math.log(float(E_arr.min())),
                b0,
            ]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", OptimizeWarning)
                    popt, _ = curve_fit(
                        model,
                        E_arr,
                        acc_arr,
                        p0=p0,
                        bounds=([float(acc_arr.max()) - 1e-9, -50.0, 1e-3], [upper, 50.0, 5.0]),
                        maxfev=20_000,
                    )
            except RuntimeError:
                continue
            sse = float(np.sum((model(E_arr, *popt) - acc_arr) ** 2))
            if best is None or sse < best[0]:
                best = (sse, np.asarray(popt))
        if best is None:
            raise RuntimeError("AccuracyCurve.fit: least squares did not converge")
        A, log_a, b = (float(v) for v in best[1])
        return cls(A_max=A, a=math.exp(log_a), b=b)


@runtime_checkable
class SkewMap(Protocol):
    """Skew after mixing ``s`` synthetic samples: decreasing and convex in ``s``."""

    def __call__(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any: ...

    def derivative(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any: ...


@dataclass(frozen=True)
class MixingSkew:
    r"""Skew of a mix of ``n`` skewed real and ``s`` reference-distributed samples.

    :math:`h(s) = h^0 n / (n + s)` (the total-variation distance of the mixture to the
    reference, when the synthetic labels follow it exactly).

    Examples
    --------
    >>> MixingSkew()(100.0, 0.4, 100.0)
    np.float64(0.2)
    """

    def __call__(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any:
        s_, h_, n_ = (np.asarray(v, dtype=np.float64) for v in (s, h0, n))
        return h_ * n_ / (n_ + s_)

    def derivative(self, s: ArrayLike, h0: ArrayLike, n: ArrayLike) -> Any:
        s_, h_, n_ = (np.asarray(v, dtype=np.float64) for v in (s, h0, n))
        return -h_ * n_ / (n_ + s_) ** 2

    def inverse_marginal(self, y: float, h0: float, n: float) -> float:
        """The ``s >= -n`` where ``-h'(s) = y`` (``y > 0``); may be negative."""
        return math.sqrt(h0 * n / y) - n


def _inverse_marginal(skew: SkewMap, y: float, h0: float, n: float, s_max: float) -> float:
    """``s`` in ``[0, s_max]`` with ``-h'(s) = y``, clipped (-h' is decreasing)."""
    if y <= 0:
        return s_max
    inv = getattr(skew, "inverse_marginal", None)
    if inv is not None:
        return float(min(max(inv(y, h0, n), 0.0), s_max))
    return _falling_root(lambda s: -float(skew.derivative(s, h0, n)) - y, s_max, 1e-12)


def _falling_root(f: Callable[[float], float], s_max: float, rtol: float) -> float:
    """Where the decreasing ``f`` crosses zero in ``[0, s_max]`` (an end when it does not),
    by bisection to a relative width ``rtol``."""
    if s_max == 0 or f(0.0) <= 0:
        return 0.0
    if f(s_max) >= 0:
        return s_max
    lo, hi = 0.0, s_max
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo <= rtol * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------
# The game
# ---------------------------------------------------------------------------------------


def _vector(name: str, value: ArrayLike, n_orgs: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_orgs, float(arr))
    if arr.shape != (n_orgs,):
        raise ValueError(
            f"parameter '{name}' must have one entry per organisation ({n_orgs}); "
            f"got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"parameter '{name}' must be finite; got {arr.tolist()}")
    return arr


@dataclass(frozen=True, eq=False)
class RoundGame:
    r"""One round of the synthetic-data game among ``N`` organisations.

    Parameters
    ----------
    n : array-like of shape (N,)
        Real samples per organisation, > 0.
    h0 : array-like of shape (N,)
        Label skew :math:`h_i^0 = \tfrac12\lVert p_i - u\rVert_1`, in [0, 1].
    theta : array-like of shape (N,)
        Market valuation of accuracy, > 0.
    gamma : array-like of shape (N,) or float
        Competition intensity, in [0, 1].
    c : array-like of shape (N,) or float
        Cost per synthetic sample, >= 0.
    kappa : float
        Quality of a synthetic sample relative to a real one, in (0, 1].
    mu : float
        Accuracy lost per unit of skew, >= 0.
    s_max : array-like of shape (N,) or float
        Upper bound on the synthetic samples of each organisation, >= 0.
    curve : AccuracyModel
        Global accuracy :math:`P(E)` (increasing, concave), e.g. :class:`AccuracyCurve`.
    skew_map : SkewMap, default MixingSkew()
        Skew after mixing.

    Examples
    --------
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 1.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> weights(g)
    array([0.7, 0.7])
    """

    n: ArrayLike
    h0: ArrayLike
    theta: ArrayLike
    gamma: ArrayLike
    c: ArrayLike
    kappa: float
    mu: float
    s_max: ArrayLike
    curve: AccuracyModel
    skew_map: SkewMap = field(default_factory=MixingSkew)

    def __post_init__(self) -> None:
        n_arr = np.asarray(self.n, dtype=np.float64)
        if n_arr.ndim != 1 or n_arr.size < 1:
            raise ValueError(
                f"parameter 'n' must be a non-empty 1-D array; got shape {n_arr.shape}"
            )
        N = n_arr.size
        n_arr = _vector("n", n_arr, N)
        h0 = _vector("h0", self.h0, N)
        theta = _vector("theta", self.theta, N)
        gamma = _vector("gamma", self.gamma, N)
        c = _vector("c", self.c, N)
        s_max = _vector("s_max", self.s_max, N)
        if np.any(n_arr <= 0):
            raise ValueError(f"parameter 'n' must be > 0; got {n_arr.tolist()}")
        if np.any((h0 < 0) | (h0 > 1)):
            raise ValueError(f"parameter 'h0' must lie in [0, 1]; got {h0.tolist()}")
        if np.any(theta <= 0):
            raise ValueError(f"parameter 'theta' must be > 0; got {theta.tolist()}")
        if np.any((gamma < 0) | (gamma > 1)):
            raise ValueError(f"parameter 'gamma' must lie in [0, 1]; got {gamma.tolist()}")
        if np.any(c < 0):
            raise ValueError(f"parameter 'c' must be >= 0; got {c.tolist()}")
        if np.any(s_max < 0):
            raise ValueError(f"parameter 's_max' must be >= 0; got {s_max.tolist()}")
        kappa = check_fraction("kappa", self.kappa, open_low=True)
        mu = check_positive("mu", self.mu, strict=False)
        if not isinstance(self.curve, AccuracyModel):
            raise TypeError(
                "parameter 'curve' must have __call__(E) and derivative(E); "
                f"got {type(self.curve).__name__}"
            )
        if not isinstance(self.skew_map, SkewMap):
            raise TypeError(
                "parameter 'skew_map' must have __call__(s, h0, n) and derivative(s, h0, n); "
                f"got {type(self.skew_map).__name__}"
            )
        for name, arr in (
            ("n", n_arr),
            ("h0", h0),
            ("theta", theta),
            ("gamma", gamma),
            ("c", c),
            ("s_max", s_max),
        ):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "mu", mu)
        B = _weights(theta, gamma)
        if np.any(B <= 0):
            raise ValueError(
                "weights B_i = theta_i - gamma_i * mean_{j != i} theta_j must be > 0 "
                f"(competition too strong for the valuations); got {B.tolist()}"
            )
        if self.E0 <= 0:
            raise ValueError(
                "effective real data sum_j n_j (1 - h0_j) must be > 0; got "
                f"{self.E0} (every organisation fully skewed)"
            )

    # typed views (validated arrays) ------------------------------------------------------
    @property
    def N(self) -> int:
        """Number of organisations."""
        return int(np.asarray(self.n).size)

    @property
    def E0(self) -> float:
        r"""Effective real data :math:`\sum_j n_j (1 - h_j^0)`."""
        return float(np.sum(np.asarray(self.n) * (1.0 - np.asarray(self.h0))))

    @property
    def Gamma(self) -> FloatArray:
        r""":math:`\Gamma_j` = mean of :math:`\gamma_i` over :math:`i \ne j`."""
        return _others_mean(np.asarray(self.gamma, dtype=np.float64))

    def replace(self, **changes: Any) -> RoundGame:
        """A copy with some parameters changed (validated again)."""
        params = {
            name: getattr(self, name)
            for name in (
                "n",
                "h0",
                "theta",
                "gamma",
                "c",
                "kappa",
                "mu",
                "s_max",
                "curve",
                "skew_map",
            )
        }
        params.update(changes)
        return RoundGame(**params)


def _others_mean(x: FloatArray) -> FloatArray:
    N = x.size
    if N == 1:
        return np.zeros(1)
    return (x.sum() - x) / (N - 1)


def _weights(theta: FloatArray, gamma: FloatArray) -> FloatArray:
    return theta - gamma * _others_mean(theta)


def _arr(game: RoundGame, name: str) -> FloatArray:
    return np.asarray(getattr(game, name), dtype=np.float64)


def _check_profile(game: RoundGame, s: ArrayLike) -> FloatArray:
    arr = np.asarray(s, dtype=np.float64)
    if arr.shape != (game.N,):
        raise ValueError(
            f"parameter 's' must have one entry per organisation ({game.N}); got shape {arr.shape}"
        )
    s_max = np.asarray(game.s_max)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr > s_max * (1 + 1e-12)):
        raise ValueError(f"parameter 's' must lie in [0, s_max]; got {arr.tolist()}")
    return arr


def weights(game: RoundGame) -> FloatArray:
    r"""Potential weights :math:`B_i = \theta_i - \gamma_i\,\mathrm{mean}_{j\ne i}\theta_j`."""
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    return _weights(theta, gamma)


def effective_data(game: RoundGame, s: ArrayLike) -> float:
    r""":math:`E(s) = \sum_j n_j(1 - h_j^0) + \kappa \sum_j s_j`."""
    s_arr = _check_profile(game, s)
    return game.E0 + game.kappa * float(s_arr.sum())


def accuracies(game: RoundGame, s: ArrayLike) -> FloatArray:
    r"""Accuracy experienced by each organisation, :math:`A_i(s) = P(E(s)) - \mu h_i(s_i)`."""
    s_arr = _check_profile(game, s)
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    E = game.E0 + game.kappa * float(s_arr.sum())
    return np.asarray(
        float(game.curve(E)) - game.mu * np.asarray(game.skew_map(s_arr, h0, n)),
        dtype=np.float64,
    )


def utilities(game: RoundGame, s: ArrayLike) -> FloatArray:
    r""":math:`u_i(s) = \theta_i A_i - \tfrac{\gamma_i}{N-1}\sum_{j\ne i}\theta_j A_j - c_i s_i`.

    Examples
    --------
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> utilities(g, [0.0, 0.0]).round(4)
    array([0.2488, 1.3304])
    """
    s_arr = _check_profile(game, s)
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    c = _arr(game, "c")
    tA = theta * accuracies(game, s_arr)
    return np.asarray(tA - gamma * _others_mean(tA) - c * s_arr, dtype=np.float64)


def social_welfare(game: RoundGame, s: ArrayLike) -> float:
    """Sum of utilities :math:`\\sum_i u_i(s)` (transfers cancel out)."""
    return float(utilities(game, s).sum())


def potential(game: RoundGame, s: ArrayLike) -> float:
    r"""Weighted potential :math:`\Phi(s) = P(E) - \sum_j [\theta_j\mu h_j(s_j) + c_j s_j]/B_j`."""
    s_arr = _check_profile(game, s)
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    c = _arr(game, "c")
    B = _weights(theta, gamma)
    E = game.E0 + game.kappa * float(s_arr.sum())
    h = np.asarray(game.skew_map(s_arr, h0, n), dtype=np.float64)
    return float(game.curve(E)) - float(np.sum((theta * game.mu * h + c * s_arr) / B))


# ---------------------------------------------------------------------------------------
# Solutions
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GameSolution:
    """A strategy profile of the round game.

    Attributes
    ----------
    s : ndarray of shape (N,)
        Synthetic samples per organisation.
    E : float
        Effective data :math:`E(s)`.
    utilities : ndarray of shape (N,)
        :math:`u_i(s)` (no transfers).
    converged : bool
        Whether the solver met its tolerance within its iteration bound.
    n_iter : int
        Iterations spent (bisection steps or best-response sweeps).
    """

    s: FloatArray
    E: float
    utilities: FloatArray
    converged: bool
    n_iter: int

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
            }
        )


def _profile_at(
    game: RoundGame, E: float, w: FloatArray, phi: FloatArray, extra: FloatArray
) -> FloatArray:
    """First-order-condition response to effective data ``E``.

    Solves ``w_i kappa P'(E) + phi_i (-h_i'(s_i)) - c_i + extra_i = 0`` for each ``i``.
    """
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    c = _arr(game, "c")
    s_max = _arr(game, "s_max")
    dP = float(game.curve.derivative(E))
    out = np.empty(game.N)
    for i in range(game.N):
        denom = c[i] - extra[i] - w[i] * game.kappa * dP
        if denom <= 0:
            out[i] = s_max[i]
        elif phi[i] <= 0 or h0[i] == 0:
            out[i] = 0.0
        else:
            out[i] = _inverse_marginal(game.skew_map, denom / phi[i], h0[i], n[i], s_max[i])
    return out


def _scalar_fixed_point(
    game: RoundGame,
    w: FloatArray,
    phi: FloatArray,
    extra: FloatArray | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 200,
) -> GameSolution:
    """Bisection on ``E = E0 + kappa * sum_i s_i(E)``; the right side falls in ``E``."""
    extra_arr = np.zeros(game.N) if extra is None else extra
    s_max = np.asarray(game.s_max, dtype=np.float64)
    lo, hi = game.E0, game.E0 + game.kappa * float(s_max.sum())

    def gap(E: float) -> float:
        return game.E0 + game.kappa * float(_profile_at(game, E, w, phi, extra_arr).sum()) - E

    n_iter = 0
    converged = True
    if hi > lo and gap(hi) < 0 < gap(lo):
        converged = False
        for n_iter in range(1, max_iter + 1):  # noqa: B007
            mid = 0.5 * (lo + hi)
            if gap(mid) > 0:
                lo = mid
            else:
                hi = mid
            if hi - lo <= tol * max(1.0, hi):
                converged = True
                break
        E = 0.5 * (lo + hi)
    else:
        E = hi if hi > lo and gap(hi) >= 0 else lo
    s = _profile_at(game, E, w, phi, extra_arr)
    E_s = game.E0 + game.kappa * float(s.sum())
    return GameSolution(
        s=s, E=E_s, utilities=utilities(game, s), converged=converged, n_iter=n_iter
    )


def nash_equilibrium(game: RoundGame, *, tol: float = 1e-12, max_iter: int = 200) -> GameSolution:
    r"""The unique Nash equilibrium (the maximiser of the potential :math:`\Phi`).

    Each organisation's first-order condition gives :math:`s_i(E) = \mathrm{clip}(
    \sqrt{\theta_i\mu h_i^0 n_i / (c_i - B_i\kappa P'(E))} - n_i, 0, s_i^{max})`; the
    scalar fixed point :math:`E = E_0 + \kappa\sum_i s_i(E)` is found by bisection.

    Examples
    --------
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> ne = nash_equilibrium(g)
    >>> ne.s.round(2), ne.converged
    (array([242.8, 460.5]), True)
    >>> np.allclose(best_response_dynamics(g).s, ne.s, atol=1e-6)
    True
    """
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    return _scalar_fixed_point(
        game, _weights(theta, gamma), theta * game.mu, tol=tol, max_iter=max_iter
    )


def social_optimum(game: RoundGame, *, tol: float = 1e-12, max_iter: int = 200) -> GameSolution:
    r"""The profile maximising social welfare :math:`\sum_i u_i(s)`.

    Same fixed point as :func:`nash_equilibrium` with :math:`B_i \to W = \sum_j
    \theta_j(1 - \Gamma_j)` and :math:`\theta_i \to \theta_i(1 - \Gamma_i)`.
    """
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    Gamma = _others_mean(gamma)
    W = float(np.sum(theta * (1.0 - Gamma)))
    return _scalar_fixed_point(
        game, np.full(game.N, W), theta * (1.0 - Gamma) * game.mu, tol=tol, max_iter=max_iter
    )


def _best_response(game: RoundGame, i: int, s: FloatArray, B_i: float) -> float:
    """Maximiser of ``u_i(., s_-i)``; its derivative falls in ``s_i``."""
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    theta = _arr(game, "theta")
    c = _arr(game, "c")
    s_max = _arr(game, "s_max")
    E_others = game.E0 + game.kappa * float(s.sum() - s[i])

    def marginal(x: float) -> float:
        dP = float(game.curve.derivative(E_others + game.kappa * x))
        dh = float(game.skew_map.derivative(x, h0[i], n[i]))
        return B_i * game.kappa * dP - theta[i] * game.mu * dh - c[i]

    return _falling_root(marginal, float(s_max[i]), 1e-13)


def best_response_dynamics(
    game: RoundGame,
    s0: ArrayLike | None = None,
    *,
    tol: float = 1e-9,
    max_iter: int = 1000,
) -> GameSolution:
    """Sequential (Gauss-Seidel) best responses from ``s0`` until no one moves by > ``tol``.

    In a potential game with a strictly concave potential the sweeps converge to the
    unique equilibrium; this checks :func:`nash_equilibrium` independently.
    """
    check_positive("tol", tol)
    check_int("max_iter", max_iter, minimum=1)
    s = np.zeros(game.N) if s0 is None else _check_profile(game, s0).copy()
    B = weights(game)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007
        change = 0.0
        for i in range(game.N):
            new = _best_response(game, i, s, float(B[i]))
            change = max(change, abs(new - s[i]))
            s[i] = new
        if change <= tol:
            converged = True
            break
    return GameSolution(
        s=s,
        E=game.E0 + game.kappa * float(s.sum()),
        utilities=utilities(game, s),
        converged=converged,
        n_iter=n_iter,
    )


# ---------------------------------------------------------------------------------------
# Redistribution
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Redistribution:
    r"""Payoff redistribution that implements the social optimum.

    Organisation ``i`` receives :math:`\sigma_i s_i - L_i` (negative: it pays). With
    the per-sample transfers :math:`\sigma_i` the optimum is the unique equilibrium of
    the modified game; the lump sums make the round budget balanced and individually
    rational.

    Attributes
    ----------
    sigma : ndarray of shape (N,)
        Per-synthetic-sample transfer :math:`\sigma_i`.
    lump_sum : ndarray of shape (N,)
        Lump sum :math:`L_i` paid by ``i``.
    transfers : ndarray of shape (N,)
        Net transfer to ``i`` at the optimum, :math:`\sigma_i s_i^{SW} - L_i` (sums to 0).
    beta : ndarray of shape (N,)
        Shares of the welfare gain (non-negative, sum 1).
    s_optimum, s_equilibrium : ndarray of shape (N,)
        Synthetic samples at the optimum and at the equilibrium without transfers.
    utilities_equilibrium : ndarray of shape (N,)
        :math:`u_i(s^{NE})` (what each organisation gets without the mechanism).
    utilities_before : ndarray of shape (N,)
        :math:`u_i(s^{SW})` before transfers.
    utilities_after : ndarray of shape (N,)
        :math:`u_i(s^{SW})` + transfer :math:`= u_i(s^{NE}) + \beta_i\Delta SW`.
    budget_balance : float
        Sum of the transfers (0 up to rounding).
    individually_rational : bool
        Whether everyone ends at or above its equilibrium payoff (tolerance 1e-9).
    welfare_gain : float
        :math:`\Delta SW = SW(s^{SW}) - SW(s^{NE})`.
    """

    sigma: FloatArray
    lump_sum: FloatArray
    transfers: FloatArray
    beta: FloatArray
    s_optimum: FloatArray
    s_equilibrium: FloatArray
    utilities_equilibrium: FloatArray
    utilities_before: FloatArray
    utilities_after: FloatArray
    budget_balance: float
    individually_rational: bool
    welfare_gain: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(dict(self.__dict__))


def contribution_shares(game: RoundGame, s: ArrayLike) -> FloatArray:
    r"""Shares of effective data contributed, :math:`\propto n_i(1-h_i^0) + \kappa s_i`."""
    s_arr = _check_profile(game, s)
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    contrib = n * (1.0 - h0) + game.kappa * s_arr
    total = float(contrib.sum())
    return contrib / total


def redistribution(
    game: RoundGame,
    beta: ArrayLike | None = None,
    *,
    optimum: GameSolution | None = None,
    equilibrium: GameSolution | None = None,
) -> Redistribution:
    r"""Per-sample transfers and lump sums that make the social optimum the equilibrium.

    :math:`\sigma_i = \kappa P'(E^{SW})(W - B_i) - \theta_i\Gamma_i\mu\,(-h_i'(s_i^{SW}))`
    and :math:`L_i = \sigma_i s_i^{SW} + u_i(s^{SW}) - u_i(s^{NE}) - \beta_i\Delta SW`.

    Parameters
    ----------
    game : RoundGame
    beta : array-like of shape (N,), optional
        Shares of the welfare gain (>= 0, summing to 1). Default: contribution shares
        (effective data each organisation brings at the optimum).
    optimum, equilibrium : GameSolution, optional
        Precomputed solutions (recomputed when omitted).

    Examples
    --------
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> r = redistribution(g)
    >>> abs(r.budget_balance) < 1e-9, r.individually_rational
    (True, True)
    >>> bool(np.all(r.utilities_after >= r.utilities_equilibrium))
    True
    """
    n = _arr(game, "n")
    h0 = _arr(game, "h0")
    theta = _arr(game, "theta")
    gamma = _arr(game, "gamma")
    opt = social_optimum(game) if optimum is None else optimum
    ne = nash_equilibrium(game) if equilibrium is None else equilibrium
    B = _weights(theta, gamma)
    Gamma = _others_mean(gamma)
    W = float(np.sum(theta * (1.0 - Gamma)))
    s_opt = opt.s
    dP = float(game.curve.derivative(opt.E))
    neg_dh = -np.asarray(game.skew_map.derivative(s_opt, h0, n), dtype=np.float64)
    sigma = game.kappa * dP * (W - B) - theta * Gamma * game.mu * neg_dh
    if beta is None:
        beta_arr = contribution_shares(game, s_opt)
    else:
        beta_arr = _vector("beta", beta, game.N)
        if np.any(beta_arr < 0) or abs(float(beta_arr.sum()) - 1.0) > 1e-9:
            raise ValueError(f"parameter 'beta' must be >= 0 and sum to 1; got {beta_arr.tolist()}")
    u_opt = utilities(game, s_opt)
    u_ne = utilities(game, ne.s)
    delta = float(u_opt.sum() - u_ne.sum())
    lump = sigma * s_opt + u_opt - u_ne - beta_arr * delta
    transfers = sigma * s_opt - lump
    after = u_opt + transfers
    return Redistribution(
        sigma=sigma,
        lump_sum=lump,
        transfers=transfers,
        beta=beta_arr,
        s_optimum=s_opt,
        s_equilibrium=ne.s,
        utilities_equilibrium=u_ne,
        utilities_before=u_opt,
        utilities_after=after,
        budget_balance=float(transfers.sum()),
        individually_rational=bool(np.all(after >= u_ne - 1e-9)),
        welfare_gain=delta,
    )
