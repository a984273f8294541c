"""Run :class:`CoopetitiveFedAvg` with Flower's simulation engine (Ray backend), telemetry off.

The engine plans and books every round as in the built-in simulator, so for the same
seed a Flower run samples the same organisations, decides the same amounts, draws the
same synthetic samples (each participant's own stream) and trains the same models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._serialization import to_jsonable
from coopml._validation import check_int
from coopml.federated.config import FLConfig
from coopml.federated.fedavg import Params
from coopml.federated.flower.app import make_apps
from coopml.federated.flower.strategy import FlowerRound
from coopml.federated.rounds import StrategyResult
from coopml.federated.simulation import Setup, prepare

__all__ = ["FlowerRunResult", "run_flower_simulation"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class FlowerRunResult:
    """Outcome of :func:`run_flower_simulation`.

    Attributes
    ----------
    rounds : list of FlowerRound
    params : list of ndarray
        Final global parameters.
    strategy : str
    converged : bool
        Whether every round ran and every game solver converged.
    n_iter : int
        Rounds completed.
    result : StrategyResult or None
        The same rounds booked by the round engine in the simulator's form (arrays of
        shape (rounds, organisations)).
    """

    rounds: list[FlowerRound]
    params: Params
    strategy: str
    converged: bool
    n_iter: int
    result: StrategyResult | None = None

    @property
    def accuracy_per_round(self) -> FloatArray:
        """Validation accuracy after each round."""
        return np.array([r.accuracy for r in self.rounds])

    @property
    def final_accuracy(self) -> float:
        """Accuracy after the last round."""
        return float(self.rounds[-1].accuracy) if self.rounds else float("nan")

    @property
    def synthetic_per_round(self) -> FloatArray:
        """Total synthetic samples decided per round (as the simulator reports them)."""
        return np.array([float(r.synthetic.sum()) for r in self.rounds])

    @property
    def synthetic_sent_per_round(self) -> FloatArray:
        """Total synthetic samples the clients generated per round (rounded amounts)."""
        return np.array([float(r.synthetic_sent.sum()) for r in self.rounds])

    @property
    def social_welfare(self) -> float:
        """Sum over rounds of the booked utilities."""
        return float(sum(r.social_welfare for r in self.rounds))

    @property
    def transfers_sum(self) -> float:
        """Largest absolute per-round sum of booked transfers."""
        return max((abs(float(r.transfers.sum())) for r in self.rounds), default=0.0)

    @property
    def individually_rational(self) -> bool:
        """Every round, every organisation at or above its equilibrium utility."""
        return all(r.individually_rational for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary plus the per-round history."""
        return to_jsonable(
            {
                "strategy": self.strategy,
                "final_accuracy": self.final_accuracy,
                "accuracy_per_round": self.accuracy_per_round,
                "synthetic_per_round": self.synthetic_per_round,
                "synthetic_sent_per_round": self.synthetic_sent_per_round,
                "social_welfare": self.social_welfare,
                "transfers_sum": self.transfers_sum,
                "individually_rational": self.individually_rational,
                "converged": self.converged,
                "n_iter": self.n_iter,
                "participation_per_round": None
                if self.result is None
                else self.result.participation_per_round,
                "rounds": [r.to_dict() for r in self.rounds],
            }
        )


def run_flower_simulation(
    config_or_setup: FLConfig | Setup,
    strategy: str = "mechanism",
    *,
    rounds: int | None = None,
    beta: str = "shapley",
    contribution_accounting: bool = True,
    num_cpus: int = 2,
    client_num_cpus: float = 1.0,
    verbose: bool = False,
) -> FlowerRunResult:
    """Run :class:`CoopetitiveFedAvg` with Flower's simulation engine (Ray backend).

    Parameters
    ----------
    config_or_setup : FLConfig or Setup
        A job (prepared here with :func:`coopml.federated.simulation.prepare`: split,
        generators, κ, accuracy curve) or an already prepared set-up.
    strategy : str, default "mechanism"
        One of :data:`STRATEGIES`.
    rounds : int, optional
        Override ``config.rounds``.
    beta : {"shapley", "contribution", "equal"}, default "shapley"
        Welfare-gain shares of the redistribution.
    contribution_accounting : bool, default True
    num_cpus : int, default 2
        CPUs given to Ray when this call starts it (no dashboard).
    client_num_cpus : float, default 1.0
        CPUs each virtual client reserves (sets how many run at once).
    verbose : bool, default False
        Show Flower's log (otherwise errors only) and the Ray workers' output.

    Returns
    -------
    FlowerRunResult

    Telemetry is switched off (``FLWR_TELEMETRY_ENABLED=0``, ``RAY_USAGE_STATS_ENABLED=0``)
    unless the environment already sets these variables. Ray is shut down afterwards if
    this call started it.
    """
    for var in ("FLWR_TELEMETRY_ENABLED", "RAY_USAGE_STATS_ENABLED"):
        os.environ.setdefault(var, "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    import logging

    import ray
    from flwr.simulation import run_simulation

    setup = config_or_setup if isinstance(config_or_setup, Setup) else prepare(config_or_setup)
    R = check_int("rounds", setup.config.rounds if rounds is None else rounds, minimum=1)
    server_app, client_app, strat = make_apps(
        setup, strategy, rounds=R, beta=beta, contribution_accounting=contribution_accounting
    )
    n_orgs = len(setup.data.clients)

    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:  # hides Flower's INFO log and its run_simulation deprecation notice
        flwr_logger.setLevel(logging.ERROR)
    started = not ray.is_initialized()
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_app,
            num_supernodes=n_orgs,
            backend_config={
                "init_args": {
                    "num_cpus": int(num_cpus),
                    "include_dashboard": False,
                    "log_to_driver": bool(verbose),
                },
                "client_resources": {"num_cpus": float(client_num_cpus), "num_gpus": 0.0},
            },
            verbose_logging=verbose,
        )
    finally:
        flwr_logger.setLevel(level)
        if started and ray.is_initialized():
            ray.shutdown()
    if len(strat.rounds) != R:
        raise RuntimeError(f"the Flower run completed {len(strat.rounds)} of {R} rounds")
    converged = all(
        sol.converged for r in strat.rounds for sol in (r.equilibrium, r.optimum) if sol is not None
    )
    return FlowerRunResult(
        rounds=list(strat.rounds),
        params=strat.parameters if strat.parameters is not None else [],
        strategy=strat.strategy,
        converged=converged,
        n_iter=len(strat.rounds),
        result=strat.strategy_result(n_orgs),
    )
