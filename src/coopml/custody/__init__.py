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

from __future__ import annotations

from typing import TYPE_CHECKING

from coopml._lazy import exports

if TYPE_CHECKING:
    from coopml.custody.agent import Agent, agent_from_config
    from coopml.custody.checks import AgentError
    from coopml.custody.learners import ESTIMATORS, custody_learner
    from coopml.custody.market import run_custody_market
    from coopml.custody.newton import FederatedLogisticRegression
    from coopml.custody.privacy import GaussianMechanism
    from coopml.custody.statistics import Moments, collect_moments
    from coopml.custody.transport import LocalTransport, Transport

# Imported on first use (PEP 562): the agent's ClientApp, started afresh by Flower for
# every message, imports coopml.custody.agent and must not pay for the operator's side
# (the market, the Newton solver, the solution concepts).
_LAZY = {
    "Agent": "coopml.custody.agent",
    "agent_from_config": "coopml.custody.agent",
    "AgentError": "coopml.custody.checks",
    "ESTIMATORS": "coopml.custody.learners",
    "custody_learner": "coopml.custody.learners",
    "run_custody_market": "coopml.custody.market",
    "FederatedLogisticRegression": "coopml.custody.newton",
    "GaussianMechanism": "coopml.custody.privacy",
    "Moments": "coopml.custody.statistics",
    "collect_moments": "coopml.custody.statistics",
    "LocalTransport": "coopml.custody.transport",
    "Transport": "coopml.custody.transport",
}


__getattr__ = exports(__name__, _LAZY)


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
