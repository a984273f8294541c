r"""Flower adapter: the coopetitive round game inside a Flower deployment (extra ``flower``).

Reconstruction of CoCoGen+ (*Cooperate to Compete*, arXiv 2604.14886, 2026; the paper's
full text was not available, see :mod:`coopml.federated.game`) run by a Flower
(https://flower.ai, ``flwr`` >= 1.20) server strategy. The adapter is thin: the round
itself (random streams, sampling, the game, the strategies, participation and the books)
is the shared round engine :mod:`coopml.federated.rounds`, which the built-in simulator
runs too; the adapter only moves statistics, amounts, streams and parameters through
Flower's messages.

* :mod:`~coopml.federated.flower.client` -- :class:`FlowerClient`: one organisation's
  data, generator and local training;
* :mod:`~coopml.federated.flower.strategy` -- :class:`CoopetitiveFedAvg`, a subclass of
  Flower's ``FedAvg`` driven by the round engine, with per-round contribution accounting
  (:mod:`coopml.federated.accounting`: exact Shapley values of the coalition models
  reconstructed from the clients' updates, Song, Tong & Wei, IEEE Big Data 2019);
* :mod:`~coopml.federated.flower.app` -- :func:`make_apps`, the ``ServerApp`` and
  ``ClientApp`` of a prepared set-up;
* :mod:`~coopml.federated.flower.runner` -- :func:`run_flower_simulation`, Flower's
  simulation engine (Ray backend) in this process with telemetry off.

For the same seed a Flower run samples the organisations, decides the amounts and books
the transfers of the built-in simulator (:func:`coopml.federated.simulation.run_strategy`)
and, since every participant draws its synthetic samples and minibatches from its own
spawned stream in both engines, trains bit for bit the same models.
"""

from __future__ import annotations

try:
    import flwr  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("coopml.federated.flower needs Flower: pip install 'coopml[flower]'") from exc

from coopml.federated.accounting import MAX_ACCOUNTING_PLAYERS
from coopml.federated.config import STRATEGIES
from coopml.federated.flower.app import make_apps
from coopml.federated.flower.client import FlowerClient, make_client_fn
from coopml.federated.flower.runner import FlowerRunResult, run_flower_simulation
from coopml.federated.flower.strategy import CoopetitiveFedAvg, FlowerRound

__all__ = [
    "MAX_ACCOUNTING_PLAYERS",
    "STRATEGIES",
    "CoopetitiveFedAvg",
    "FlowerClient",
    "FlowerRound",
    "FlowerRunResult",
    "make_apps",
    "make_client_fn",
    "run_flower_simulation",
]
