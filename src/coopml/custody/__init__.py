"""Parties custody: markets whose settlement is exact while no row leaves its owner.

Each party runs an :class:`Agent` next to its own files; the operator sends it
requests (through a :class:`Transport`: in process, or Flower's deployment runtime)
and builds every coalition's model from what the agents return -- sufficient
statistics (linear and ridge regression, Gaussian naive Bayes, LDA) or gradients and
Hessians (logistic regression, by a federated batched Newton method) -- and has them
scored by the owner of each validation set. :func:`run_custody_market` settles the
round with the same records as :func:`coopml.market.run_market`. See docs/custody.md
for what the operator learns.
"""

from coopml.custody.agent import Agent, agent_from_config
from coopml.custody.checks import AgentError
from coopml.custody.learners import ESTIMATORS, custody_learner
from coopml.custody.market import run_custody_market
from coopml.custody.newton import FederatedLogisticRegression
from coopml.custody.privacy import GaussianMechanism
from coopml.custody.statistics import Moments, collect_moments
from coopml.custody.transport import LocalTransport, Transport

__all__ = [
    "ESTIMATORS",
    "Agent",
    "AgentError",
    "FederatedLogisticRegression",
    "GaussianMechanism",
    "LocalTransport",
    "Moments",
    "Transport",
    "agent_from_config",
    "collect_moments",
    "custody_learner",
    "run_custody_market",
]
