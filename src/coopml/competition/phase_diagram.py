r"""Phase diagrams of data sharing over product similarity, task hardness and size ratio.

Every cell of a grid gets the unanimity decision of :func:`~coopml.competition.full_sharing`
(who gains from pooling all data) and, for two firms, the Nash bargaining solution over
the sharing fractions. Cells are classified as **full sharing** (every firm gains from
pooling everything), **partial sharing** (no unanimity, but Nash bargaining finds
fractions that raise both profits) and **no sharing**. Two grids are offered:
:math:`(\gamma, \beta)` for fixed data sizes (:func:`sharing_phase_diagram`) and
:math:`(\gamma, n_S / n_L)` for a fixed learning curve (:func:`size_ratio_phase_diagram`);
:func:`profit_gain_curves` is the one-row case for the profit-gain curves.

Everything is vectorised: profits of a whole grid row come from the closed-form
equilibria at once, and the duopoly bargaining uses that the smaller firm shares all its
data (:math:`\lambda_S = 1`; checked against the general solver in the tests), so the
larger firm's fraction is a one-dimensional search (a grid dense near 0, then eight
zoom rounds) done for all cells together. A 200 x 200 diagram with bargaining costs
about one second of CPU, 0.02 s without (measured: see ``docs/competition.md``).

The model is the **reconstruction** of Tsoy & Konstantinov, "Strategic data sharing
between competitors", NeurIPS 2023 (arXiv 2305.16052); the diagrams show its findings:
sharing happens for low similarity and hard tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_choice, check_fraction, check_positive
from coopml.competition.market_models import MARKETS, equilibrium_profits
from coopml.competition.negotiation import QUALITY_CHANNELS, check_sizes

__all__ = [
    "PHASES",
    "SharingPhaseDiagram",
    "profit_gain_curves",
    "sharing_phase_diagram",
    "size_ratio_phase_diagram",
]

PHASES = ("no sharing", "partial sharing", "full sharing")
"""Names of the phase codes 0, 1, 2 of :attr:`SharingPhaseDiagram.phase`."""

Array = NDArray[np.float64]


def _frozen(values: Any, dtype: Any = np.float64) -> NDArray[Any]:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True)
class SharingPhaseDiagram:
    """Sharing decisions on a ``(gamma, y)`` grid, ``y`` being ``beta`` or the size ratio.

    Parameters
    ----------
    gammas : ndarray of shape (n_gamma,)
    y : ndarray of shape (n_y,)
        The second axis' values.
    y_name : {"beta", "size_ratio"}
    sizes : ndarray of shape (n_y, n_firms)
        Data sizes in every column (constant along a ``beta`` axis).
    betas : ndarray of shape (n_y,)
        Learning-curve exponent in every column.
    profit_alone, profit_shared : ndarray of shape (n_gamma, n_y, n_firms)
        Equilibrium profits without sharing and with full sharing.
    fractions, profit_nash : ndarray of shape (n_gamma, n_y, n_firms) or None
        Nash bargaining fractions and profits (duopoly only; zeros and ``profit_alone``
        where there is no agreement).
    market, quality : str
    """

    gammas: Array
    y: Array
    y_name: str
    sizes: Array
    betas: Array
    profit_alone: Array
    profit_shared: Array
    fractions: Array | None
    profit_nash: Array | None
    market: str
    quality: str

    def __post_init__(self) -> None:
        for name in ("gammas", "y", "sizes", "betas", "profit_alone", "profit_shared"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        for name in ("fractions", "profit_nash"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def agrees(self) -> NDArray[np.bool_]:
        """Whether each firm gains from full sharing, shape (n_gamma, n_y, n_firms)."""
        return np.asarray(self.profit_shared > self.profit_alone)

    @property
    def unanimous(self) -> NDArray[np.bool_]:
        """Whether all data is pooled, shape (n_gamma, n_y)."""
        return np.asarray(self.agrees.all(axis=-1))

    @property
    def agreement(self) -> NDArray[np.bool_] | None:
        """Whether Nash bargaining agrees on some sharing, shape (n_gamma, n_y)."""
        if self.profit_nash is None:
            return None
        return np.asarray(np.all(self.profit_nash > self.profit_alone, axis=-1))

    @property
    def phase(self) -> NDArray[np.int64]:
        """0 no sharing, 1 partial sharing (bargaining only), 2 full sharing; without
        bargaining, cells are 2 or 0."""
        agreement = self.agreement
        partial = np.zeros_like(self.unanimous) if agreement is None else agreement
        return np.where(self.unanimous, 2, np.where(partial, 1, 0)).astype(np.int64)

    @property
    def relative_gain_shared(self) -> Array:
        """``profit_shared / profit_alone - 1``, shape (n_gamma, n_y, n_firms)."""
        return np.asarray(self.profit_shared / self.profit_alone - 1.0)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per cell: ``gamma``, the ``y`` axis, ``beta``, ``size_ratio``,
        ``phase`` (name), ``full_sharing``, ``agrees_i``, ``profit_alone_i``,
        ``profit_shared_i`` and, with bargaining, ``fraction_i`` and ``profit_nash_i``."""
        g, k = np.meshgrid(self.gammas, np.arange(self.y.size), indexing="ij")
        ratio = self.sizes.min(axis=1) / self.sizes.max(axis=1)
        frame = pd.DataFrame(
            {
                "gamma": g.ravel(),
                "beta": self.betas[k.ravel()],
                "size_ratio": ratio[k.ravel()],
                "phase": np.array(PHASES)[self.phase.ravel()],
                "full_sharing": self.unanimous.ravel(),
            }
        )
        n = self.sizes.shape[1]
        for i in range(n):
            frame[f"agrees_{i}"] = self.agrees[..., i].ravel()
        for i in range(n):
            frame[f"profit_alone_{i}"] = self.profit_alone[..., i].ravel()
            frame[f"profit_shared_{i}"] = self.profit_shared[..., i].ravel()
        if self.fractions is not None and self.profit_nash is not None:
            for i in range(n):
                frame[f"fraction_{i}"] = self.fractions[..., i].ravel()
                frame[f"profit_nash_{i}"] = self.profit_nash[..., i].ravel()
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "gammas": self.gammas.tolist(),
            "y": self.y.tolist(),
            "y_name": self.y_name,
            "sizes": self.sizes.tolist(),
            "betas": self.betas.tolist(),
            "market": self.market,
            "quality": self.quality,
            "phase": self.phase.tolist(),
            "agrees": self.agrees.tolist(),
            "fractions": None if self.fractions is None else self.fractions.tolist(),
        }


def _grid(name: str, values: ArrayLike) -> Array:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size < 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"parameter '{name}' must be a finite 1-D grid; got {values!r}")
    return array


def _check_common(
    gammas: ArrayLike, market: str, quality: str, margin: float, kappa: float
) -> Array:
    check_choice("market", market, MARKETS)
    check_choice("quality", quality, QUALITY_CHANNELS)
    g = _grid("gammas", gammas)
    for value in g:
        check_fraction("gammas", float(value))
    if market == "bertrand" and g.max() >= 1:
        raise ValueError(f"parameter 'gammas' must be < 1 for Bertrand; got {g.max()}")
    check_positive("margin", margin)
    check_positive("kappa", kappa, strict=False)
    return g


def _profits(
    trained_on: Array,
    betas: Array,
    gamma: float,
    *,
    market: str,
    quality: str,
    A: float,
    eps_inf: float,
    margin: float,
    kappa: float,
) -> Array:
    """Profits for ``trained_on`` of shape (n_y, ..., n) with one beta per leading row."""
    shape = (-1,) + (1,) * (trained_on.ndim - 1)
    eps = eps_inf + A * trained_on ** (-betas.reshape(shape))
    if quality == "cost":
        return equilibrium_profits(margin, kappa * eps, gamma, market)
    return equilibrium_profits(margin - kappa * eps, np.zeros_like(eps), gamma, market)


def _log_nash(profits: Array, alone: Array) -> Array:
    gains = profits - alone
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(gains > 0, gains, np.nan)).sum(axis=-1)
    return np.asarray(np.where(np.all(gains > 0, axis=-1), logs, -np.inf))


def _duopoly_bargain(
    sizes: Array, betas: Array, gamma: float, alone: Array, **kw: Any
) -> tuple[Array, Array]:
    """Nash bargaining for every column: the smaller firm shares all, the larger firm's
    fraction maximises the Nash product (grid dense near 0, then zooming)."""
    large = np.argmax(sizes, axis=1)  # (n_y,)
    rows = np.arange(sizes.shape[0])
    n_large, n_small = sizes[rows, large], sizes[rows, 1 - large]

    def evaluate(lam: Array) -> tuple[Array, Array]:  # lam (n_y, k)
        trained = np.empty((*lam.shape, 2))
        trained[rows, :, large] = (n_large + n_small)[:, None]
        trained[rows, :, 1 - large] = n_small[:, None] + lam * n_large[:, None]
        profits = _profits(trained, betas, gamma, **kw)
        return profits, _log_nash(profits, alone[:, None, :])

    base = np.unique(np.concatenate([[0.0], np.geomspace(1e-12, 1, 72), np.linspace(0, 1, 41)]))
    lam = np.broadcast_to(base, (sizes.shape[0], base.size))
    profits, score = evaluate(lam)
    k = np.argmax(score, axis=1)
    best_lam, best_score = lam[rows, k], score[rows, k]
    best_profits = profits[rows, k]
    lo, hi = lam[rows, np.maximum(k - 1, 0)], lam[rows, np.minimum(k + 1, base.size - 1)]
    t = np.linspace(0, 1, 17)
    for _ in range(8):
        trial = lo[:, None] + (hi - lo)[:, None] * t[None, :]
        p, sc = evaluate(trial)
        j = np.argmax(sc, axis=1)
        better = sc[rows, j] > best_score
        best_lam = np.where(better, trial[rows, j], best_lam)
        best_profits = np.where(better[:, None], p[rows, j], best_profits)
        best_score = np.maximum(best_score, sc[rows, j])
        step = (hi - lo) / 16
        lo, hi = np.maximum(best_lam - step, 0.0), np.minimum(best_lam + step, 1.0)
    ok = np.isfinite(best_score)
    fractions = np.zeros_like(sizes)
    fractions[rows, large] = np.where(ok, best_lam, 0.0)
    fractions[rows, 1 - large] = np.where(ok, 1.0, 0.0)
    return fractions, np.where(ok[:, None], best_profits, alone)


def _diagram(
    sizes: Array,
    betas: Array,
    gammas: Array,
    y: Array,
    y_name: str,
    bargaining: bool,
    market: str,
    quality: str,
    kw: dict[str, Any],
) -> SharingPhaseDiagram:
    n = sizes.shape[1]
    trained = np.stack([sizes, np.repeat(sizes.sum(axis=1, keepdims=True), n, axis=1)], axis=1)
    alone, shared, fractions, nash = [], [], [], []
    for g in gammas:
        p = _profits(trained, betas, float(g), market=market, quality=quality, **kw)
        alone.append(p[:, 0])
        shared.append(p[:, 1])
        if bargaining and n == 2:
            f, pn = _duopoly_bargain(
                sizes, betas, float(g), p[:, 0], market=market, quality=quality, **kw
            )
            fractions.append(f)
            nash.append(pn)
    return SharingPhaseDiagram(
        gammas=gammas, y=y, y_name=y_name, sizes=sizes, betas=betas,
        profit_alone=np.stack(alone), profit_shared=np.stack(shared),
        fractions=np.stack(fractions) if fractions else None,
        profit_nash=np.stack(nash) if nash else None, market=market, quality=quality,
    )  # fmt: skip


def sharing_phase_diagram(
    sizes: ArrayLike,
    gammas: ArrayLike,
    betas: ArrayLike,
    market: str = "cournot",
    *,
    A: float = 1.0,
    eps_inf: float = 0.0,
    margin: float = 1.0,
    kappa: float = 0.25,
    quality: str = "cost",
    bargaining: bool = True,
) -> SharingPhaseDiagram:
    """Sharing decisions over a grid of similarities and learning-curve exponents.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
    gammas : array_like of shape (n_gamma,)
        Similarities in ``[0, 1]`` (``< 1`` for Bertrand).
    betas : array_like of shape (n_beta,)
        Exponents ``> 0``.
    market : {"cournot", "bertrand"}
    A, eps_inf, margin, kappa, quality
        As in :func:`~coopml.competition.analyze`.
    bargaining : bool
        Also solve the Nash bargaining over fractions in every cell (two firms only).

    Returns
    -------
    SharingPhaseDiagram

    Examples
    --------
    >>> d = sharing_phase_diagram([1000, 100], [0.02, 0.5], [0.1, 1.0])
    >>> d.unanimous.tolist()
    [[True, False], [False, False]]
    >>> d.phase.tolist()
    [[2, 1], [1, 1]]
    >>> d.fractions[1, 0].round(3).tolist()
    [0.018, 1.0]
    """
    s = check_sizes(sizes)
    g = _check_common(gammas, market, quality, margin, kappa)
    b = _grid("betas", betas)
    for value in b:
        check_positive("betas", float(value))
    kw = {"A": A, "eps_inf": eps_inf, "margin": margin, "kappa": kappa}
    return _diagram(
        np.repeat(s[None], b.size, axis=0), b, g, b, "beta", bargaining, market, quality, kw
    )


def size_ratio_phase_diagram(
    gammas: ArrayLike,
    ratios: ArrayLike,
    beta: float,
    market: str = "cournot",
    *,
    large: float = 1000.0,
    A: float = 1.0,
    eps_inf: float = 0.0,
    margin: float = 1.0,
    kappa: float = 0.25,
    quality: str = "cost",
    bargaining: bool = True,
) -> SharingPhaseDiagram:
    """Duopoly sharing decisions over similarity and the size ratio ``n_S / n_L``.

    Firm 0 has ``large`` samples, firm 1 ``ratio * large``.

    Parameters
    ----------
    gammas : array_like of shape (n_gamma,)
    ratios : array_like of shape (n_ratio,)
        Size ratios in ``(0, 1]``.
    beta : float
        Learning-curve exponent (> 0).
    market : {"cournot", "bertrand"}
    large : float
        Size of the larger firm (>= 1; ``ratio * large`` must be >= 1).
    A, eps_inf, margin, kappa, quality, bargaining
        As in :func:`sharing_phase_diagram`.

    Returns
    -------
    SharingPhaseDiagram

    Examples
    --------
    >>> d = size_ratio_phase_diagram([0.05, 0.5], [0.1, 0.9], beta=0.5)
    >>> d.phase.tolist()
    [[1, 2], [1, 2]]
    """
    g = _check_common(gammas, market, quality, margin, kappa)
    r = _grid("ratios", ratios)
    for value in r:
        check_fraction("ratios", float(value), open_low=True)
    check_positive("beta", beta)
    big = check_positive("large", large)
    sizes = np.stack([np.full(r.size, big), r * big], axis=1)
    check_sizes(sizes.min(axis=0))
    kw = {"A": A, "eps_inf": eps_inf, "margin": margin, "kappa": kappa}
    betas = np.full(r.size, float(beta))
    return _diagram(sizes, betas, g, r, "size_ratio", bargaining, market, quality, kw)


def profit_gain_curves(
    sizes: ArrayLike,
    gammas: ArrayLike,
    beta: float,
    market: str = "cournot",
    **kwargs: Any,
) -> SharingPhaseDiagram:
    """Profits with and without sharing along similarity: a one-column diagram.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
    gammas : array_like of shape (n_gamma,)
    beta : float
    market : {"cournot", "bertrand"}
    **kwargs
        As in :func:`sharing_phase_diagram`.

    Returns
    -------
    SharingPhaseDiagram
        With ``y = [beta]``; ``relative_gain_shared[:, 0]`` are the curves.

    Examples
    --------
    >>> c = profit_gain_curves([1000, 100], [0.0, 0.5, 1.0], beta=0.5)
    >>> (c.relative_gain_shared[:, 0] > 0).tolist()
    [[True, True], [False, True], [False, True]]
    """
    return sharing_phase_diagram(sizes, gammas, [beta], market, **kwargs)
