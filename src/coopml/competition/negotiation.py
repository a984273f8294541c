r"""Negotiating data sharing between competitors.

Firm :math:`i` owns :math:`n_i` samples and contributes a fraction :math:`\lambda_i \in
[0, 1]` of them; it trains on :math:`N_i = n_i + \sum_{j \ne i} \lambda_j n_j` samples,
reaches error :math:`\varepsilon(N_i)` (:class:`~coopml.competition.LearningCurve`) and
competes with marginal cost :math:`c_i = c_0 + \kappa\,\varepsilon(N_i)`, so its profit
:math:`\pi_i(\lambda)` is an equilibrium profit of the market (Cournot or Bertrand).

* **Full sharing by unanimity**: all data is pooled iff every firm's profit rises,
  :math:`\pi_i(\mathbf 1) > \pi_i(\mathbf 0)`. For the Cournot duopoly firm :math:`i`
  agrees iff :math:`2[\varepsilon(n_i) - \varepsilon(N)] > \gamma[\varepsilon(n_j) -
  \varepsilon(N)]`: the smaller firm always agrees, the larger iff :math:`\gamma < 2R`
  with :math:`R = (\varepsilon(n_L) - \varepsilon(N)) / (\varepsilon(n_S) -
  \varepsilon(N))` (:func:`full_sharing_threshold`).
* **Nash bargaining** over :math:`\lambda \in [0, 1]^n` with disagreement :math:`\lambda
  = 0`: maximise :math:`\prod_i (\pi_i(\lambda) - \pi_i(0))` over gains :math:`> 0`.
  Solved by the shared toolkit (:func:`coopml.bargaining.nash_bargaining`) on a grid of
  :math:`\lambda`, refined by bounded Nelder-Mead searches from the best grid points, and
  verified: no feasible perturbation of the solution raises the Nash product.

This is the negotiation component of Tsoy & Konstantinov, "Strategic data sharing
between competitors", NeurIPS 2023 (arXiv 2305.16052), as **reconstructed** in coopml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize

from coopml._validation import check_choice, check_fraction, check_int, check_positive
from coopml.bargaining import BargainingSolution, FiniteUtilitySet, nash_bargaining
from coopml.competition.learning import LearningCurve
from coopml.competition.market_models import (
    MARKETS,
    MarketEquilibrium,
    bertrand_equilibrium,
    cournot_equilibrium,
    equilibrium_profits,
)
from coopml.competition.user_markets import MarketModel, NumericalEquilibrium, solve_equilibrium

__all__ = [
    "QUALITY_CHANNELS",
    "FullSharing",
    "SharingBargain",
    "SharingModel",
    "check_sizes",
    "effective_sizes",
    "full_sharing",
    "full_sharing_threshold",
    "nash_bargaining_sharing",
]


def _frozen(values: ArrayLike) -> NDArray[np.float64]:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


def check_sizes(sizes: ArrayLike) -> NDArray[np.float64]:
    """Validate data sizes: a 1-D array of at least two finite numbers >= 1.

    Examples
    --------
    >>> check_sizes([100, 50]).tolist()
    [100.0, 50.0]
    """
    try:
        s = np.asarray(sizes, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"parameter 'sizes' must be numbers; got {sizes!r}") from None
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)) or np.any(s < 1):
        raise ValueError(
            f"parameter 'sizes' must hold at least 2 finite sizes >= 1; got {np.asarray(sizes)}"
        )
    return s


def effective_sizes(sizes: ArrayLike, fractions: ArrayLike) -> NDArray[np.float64]:
    """Training-set sizes ``N_i = n_i + sum_{j != i} lambda_j n_j``.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
    fractions : array_like of shape (..., n_firms)
        Sharing fractions in ``[0, 1]`` (a batch on leading axes).

    Returns
    -------
    ndarray of shape (..., n_firms)

    Examples
    --------
    >>> effective_sizes([100, 50], [0.5, 1.0]).tolist()
    [150.0, 100.0]
    """
    n = np.asarray(sizes, dtype=np.float64)
    lam = np.asarray(fractions, dtype=np.float64)
    shared = lam * n
    return np.asarray(n + shared.sum(axis=-1, keepdims=True) - shared)


QUALITY_CHANNELS = ("cost", "demand")
"""How model quality enters the market: ``"cost"`` (``c_i = c_0 + kappa eps_i``) or
``"demand"`` (``a_i = a - kappa eps_i``)."""


@dataclass(frozen=True)
class SharingModel:
    """Market plus learning curve: profits as a function of who shares what.

    Parameters
    ----------
    curve : LearningCurve
        Error ``eps(N)`` of a model trained on ``N`` samples.
    gamma : float
        Product similarity in ``[0, 1]`` (``< 1`` for Bertrand). Only recorded for a
        user-supplied market, which carries its own demand system.
    market : {"cournot", "bertrand"} or MarketModel
        Competition model: a built-in name (closed forms, vectorised) or any object
        following :class:`~coopml.competition.MarketModel` (equilibria found numerically).
    margin : float
        ``a - c_0`` (> 0); the demand intercept is ``a = margin`` and ``c_0 = 0``.
    kappa : float
        Value of quality (>= 0). With ``quality="cost"`` the marginal cost is
        ``c_i = c_0 + kappa * eps(N_i)``; with ``quality="demand"`` the demand intercept
        is ``a_i = a - kappa * eps(N_i)`` (consumers pay less for a worse model) and
        ``c_i = c_0``. With ``eps <= 1`` the Cournot duopoly is interior for every
        ``gamma`` when ``kappa < margin / 2``.
    quality : {"cost", "demand"}
        The channel through which model quality enters the market. With the linear
        demand of the built-in markets only ``a_i - c_i`` matters for quantities and
        profits, so both channels give the same profits and decisions (prices differ);
        with a user market they can differ.

    Examples
    --------
    >>> m = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.5)
    >>> m.profits([100, 25], [0, 0]).round(4).tolist()
    [0.1547, 0.1419]
    >>> d = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.5, quality="demand")
    >>> d.profits([100, 25], [0, 0]).round(4).tolist()
    [0.1547, 0.1419]
    """

    curve: LearningCurve
    gamma: float
    market: str | MarketModel = "cournot"
    margin: float = 1.0
    kappa: float = 0.25
    quality: str = "cost"

    def __post_init__(self) -> None:
        if not isinstance(self.curve, LearningCurve):
            raise TypeError(
                f"parameter 'curve' must be a LearningCurve; got {type(self.curve).__name__}"
            )
        if isinstance(self.market, str):
            check_choice("market", self.market, MARKETS)
        elif not isinstance(self.market, MarketModel):
            raise TypeError(
                "parameter 'market' must be 'cournot', 'bertrand' or a MarketModel (methods "
                f"profits and action_bounds); got {type(self.market).__name__}"
            )
        gamma = check_fraction("gamma", self.gamma)
        if self.market == "bertrand" and gamma >= 1:
            raise ValueError(f"parameter 'gamma' must be < 1 for Bertrand competition; got {gamma}")
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "margin", check_positive("margin", self.margin))
        object.__setattr__(self, "kappa", check_positive("kappa", self.kappa, strict=False))
        check_choice("quality", self.quality, QUALITY_CHANNELS)

    @property
    def market_name(self) -> str:
        """The built-in market's name, or the user model's class name."""
        return self.market if isinstance(self.market, str) else type(self.market).__name__

    def firm_types(
        self, sizes: ArrayLike, fractions: ArrayLike
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Demand intercepts and marginal costs, each of shape (..., n_firms)."""
        return self.types_at(effective_sizes(sizes, fractions))

    def types_at(self, trained_on: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Demand intercepts and marginal costs when firm ``i`` trains on
        ``trained_on[..., i]`` samples."""
        eps = self.curve(trained_on)
        if self.quality == "cost":
            return np.full_like(eps, self.margin), self.kappa * eps
        return self.margin - self.kappa * eps, np.zeros_like(eps)

    def costs(self, sizes: ArrayLike, fractions: ArrayLike) -> NDArray[np.float64]:
        """Marginal costs, shape (..., n_firms)."""
        return self.firm_types(sizes, fractions)[1]

    def equilibrium(
        self, sizes: ArrayLike, fractions: ArrayLike
    ) -> MarketEquilibrium | NumericalEquilibrium:
        """The market equilibrium for one vector of fractions (shape (n_firms,)); for a
        user market it is found numerically and verified by deviation checks."""
        a, c = self.firm_types(sizes, fractions)
        if self.market == "cournot":
            return cournot_equilibrium(a, c, self.gamma)
        if self.market == "bertrand":
            return bertrand_equilibrium(a, c, self.gamma)
        assert not isinstance(self.market, str)
        return solve_equilibrium(self.market, a, c)

    def profits(self, sizes: ArrayLike, fractions: ArrayLike) -> NDArray[np.float64]:
        """Equilibrium profits for a batch of fractions.

        Built-in markets: interior equilibria in closed form for the whole batch, rows
        where some firm would exit fall back to :meth:`equilibrium`. User markets: one
        numerical equilibrium per row (not re-verified here; :meth:`equilibrium` is).

        Parameters
        ----------
        sizes : array_like of shape (n_firms,)
        fractions : array_like of shape (n_firms,) or (m, n_firms)

        Returns
        -------
        ndarray of the shape of ``fractions``
        """
        return self.profits_at(effective_sizes(sizes, fractions))

    def profits_at(self, trained_on: ArrayLike) -> NDArray[np.float64]:
        """Equilibrium profits when firm ``i`` trains on ``trained_on[..., i]`` samples
        (any batch shape; see :meth:`profits`)."""
        a, c = self.types_at(trained_on)
        if isinstance(self.market, str):
            return equilibrium_profits(a, c, self.gamma, self.market)
        market = self.market
        rows_a, rows_c = a.reshape(-1, a.shape[-1]), c.reshape(-1, c.shape[-1])
        out = np.array(
            [
                solve_equilibrium(market, ra, rc, verify=False).profits
                for ra, rc in zip(rows_a, rows_c, strict=True)
            ]
        )
        return out.reshape(c.shape)

    def to_dict(self) -> dict[str, Any]:
        """The model's parameters."""
        return {
            "curve": self.curve.to_dict(),
            "gamma": self.gamma,
            "market": self.market_name,
            "margin": self.margin,
            "kappa": self.kappa,
            "quality": self.quality,
        }


@dataclass(frozen=True, kw_only=True)
class FullSharing:
    """Full data sharing decided by unanimity.

    Parameters
    ----------
    sizes, profit_alone, profit_shared : ndarray of shape (n_firms,)
        Data sizes and equilibrium profits without sharing and with all data pooled.
    agrees : ndarray of bool, shape (n_firms,)
        Whether each firm's profit strictly rises under full sharing.
    """

    sizes: NDArray[np.float64]
    profit_alone: NDArray[np.float64]
    profit_shared: NDArray[np.float64]
    agrees: NDArray[np.bool_]

    def __post_init__(self) -> None:
        for name in ("sizes", "profit_alone", "profit_shared"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        agrees = np.array(self.agrees, dtype=np.bool_)
        agrees.setflags(write=False)
        object.__setattr__(self, "agrees", agrees)

    @property
    def unanimous(self) -> bool:
        """Whether every firm agrees (data is pooled)."""
        return bool(self.agrees.all())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "sizes": self.sizes.tolist(),
            "profit_alone": self.profit_alone.tolist(),
            "profit_shared": self.profit_shared.tolist(),
            "agrees": self.agrees.tolist(),
            "unanimous": self.unanimous,
        }


def full_sharing(model: SharingModel, sizes: ArrayLike) -> FullSharing:
    """Who agrees to pool all data (``lambda = 1``) rather than share nothing.

    Parameters
    ----------
    model : SharingModel
    sizes : array_like of shape (n_firms,)

    Returns
    -------
    FullSharing

    Examples
    --------
    >>> m = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.9)
    >>> full_sharing(m, [1000, 100]).agrees.tolist()
    [False, True]
    """
    s = check_sizes(sizes)
    profits = model.profits(s, np.stack([np.zeros(s.size), np.ones(s.size)]))
    return FullSharing(
        sizes=s, profit_alone=profits[0], profit_shared=profits[1], agrees=profits[1] > profits[0]
    )


def full_sharing_threshold(curve: LearningCurve, sizes: ArrayLike) -> float:
    """Cournot duopoly: the larger firm agrees to full sharing iff ``gamma < 2 R``.

    ``R = (eps(n_L) - eps(N)) / (eps(n_S) - eps(N))`` with ``N = n_L + n_S``; it depends
    only on ``beta`` and the size ratio (derived in the reconstruction).

    Parameters
    ----------
    curve : LearningCurve
    sizes : array_like of shape (2,)

    Returns
    -------
    float
        ``2 R`` (``2`` for equal sizes).

    Examples
    --------
    >>> round(full_sharing_threshold(LearningCurve(0, 1, 0.5), [1000, 100]), 4)
    0.0421
    """
    s = check_sizes(sizes)
    if s.size != 2:
        raise ValueError(f"parameter 'sizes' must hold exactly 2 sizes; got {s.size}")
    small, large = np.sort(s)
    e = curve(np.array([large, small, s.sum()]))
    return float(2 * (e[0] - e[2]) / (e[1] - e[2]))


@dataclass(frozen=True, kw_only=True)
class SharingBargain:
    """The Nash bargaining solution over sharing fractions.

    Parameters
    ----------
    fractions : ndarray of shape (n_firms,)
        Share of its data each firm contributes (zeros without agreement).
    profits, disagreement : ndarray of shape (n_firms,)
        Profits at the solution and without sharing.
    agreement : bool
        Whether some fractions give every firm a strictly positive gain.
    converged : bool
        Whether the optimality check passed (no perturbation raises the Nash product by
        more than ``1e-9`` in log terms).
    max_perturbation_gain : float
        Largest rise of ``sum_i log(gain_i)`` found by feasible perturbations.
    solution : BargainingSolution
        The toolkit's solution on the grid plus refined candidates.
    """

    fractions: NDArray[np.float64]
    profits: NDArray[np.float64]
    disagreement: NDArray[np.float64]
    agreement: bool
    converged: bool
    max_perturbation_gain: float
    solution: BargainingSolution = field(repr=False)

    def __post_init__(self) -> None:
        for name in ("fractions", "profits", "disagreement"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def gains(self) -> NDArray[np.float64]:
        """``profits - disagreement``, shape (n_firms,)."""
        return self.profits - self.disagreement

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "fractions": self.fractions.tolist(),
            "profits": self.profits.tolist(),
            "disagreement": self.disagreement.tolist(),
            "gains": self.gains.tolist(),
            "agreement": self.agreement,
            "converged": self.converged,
            "max_perturbation_gain": self.max_perturbation_gain,
        }


def _log_nash(model: SharingModel, s: NDArray[np.float64], d: NDArray[np.float64]) -> Any:
    def f(lam: NDArray[np.float64]) -> NDArray[np.float64]:
        gains = model.profits(s, lam) - d
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log(np.where(gains > 0, gains, np.nan)).sum(axis=-1)
        return np.asarray(np.where(np.all(gains > 0, axis=-1), logs, -np.inf))

    return f


def _directions(n: int) -> NDArray[np.float64]:
    eye = np.eye(n)
    dirs = [eye, -eye]
    for i in range(n):
        for j in range(i + 1, n):
            for sign in (1.0, -1.0):
                dirs.append((eye[i] + sign * eye[j])[None] / np.sqrt(2))
                dirs.append(-(eye[i] + sign * eye[j])[None] / np.sqrt(2))
    return np.concatenate(dirs)


def nash_bargaining_sharing(
    model: SharingModel,
    sizes: ArrayLike,
    *,
    n_starts: int = 5,
    n_grid: int = 4000,
    max_evaluations: int = 4000,
) -> SharingBargain:
    """Nash bargaining over sharing fractions, disagreement = no sharing.

    Maximises ``prod_i (pi_i(lambda) - pi_i(0))`` over ``lambda`` in ``[0, 1]^n`` with
    every gain ``> 0``: the toolkit's :func:`~coopml.bargaining.nash_bargaining` is run
    on a grid of fractions (about ``n_grid`` points), the ``n_starts`` best grid points seed
    bounded Nelder-Mead searches, and the toolkit picks the best among grid and refined
    points. The result is then checked with feasible perturbations (steps 1e-2 to 1e-6
    along coordinate and pairwise-diagonal directions).

    Parameters
    ----------
    model : SharingModel
    sizes : array_like of shape (n_firms,)
        Data sizes (2 to 6 firms).
    n_starts : int
        Local refinements.
    n_grid : int
        Approximate number of grid points (lower it for slow user-supplied markets).
    max_evaluations : int
        Bound on the profit evaluations of every local refinement.

    Returns
    -------
    SharingBargain

    Examples
    --------
    >>> m = SharingModel(LearningCurve(0, 1, 0.5), gamma=0.5)
    >>> nash_bargaining_sharing(m, [1000, 100]).fractions.round(3).tolist()
    [0.007, 1.0]
    """
    s = check_sizes(sizes)
    n = s.size
    if n > 6:
        raise ValueError(f"parameter 'sizes' must hold at most 6 firms for bargaining; got {n}")
    check_int("n_starts", n_starts, minimum=0)
    check_int("n_grid", n_grid, minimum=4)
    check_int("max_evaluations", max_evaluations, minimum=1)
    k = max(2, round(n_grid ** (1 / n)) // 3)
    near = np.geomspace(1e-12, 0.5, 2 * k)
    axis = np.unique(np.concatenate([np.linspace(0.0, 1.0, k), near, 1 - near]))
    axes = np.meshgrid(*[axis] * n, indexing="ij")
    grid = np.stack([ax.ravel() for ax in axes], axis=1)
    d = model.profits(s, np.zeros(n))
    f = _log_nash(model, s, d)
    scores = f(grid)
    candidates = [grid]
    for start in grid[np.argsort(-scores)[:n_starts]]:
        if not np.isfinite(f(start)):
            break
        step = np.where(start > 0.5, -1.0, 1.0) * np.maximum(
            1e-2 * np.minimum(start, 1 - start), 1e-6
        )
        res = minimize(
            lambda x: -float(f(x)) if np.isfinite(f(x)) else np.inf,
            start,
            method="Nelder-Mead",
            bounds=[(0.0, 1.0)] * n,
            options={
                "xatol": 1e-13,
                "fatol": 1e-15,
                "maxfev": max_evaluations,
                "initial_simplex": np.vstack([start, start + np.diag(step)]),
            },
        )
        candidates.append(np.clip(res.x, 0, 1)[None])
    points = np.concatenate(candidates)
    utilities = model.profits(s, points)
    solution = nash_bargaining(
        FiniteUtilitySet(utilities, outcomes=tuple(map(tuple, points))), disagreement=d
    )
    if not solution.agreement:
        return SharingBargain(
            fractions=np.zeros(n), profits=d, disagreement=d, agreement=False, converged=True,
            max_perturbation_gain=0.0, solution=solution,
        )  # fmt: skip
    best = np.asarray(solution.point, dtype=np.float64)
    steps = 10.0 ** -np.arange(2, 7)
    trials = np.clip(best + (steps[:, None, None] * _directions(n)[None]).reshape(-1, n), 0, 1)
    gain = float(np.max(f(trials)) - f(best))
    return SharingBargain(
        fractions=best, profits=solution.utilities, disagreement=d, agreement=True,
        converged=gain <= 1e-9, max_perturbation_gain=max(gain, 0.0), solution=solution,
    )  # fmt: skip
