"""Flower apps for a prepared set-up: a ``ServerApp`` with :class:`CoopetitiveFedAvg` and a
``ClientApp`` whose nodes are the set-up's organisations (for ``flwr run`` or the
simulation engine, :mod:`coopml.federated.flower.runner`)."""

from __future__ import annotations

from flwr.clientapp import ClientApp
from flwr.common import Context
from flwr.server import ServerAppComponents, ServerConfig
from flwr.serverapp import ServerApp

from coopml._validation import check_int
from coopml.federated.flower.client import make_client_fn
from coopml.federated.flower.strategy import CoopetitiveFedAvg
from coopml.federated.simulation import Setup

__all__ = ["make_apps"]


def make_apps(
    setup: Setup,
    strategy: str = "mechanism",
    *,
    rounds: int | None = None,
    beta: str = "shapley",
    contribution_accounting: bool = True,
) -> tuple[ServerApp, ClientApp, CoopetitiveFedAvg]:
    """Flower ``ServerApp`` and ``ClientApp`` for a prepared set-up, and the strategy.

    The ``ClientApp`` maps Flower's ``node_config["partition-id"]`` to the set-up's
    organisation of that index. Keep the returned strategy to read its
    :attr:`~CoopetitiveFedAvg.rounds` after the run. For a deployment (``flwr run``)
    expose the two apps from a module that builds the same set-up on every node (the
    split and the generators are deterministic given the job's seed).

    Parameters
    ----------
    setup : Setup
        From :func:`coopml.federated.simulation.prepare` (with generators).
    strategy, rounds, beta, contribution_accounting
        As in :func:`run_flower_simulation`.
    """
    R = check_int("rounds", setup.config.rounds if rounds is None else rounds, minimum=1)
    if setup.pool is None:
        raise ValueError("the set-up has no generator pool; prepare it with train=True")
    data = setup.data
    strat = CoopetitiveFedAvg.from_setup(
        setup,
        strategy,
        beta=beta,
        contribution_accounting=contribution_accounting,
        fraction_evaluate=0.0,
        min_evaluate_clients=0,
    )
    client_fn = make_client_fn(
        data.clients,
        setup.model(),
        n_classes=data.n_classes,
        generator=setup.pool,
        reference=data.reference,
        random_state=setup.config.random_state,
    )

    def server_fn(context: Context) -> ServerAppComponents:
        return ServerAppComponents(strategy=strat, config=ServerConfig(num_rounds=R))

    return ServerApp(server_fn=server_fn), ClientApp(client_fn=client_fn), strat
