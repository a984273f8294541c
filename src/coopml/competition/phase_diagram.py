r"""Phase diagram of full data sharing over product similarity and task hardness.

For firms with data sizes :math:`n_i`, every cell :math:`(\gamma, \beta)` of a grid gets
the unanimity decision of :func:`~coopml.competition.full_sharing`: who gains from
pooling all data under the learning curve :math:`\varepsilon(N) = \varepsilon_\infty +
A N^{-\beta}` and cost :math:`c_i = c_0 + \kappa\,\varepsilon(N_i)`. The grid is
vectorised over :math:`\beta` (and looped over :math:`\gamma`), so a 200 x 200 diagram
takes well under a second. The model is the **reconstruction** of Tsoy & Konstantinov,
"Strategic data sharing between competitors", NeurIPS 2023 (arXiv 2305.16052); the
diagram shows its findings: sharing happens for low similarity and hard tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_choice, check_fraction, check_positive
from coopml.competition.market_models import MARKETS, equilibrium_profits
from coopml.competition.negotiation import check_sizes

__all__ = ["SharingPhaseDiagram", "sharing_phase_diagram"]


@dataclass(frozen=True, kw_only=True)
class SharingPhaseDiagram:
    """Full-sharing decisions on a ``(gamma, beta)`` grid.

    Parameters
    ----------
    sizes : ndarray of shape (n_firms,)
    gammas : ndarray of shape (n_gamma,)
    betas : ndarray of shape (n_beta,)
    profit_alone, profit_shared : ndarray of shape (n_gamma, n_beta, n_firms)
        Equilibrium profits without sharing and with full sharing.
    market : str
    """

    sizes: NDArray[np.float64]
    gammas: NDArray[np.float64]
    betas: NDArray[np.float64]
    profit_alone: NDArray[np.float64]
    profit_shared: NDArray[np.float64]
    market: str

    @property
    def agrees(self) -> NDArray[np.bool_]:
        """Whether each firm gains from full sharing, shape (n_gamma, n_beta, n_firms)."""
        return np.asarray(self.profit_shared > self.profit_alone)

    @property
    def unanimous(self) -> NDArray[np.bool_]:
        """Whether all data is pooled, shape (n_gamma, n_beta)."""
        return np.asarray(self.agrees.all(axis=-1))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per cell: ``gamma``, ``beta``, ``full_sharing`` and ``agrees_i``."""
        g, b = np.meshgrid(self.gammas, self.betas, indexing="ij")
        frame = pd.DataFrame(
            {"gamma": g.ravel(), "beta": b.ravel(), "full_sharing": self.unanimous.ravel()}
        )
        for i in range(self.sizes.size):
            frame[f"agrees_{i}"] = self.agrees[..., i].ravel()
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "sizes": self.sizes.tolist(),
            "gammas": self.gammas.tolist(),
            "betas": self.betas.tolist(),
            "market": self.market,
            "unanimous": self.unanimous.tolist(),
            "agrees": self.agrees.tolist(),
        }


def _grid(name: str, values: ArrayLike) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size < 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"parameter '{name}' must be a finite 1-D grid; got {values!r}")
    return array


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
) -> SharingPhaseDiagram:
    """Full-sharing decisions over a grid of similarities and learning-curve exponents.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
    gammas : array_like of shape (n_gamma,)
        Similarities in ``[0, 1]`` (``< 1`` for Bertrand).
    betas : array_like of shape (n_beta,)
        Exponents ``> 0``.
    market : {"cournot", "bertrand"}
    A, eps_inf, margin, kappa : float
        As in :func:`~coopml.competition.analyze`.

    Returns
    -------
    SharingPhaseDiagram

    Examples
    --------
    >>> d = sharing_phase_diagram([1000, 100], [0.02, 0.5], [0.1, 1.0])
    >>> d.unanimous.tolist()
    [[True, False], [False, False]]
    """
    s = check_sizes(sizes)
    check_choice("market", market, MARKETS)
    g = _grid("gammas", gammas)
    b = _grid("betas", betas)
    for value in g:
        check_fraction("gammas", float(value))
    if market == "bertrand" and g.max() >= 1:
        raise ValueError(f"parameter 'gammas' must be < 1 for Bertrand; got {g.max()}")
    for value in b:
        check_positive("betas", float(value))
    check_positive("margin", margin)
    check_positive("kappa", kappa, strict=False)
    n_eff = np.stack([s, np.full(s.size, s.sum())])  # (2, n): alone, shared
    eps = eps_inf + A * n_eff[None] ** (-b[:, None, None])  # (n_beta, 2, n)
    costs = kappa * eps
    profits = np.stack([equilibrium_profits(margin, costs, float(x), market) for x in g])
    return SharingPhaseDiagram(
        sizes=s,
        gammas=g,
        betas=b,
        profit_alone=profits[:, :, 0],
        profit_shared=profits[:, :, 1],
        market=market,
    )
