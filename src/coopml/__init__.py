"""coopml: the economics of collaborative machine learning.

Subpackages: :mod:`coopml.data` (parties and datasets), :mod:`coopml.learning`
(coalition utilities), :mod:`coopml.coalitions` (cooperative games and their solution
concepts), :mod:`coopml.plots` and :mod:`coopml.cli`. The names most users need are
re-exported here.
"""

__version__ = "0.1.0"

from coopml.coalitions import CoalitionGame, ValuationResult, monte_carlo_shapley
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.learning import CoalitionUtility

__all__ = [
    "CoalitionGame",
    "CoalitionUtility",
    "Party",
    "ValuationResult",
    "__version__",
    "load_dataset",
    "make_parties",
    "monte_carlo_shapley",
    "train_validation_split",
]
