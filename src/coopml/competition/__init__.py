"""Strategic data sharing between competitors (reconstructed).

The framework of Tsoy & Konstantinov, "Strategic data sharing between competitors",
NeurIPS 2023 (arXiv 2305.16052), with its three components: a market model
(:mod:`~coopml.competition.market_models`: Cournot and Bertrand with differentiated
products), a learning component (:mod:`~coopml.competition.learning`: power-law learning
curves, fitted on real data) and a negotiation (:mod:`~coopml.competition.negotiation`:
full sharing by unanimity, Nash bargaining over sharing fractions). The instantiation is
a reconstruction of the paper's "conventional market model".

Examples
--------
>>> from coopml.competition import analyze
>>> analyze([100, 100], gamma=0.5, beta=0.5).full.unanimous
True
"""

from coopml.competition.analysis import SharingAnalysis, analyze
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
    FullSharing,
    SharingBargain,
    SharingModel,
    effective_sizes,
    full_sharing,
    full_sharing_threshold,
    nash_bargaining_sharing,
)
from coopml.competition.phase_diagram import SharingPhaseDiagram, sharing_phase_diagram

__all__ = [
    "MARKETS",
    "FullSharing",
    "LearningCurve",
    "LearningCurveFit",
    "MarketEquilibrium",
    "SharingAnalysis",
    "SharingBargain",
    "SharingModel",
    "SharingPhaseDiagram",
    "analyze",
    "bertrand_equilibrium",
    "cournot_equilibrium",
    "effective_sizes",
    "equilibrium_deviation_gain",
    "equilibrium_profits",
    "fit_learning_curve",
    "full_sharing",
    "full_sharing_threshold",
    "nash_bargaining_sharing",
    "sharing_phase_diagram",
]
