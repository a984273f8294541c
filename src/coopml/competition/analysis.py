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
handled by the market model. ``quality="demand"`` moves the same :math:`\kappa\,
\varepsilon(N_i)` from the cost to the demand intercept (same profits in the built-in
linear markets, lower prices). Beyond unanimity and Nash bargaining, :func:`analyze`
reports full sharing with side payments (transferable utility, the surplus split by a
bargaining rule) and, for up to 5 firms, every coalition structure with its stability.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from coopml._validation import check_positive
from coopml.bargaining import BargainingSolution, transferable_utility_split
from coopml.competition.coalition_structures import CoalitionStructures, coalition_structures
from coopml.competition.learning import LearningCurve
from coopml.competition.market_models import MarketEquilibrium, equilibrium_deviation_gain
from coopml.competition.negotiation import (
    FullSharing,
    SharingBargain,
    SharingModel,
    check_sizes,
    full_sharing,
    nash_bargaining_sharing,
)
from coopml.competition.user_markets import MarketModel, NumericalEquilibrium

__all__ = ["SharingAnalysis", "analyze"]


@dataclass(frozen=True, kw_only=True)
class SharingAnalysis:
    """Everything :func:`analyze` computes.

    Parameters
    ----------
    model : SharingModel
        Market, learning curve and quality parameters.
    full : FullSharing
        Profits without sharing and with full sharing, and who agrees.
    alone, shared : MarketEquilibrium or NumericalEquilibrium
        Market equilibria without sharing and with all data pooled (quantities, prices,
        consumer surplus, welfare for the built-in markets; verified numerical
        equilibria for a user market).
    bargain : SharingBargain
        Nash bargaining over the sharing fractions.
    transferable : BargainingSolution
        Full sharing with side payments: the joint profit under full sharing split by
        ``rule`` with disagreement = no sharing (``agreement`` iff joint profit rises).
    structures, structures_tu : CoalitionStructures or None
        Every partition into sharing groups with its stability, without and with
        transfers (``None`` for more than 5 firms).
    max_deviation_gain : float
        Largest gain of a unilateral deviation found in ``alone`` and ``shared`` (grid
        plus bounded optimiser); ``verified`` is true when it is below ``1e-8``.
    """

    model: SharingModel
    full: FullSharing
    alone: MarketEquilibrium | NumericalEquilibrium
    shared: MarketEquilibrium | NumericalEquilibrium
    bargain: SharingBargain
    transferable: BargainingSolution
    structures: CoalitionStructures | None = None
    structures_tu: CoalitionStructures | None = None
    max_deviation_gain: float = float("nan")

    @property
    def verified(self) -> bool:
        """Whether both reported equilibria passed the unilateral-deviation check."""
        return bool(self.max_deviation_gain <= 1e-8)

    @property
    def decision(self) -> str:
        """One line: what the firms should do under the reconstructed model."""
        if self.full.unanimous:
            return "share all data: every firm's profit rises under full sharing"
        if self.bargain.agreement:
            fractions = ", ".join(f"{f:.3g}" for f in self.bargain.fractions)
            return (
                "no unanimous full sharing; Nash bargaining agrees on partial sharing "
                f"(fractions {fractions})"
            )
        if self.transferable.agreement:
            return "share only with side payments: joint profit rises under full sharing"
        return "do not share: no sharing agreement raises every firm's profit"

    def to_dict(self) -> dict[str, Any]:
        """The interface JSON: ``firms``, ``full_sharing``, ``nash_bargaining`` plus
        ``model``, the two equilibria, ``transferable_utility``, ``coalition_structures``
        and ``decision``."""
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
        tu = self.transferable
        out: dict[str, Any] = {
            "firms": firms,
            "full_sharing": self.full.unanimous,
            "nash_bargaining": self.bargain.to_dict(),
            "transferable_utility": {
                "rule": tu.method,
                "shares": bool(tu.agreement),
                "joint_profit_gain": float(
                    self.full.profit_shared.sum() - self.full.profit_alone.sum()
                ),
                "payoffs": tu.utilities.tolist(),
                "side_payments": (tu.utilities - self.full.profit_shared).tolist()
                if tu.agreement
                else [0.0] * self.full.sizes.size,
            },
            "model": self.model.to_dict(),
            "equilibrium_alone": self.alone.to_dict(),
            "equilibrium_shared": self.shared.to_dict(),
            "decision": self.decision,
            "equilibria_verified": self.verified,
            "max_deviation_gain": self.max_deviation_gain,
        }
        if self.structures is not None and self.structures_tu is not None:
            out["coalition_structures"] = {
                "without_transfers": self.structures.to_dict()["structures"],
                "with_transfers": self.structures_tu.to_dict()["structures"],
            }
        return out


def analyze(
    sizes: ArrayLike,
    gamma: float,
    beta: float | None = None,
    market: str | MarketModel = "cournot",
    *,
    A: float = 1.0,
    eps_inf: float = 0.0,
    curve: LearningCurve | None = None,
    margin: float = 1.0,
    kappa: float = 0.25,
    quality: str = "cost",
    rule: str = "nash",
    n_grid: int = 4000,
    n_starts: int = 5,
) -> SharingAnalysis:
    """Analyse data sharing between firms with the given data sizes.

    Parameters
    ----------
    sizes : array_like of shape (n_firms,)
        Each firm's number of samples (>= 1, 2 to 6 firms).
    gamma : float
        Product similarity in ``[0, 1]`` (``< 1`` for Bertrand).
    beta : float, optional
        Learning-curve exponent (> 0); small is a hard task. Give ``beta`` or ``curve``.
    market : {"cournot", "bertrand"} or MarketModel
        A built-in market or a user model (equilibria found numerically).
    A, eps_inf : float
        Learning-curve scale and floor (default ``eps(N) = N**(-beta)``).
    curve : LearningCurve, optional
        A whole learning curve instead of ``beta``, ``A``, ``eps_inf`` (e.g. one fitted
        by :func:`~coopml.competition.fit_learning_curve`).
    margin, kappa : float
        ``a - c_0`` and the value of quality (see the module docstring for defaults).
    quality : {"cost", "demand"}
        Channel through which model quality enters the market.
    rule : {"nash", "kalai_smorodinsky", "egalitarian", "utilitarian"}
        Bargaining rule splitting the surplus under transferable utility.
    n_grid, n_starts : int
        Grid size and local refinements of the Nash bargaining search (lower both for
        slow user markets, whose every profit evaluation is a numerical equilibrium).

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
    >>> r.transferable.agreement, r.structures_tu.stable("core")
    (True, [((0, 1),)])
    >>> r.verified  # no firm gains by deviating alone, with or without sharing
    True
    >>> analyze([500, 500], gamma=0.9, beta=0.5).full.unanimous
    True
    """
    s = check_sizes(sizes)
    if curve is None:
        if beta is None:
            raise ValueError("parameter 'beta' is required when no 'curve' is given; got None")
        curve = LearningCurve(eps_inf, A, check_positive("beta", beta))
    elif not isinstance(curve, LearningCurve):
        raise TypeError(f"parameter 'curve' must be a LearningCurve; got {type(curve).__name__}")
    model = SharingModel(
        curve, gamma=gamma, market=market, margin=margin, kappa=kappa, quality=quality
    )
    full = full_sharing(model, s)
    transferable = transferable_utility_split(
        float(full.profit_shared.sum()), full.profit_alone, rule
    )
    small = s.size <= 5 and isinstance(market, str)
    alone = model.equilibrium(s, np.zeros(s.size))
    shared = model.equilibrium(s, np.ones(s.size))
    gains = [
        eq.max_deviation_gain
        if isinstance(eq, NumericalEquilibrium)
        else equilibrium_deviation_gain(eq)
        for eq in (alone, shared)
    ]
    return SharingAnalysis(
        model=model,
        full=full,
        alone=alone,
        shared=shared,
        max_deviation_gain=float(max(gains)),
        bargain=nash_bargaining_sharing(model, s, n_grid=n_grid, n_starts=n_starts),
        transferable=transferable,
        structures=coalition_structures(model, s) if small else None,
        structures_tu=coalition_structures(model, s, transfers=True, rule=rule) if small else None,
    )
