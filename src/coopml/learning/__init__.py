"""Coalition utilities: the value of a coalition of parties is the score of a model
trained on their pooled data."""

from coopml.learning.deduplicating import DeduplicatingLearner
from coopml.learning.utility import CoalitionUtility, Estimator, FitFailure

__all__ = ["CoalitionUtility", "DeduplicatingLearner", "Estimator", "FitFailure"]
