r"""Should competitors share data? One call: equilibria, unanimity and Nash bargaining.

:func:`analyze` builds the **reconstructed** model of Tsoy & Konstantinov, "Strategic
data sharing between competitors", NeurIPS 2023 (arXiv 2305.16052): learning curve
:math:`\varepsilon(N) = \varepsilon_\infty + A N^{-\beta}` (default :math:`N^{-\beta}`),
cost :math:`c_i = c_0 + \kappa\,\varepsilon(N_i)` and a Cournot or Bertrand market with
similarity :math:`\gamma`; it reports the equilibria without sharing and with full
sharing, who agrees to full sharing, and the Nash bargaining fractions.

Defaults: :math:`a - c_0 = 1` and :math:`\kappa = 1/4`. Since :math:`\varepsilon \le 1`
for :math:`N \ge 1`, every margin lies in :math:`[3/4, 1]`, so the Cournot duopoly is
interior for every :math:`\gamma \in [0, 1]` (it needs :math:`2 m_i > \gamma m_j`), and
so is Cournot with :math:`n` firms when :math:`\kappa < 1/n` at :math:`\gamma = 1`. Where a
firm would not produce (many firms, or Bertrand close to homogeneous goods), exit is
handled by the market model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from coopml._validation import check_positive
from coopml.competition.learning import LearningCurve
from coopml.competition.market_models import MarketEquilibrium
from coopml.competition.negotiation import (
    FullSharing,
    SharingBargain,
    SharingModel,
    check_sizes,
    full_sharing,
    nash_bargaining_sharing,
)

__all__ = ["SharingAnalysis", "analyze"]


@dataclass(frozen=True, kw_only=True)
class SharingAnalysis:
    """Everything :func:`analyze` computes.

    Parameters
    ----------
    model : SharingModel
        Market, learning curve and cost parameters.
    full : FullSharing
        Profits without sharing and with full sharing, and who agrees.
    alone, shared : MarketEquilibrium
        Market equilibria without sharing and with all data pooled (quantities, prices,
        consumer surplus, welfare).
    bargain : SharingBargain
        Nash bargaining over the sharing fractions.
    """

    model: SharingModel
    full: FullSharing
    alone: MarketEquilibrium
    shared: MarketEquilibrium
    bargain: SharingBargain

    def to_dict(self) -> dict[str, Any]:
        """The interface JSON: ``firms``, ``full_sharing``, ``nash_bargaining`` plus
        ``model`` and the two equilibria."""
        firms = [
            {
                "size": float(size),
                "profit_alone": float(alone),
                "profit_shared": float(shared),
                "agrees_to_full_sharing": bool(agree),
            }
            for size, alone, shared, agree in zip(
                self.full.sizes,
                self.full.profit_alone,
                self.full.profit_shared,
                self.full.agrees,
                strict=True,
            )
        ]
        return {
            "firms": firms,
            "full_sharing": self.full.unanimous,
            "nash_bargaining": self.bargain.to_dict(),
            "model": self.model.to_dict(),
            "equilibrium_alone": self.alone.to_dict(),
            "equilibrium_shared": self.shared.to_dict(),
        }


def analyze(
    sizes: ArrayLike,
    gamma: float,
    beta: float,
    market: str = "cournot",
    *,
    A: float = 1.0,
    eps_inf: float = 0.0,
    margin: float = 1.0,
    kappa: float = 0.25,
) -> SharingAnalysis:
    """Analyse data sharing between firms with the given data sizes.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
        Each firm's number of samples (>= 1, 2 to 6 firms).
    gamma : float
        Product similarity in ``[0, 1]`` (``< 1`` for Bertrand).
    beta : float
        Learning-curve exponent (> 0); small is a hard task.
    market : {"cournot", "bertrand"}
    A, eps_inf : float
        Learning-curve scale and floor (default ``eps(N) = N**(-beta)``).
    margin, kappa : float
        ``a - c_0`` and the cost of error (see the module docstring for the defaults).

    Returns
    -------
    SharingAnalysis

    Examples
    --------
    >>> r = analyze([1000, 100], gamma=0.5, beta=0.5)
    >>> r.full.agrees.tolist(), r.full.unanimous
    ([False, True], False)
    >>> r.bargain.fractions.round(3).tolist()
    [0.007, 1.0]
    >>> analyze([500, 500], gamma=0.9, beta=0.5).full.unanimous
    True
    """
    s = check_sizes(sizes)
    model = SharingModel(
        LearningCurve(eps_inf, A, check_positive("beta", beta)),
        gamma=gamma,
        market=market,
        margin=margin,
        kappa=kappa,
    )
    return SharingAnalysis(
        model=model,
        full=full_sharing(model, s),
        alone=model.equilibrium(s, np.zeros(s.size)),
        shared=model.equilibrium(s, np.ones(s.size)),
        bargain=nash_bargaining_sharing(model, s),
    )
