"""Coalition utilities: the value of a coalition of parties is the score of a model
trained on their pooled data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coopml._lazy import exports

if TYPE_CHECKING:
    from coopml.learning.deduplicating import DeduplicatingLearner
    from coopml.learning.utility import CoalitionUtility, Estimator, FitFailure

# Imported on first use (PEP 562): the fast learners' numpy kernels need no scikit-learn
_LAZY = {
    "DeduplicatingLearner": "deduplicating",
    **dict.fromkeys(["CoalitionUtility", "Estimator", "FitFailure"], "utility"),
}


__getattr__ = exports(__name__, _LAZY)


__all__ = ["CoalitionUtility", "DeduplicatingLearner", "Estimator", "FitFailure"]
