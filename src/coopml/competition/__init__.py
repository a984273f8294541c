"""Strategic data sharing between competitors (reconstructed).

The framework of Tsoy & Konstantinov, "Strategic data sharing between competitors",
NeurIPS 2023 (arXiv 2305.16052), with its three pluggable components: a market model
(:mod:`~coopml.competition.market_models`: Cournot and Bertrand with differentiated
products, or any user model following :class:`MarketModel`, solved numerically), a
learning component (:mod:`~coopml.competition.learning`: power-law learning curves,
fitted on real data, entering the market through cost or demand) and a negotiation
(:mod:`~coopml.competition.negotiation`: full sharing by unanimity, Nash bargaining over
sharing fractions, transferable utility, and
:mod:`~coopml.competition.coalition_structures`: sharing groups among n firms with their
stability). The instantiation is a **reconstruction** of the paper's "conventional
market model"; :mod:`~coopml.competition.real_data` runs it on fitted learning curves.

Examples
--------
>>> from coopml.competition import analyze
>>> analyze([100, 100], gamma=0.5, beta=0.5).full.unanimous
True
"""

from coopml.competition.analysis import SharingAnalysis, analyze
from coopml.competition.coalition_structures import (
    CoalitionStructures,
    coalition_structures,
    set_partitions,
)
from coopml.competition.learning import LearningCurve, LearningCurveFit, fit_learning_curve
from coopml.competition.market_models import (
    MARKETS,
    MarketEquilibrium,
    bertrand_equilibrium,
    cournot_equilibrium,
    equilibrium_deviation_gain,
    equilibrium_profits,
)
from coopml.competition.negotiation import (
    QUALITY_CHANNELS,
    FullSharing,
    SharingBargain,
    SharingModel,
    effective_sizes,
    full_sharing,
    full_sharing_threshold,
    nash_bargaining_sharing,
)
from coopml.competition.phase_diagram import (
    PHASES,
    SharingPhaseDiagram,
    profit_gain_curves,
    sharing_phase_diagram,
    size_ratio_phase_diagram,
)
from coopml.competition.user_markets import (
    BertrandMarket,
    CournotMarket,
    MarketModel,
    NumericalEquilibrium,
    deviation_gain,
    solve_equilibrium,
)

__all__ = [
    "MARKETS",
    "PHASES",
    "QUALITY_CHANNELS",
    "BertrandMarket",
    "CoalitionStructures",
    "CournotMarket",
    "FullSharing",
    "LearningCurve",
    "LearningCurveFit",
    "MarketEquilibrium",
    "MarketModel",
    "NumericalEquilibrium",
    "SharingAnalysis",
    "SharingBargain",
    "SharingModel",
    "SharingPhaseDiagram",
    "analyze",
    "bertrand_equilibrium",
    "coalition_structures",
    "cournot_equilibrium",
    "deviation_gain",
    "effective_sizes",
    "equilibrium_deviation_gain",
    "equilibrium_profits",
    "fit_learning_curve",
    "full_sharing",
    "full_sharing_threshold",
    "nash_bargaining_sharing",
    "profit_gain_curves",
    "set_partitions",
    "sharing_phase_diagram",
    "size_ratio_phase_diagram",
    "solve_equilibrium",
]
