"""coopml: the economics of collaborative machine learning.

Subpackages: :mod:`coopml.data` (parties and datasets), :mod:`coopml.learning`
(coalition utilities), :mod:`coopml.coalitions` (cooperative games and their solution
concepts), :mod:`coopml.plots` and :mod:`coopml.cli`. The names most users need are
re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coopml._lazy import exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from coopml.coalitions import CoalitionGame, ValuationResult, monte_carlo_shapley
    from coopml.data import Party, load_dataset, make_parties, train_validation_split
    from coopml.learning import CoalitionUtility

# Re-exports are imported on first use (PEP 562), so that light entry points (the HTTP
# client, `coopml client ...`) do not pay for scikit-learn and the solution concepts.
_LAZY = {
    "CoalitionGame": "coopml.coalitions",
    "ValuationResult": "coopml.coalitions",
    "monte_carlo_shapley": "coopml.coalitions",
    "Party": "coopml.data",
    "load_dataset": "coopml.data",
    "make_parties": "coopml.data",
    "train_validation_split": "coopml.data",
    "CoalitionUtility": "coopml.learning",
}


__getattr__ = exports(__name__, _LAZY)


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
