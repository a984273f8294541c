r"""Flower server strategy: :class:`CoopetitiveFedAvg`, a ``FedAvg`` run by the round engine.

Every round the strategy

1. asks each connected client once for its statistics (partition id, real sample count
   :math:`n_i`, label histogram :math:`\to` skew :math:`h_i^0`; no raw data);
2. lets the shared round engine (:class:`~coopml.federated.rounds.RoundEngine`) sample
   the organisations, solve the round game, decide the synthetic amounts by the strategy
   and apply the participation rule, exactly as the built-in simulator does;
3. sends each member its synthetic amount and its training and generation streams in
   the fit configuration (keys ``"synthetic"``, ``"train_stream"``,
   ``"generation_stream"``);
4. aggregates the updates weighted by real + synthetic samples;
5. does the contribution accounting (:mod:`coopml.federated.accounting`: exact
   per-round Shapley values of the reconstructed coalition models) and lets the engine
   book the round (:attr:`CoopetitiveFedAvg.rounds`, :meth:`CoopetitiveFedAvg.history`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.common import (
    FitIns,
    FitRes,
    GetPropertiesIns,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import FedAvg
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml._validation import RandomState, check_int, check_seed
from coopml.federated.accounting import (
    MAX_ACCOUNTING_PLAYERS,
    coalition_values,
    shapley_values,
)
from coopml.federated.fedavg import FederatedModel, Params, accuracy, aggregate
from coopml.federated.flower.client import encode_stream
from coopml.federated.game import AccuracyModel, GameSolution, Redistribution, SkewMap
from coopml.federated.rounds import (
    Ledger,
    OutsideOption,
    RoundEngine,
    RoundPlan,
    RoundRecord,
    StrategyResult,
)
from coopml.federated.simulation import Setup
from coopml.federated.synthetic import skew

__all__ = ["MAX_ACCOUNTING_PLAYERS", "CoopetitiveFedAvg", "FlowerRound"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class FlowerRound:
    """What one round of :class:`CoopetitiveFedAvg` decided, measured and booked.

    Arrays are indexed like ``organisations`` (the members' partition ids, sorted).

    Attributes
    ----------
    round : int
        Flower's server round (1-based).
    organisations : tuple of int
        Partition ids of the members (sampled and taking part).
    left : tuple of int
        Sampled organisations that left for their outside option.
    n, h0 : ndarray of shape (m,)
        Reported real sample counts and skews.
    synthetic : ndarray of shape (m,)
        Synthetic amounts decided by the strategy (the game's continuous profile).
    synthetic_sent : ndarray of shape (m,)
        What the clients generated: ``synthetic`` rounded to integers (half up).
    equilibrium, optimum : GameSolution or None
        The round game's Nash equilibrium and social optimum (None when everyone left).
    redistribution : Redistribution or None
        Transfers that implement the optimum, with ``beta`` by the strategy's rule.
    transfers : ndarray of shape (m,)
        Transfers booked (the redistribution's under ``"mechanism"``, zero otherwise).
    utilities : ndarray of shape (m,)
        Model utilities :math:`u_i(s)` at the amounts decided plus booked transfers.
    utilities_equilibrium : ndarray of shape (m,) or None
        :math:`u_i(s^{NE})`, the individual-rationality benchmark (both less the
        competition from organisations that left, when some did).
    coalition_values : ndarray of shape (2**m,) or None
        Validation accuracy of each reconstructed coalition model (bitmask order).
    shapley : ndarray of shape (m,) or None
        Per-round Shapley values of that game.
    accuracy : float
        Validation accuracy of the aggregated model.
    """

    round: int
    organisations: tuple[int, ...]
    left: tuple[int, ...] = ()
    n: FloatArray
    h0: FloatArray
    synthetic: FloatArray
    synthetic_sent: FloatArray
    equilibrium: GameSolution | None
    optimum: GameSolution | None
    redistribution: Redistribution | None
    transfers: FloatArray
    utilities: FloatArray
    utilities_equilibrium: FloatArray | None = None
    coalition_values: FloatArray | None
    shapley: FloatArray | None
    accuracy: float

    @property
    def social_welfare(self) -> float:
        """Sum of booked utilities of the members (transfers cancel out)."""
        return float(self.utilities.sum())

    @property
    def individually_rational(self) -> bool:
        """Every member at or above its equilibrium utility (tolerance 1e-9)."""
        if self.utilities_equilibrium is not None:
            return bool(np.all(self.utilities >= self.utilities_equilibrium - 1e-9))
        if self.redistribution is None:
            return True
        return bool(np.all(self.utilities >= self.redistribution.utilities_equilibrium - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(
            {
                "round": self.round,
                "organisations": list(self.organisations),
                "left": list(self.left),
                "n": self.n,
                "h0": self.h0,
                "synthetic": self.synthetic,
                "synthetic_sent": self.synthetic_sent,
                "equilibrium": None if self.equilibrium is None else self.equilibrium.to_dict(),
                "optimum": None if self.optimum is None else self.optimum.to_dict(),
                "redistribution": None
                if self.redistribution is None
                else self.redistribution.to_dict(),
                "transfers": self.transfers,
                "transfers_sum": float(self.transfers.sum()),
                "utilities": self.utilities,
                "social_welfare": self.social_welfare,
                "individually_rational": self.individually_rational,
                "coalition_values": self.coalition_values,
                "shapley": self.shapley,
                "accuracy": self.accuracy,
            }
        )


@dataclass
class _Stats:
    partition_id: int
    n_samples: int
    histogram: FloatArray = field(repr=False)


class CoopetitiveFedAvg(FedAvg):
    """Flower ``FedAvg`` that plays the coopetitive synthetic-data game every round.

    Parameters
    ----------
    model : FederatedModel
        Used on the server to initialise parameters (when ``initial_parameters`` is not
        given) and to score reconstructed coalition models (``predict``).
    validation : (X_val, y_val)
        Held-out data for the accuracy and the contribution accounting.
    n_classes : int
    theta, gamma, c : float or array-like of shape (n_organisations,)
        Market valuation, competition intensity, cost per synthetic sample; arrays are
        indexed by partition id.
    kappa, mu : float
        Synthetic quality and accuracy lost per unit of skew.
    s_max : float or array-like
        Upper bound on synthetic samples per organisation.
    curve : AccuracyModel
        :math:`P(E)`, e.g. :class:`~coopml.federated.game.AccuracyCurve`.
    strategy : str, default "mechanism"
        One of :data:`~coopml.federated.config.STRATEGIES`
        (:func:`coopml.federated.rounds.play`).
    beta : {"shapley", "contribution", "equal"}, default "shapley"
        Shares of the welfare gain in the redistribution: the round's Shapley shares
        from the contribution accounting, the effective-data shares, or equal shares.
    client_fraction : float in (0, 1], default 1.0
        Share of the organisations sampled each round.
    reference : array-like of shape (n_classes,), optional
        Reference label distribution ``u`` for the skew (default uniform).
    skew_map : SkewMap, optional
        Default :class:`~coopml.federated.game.MixingSkew`.
    contribution_accounting : bool, default True
        Reconstruct every coalition's model and compute per-round Shapley values (needed
        for ``beta="shapley"``; at most ``MAX_ACCOUNTING_PLAYERS`` participants).
    outside_option : "none", "standalone", float or array-like, default "none"
        The participation rule (:class:`~coopml.federated.rounds.RoundEngine`).
    random_state : int, numpy.random.Generator or None
        Split into the simulator's five streams
        (:func:`~coopml.federated.rounds.spawn_streams`).
    **fedavg_options
        Passed to ``flwr.server.strategy.FedAvg`` (``min_available_clients``,
        ``fraction_evaluate``, ``on_fit_config_fn``, ``evaluate_fn``, ...).

    Attributes
    ----------
    rounds : list of FlowerRound
        One record per completed round.
    records : list of RoundRecord
        The engine's books of the same rounds (:meth:`strategy_result`).
    parameters : list of ndarray or None
        The latest global parameters.
    """

    def __init__(
        self,
        *,
        model: FederatedModel,
        validation: tuple[ArrayLike, ArrayLike],
        n_classes: int,
        theta: ArrayLike,
        gamma: ArrayLike,
        c: ArrayLike,
        kappa: float,
        mu: float,
        s_max: ArrayLike,
        curve: AccuracyModel,
        strategy: str = "mechanism",
        beta: str = "shapley",
        client_fraction: float = 1.0,
        reference: ArrayLike | None = None,
        skew_map: SkewMap | None = None,
        contribution_accounting: bool = True,
        outside_option: OutsideOption = "none",
        random_state: RandomState = None,
        **fedavg_options: Any,
    ) -> None:
        self.engine = RoundEngine(
            strategy,
            theta=theta,
            gamma=gamma,
            c=c,
            s_max=s_max,
            kappa=kappa,
            mu=mu,
            curve=curve,
            skew_map=skew_map,
            client_fraction=client_fraction,
            beta=beta,
            outside_option=outside_option,
            random_state=check_seed(random_state),
        )
        self.strategy = self.engine.strategy
        self.beta = self.engine.beta
        self.contribution_accounting = bool(contribution_accounting)
        if self.beta == "shapley" and not self.contribution_accounting:
            raise ValueError(
                "parameter 'beta' can be 'shapley' only with contribution_accounting=True"
            )
        self.model = model
        self.X_val = np.asarray(validation[0], dtype=np.float64)
        self.y_val = np.asarray(validation[1], dtype=np.int64)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.reference = (
            np.full(self.n_classes, 1.0 / self.n_classes)
            if reference is None
            else np.asarray(reference, dtype=np.float64)
        )
        if fedavg_options.get("initial_parameters") is None:
            fedavg_options["initial_parameters"] = ndarrays_to_parameters(
                model.init(self.engine.streams.init)
            )
        self._base_fit_config = fedavg_options.pop("on_fit_config_fn", None)
        fedavg_options.setdefault("min_fit_clients", 1)
        fedavg_options.setdefault("min_available_clients", 2)
        super().__init__(**fedavg_options)
        self.rounds: list[FlowerRound] = []
        self.records: list[RoundRecord] = []
        self.parameters: Params | None = None
        self._stats: dict[str, _Stats] = {}
        self._pending: dict[int, tuple[RoundPlan, Params]] = {}

    @classmethod
    def from_setup(
        cls,
        setup: Setup,
        strategy: str = "mechanism",
        *,
        beta: str = "shapley",
        contribution_accounting: bool = True,
        **fedavg_options: Any,
    ) -> CoopetitiveFedAvg:
        """The strategy for a set-up of :func:`coopml.federated.simulation.prepare`.

        Uses the set-up's model, validation data, game parameters, κ, accuracy curve,
        reference distribution, client fraction, participation rule and seed.
        """
        cfg = setup.config
        fedavg_options.setdefault("min_available_clients", len(setup.data.clients))
        return cls(
            model=setup.model(),
            validation=(setup.data.X_val, setup.data.y_val),
            n_classes=setup.data.n_classes,
            theta=setup.theta,
            gamma=setup.gamma,
            c=setup.c,
            kappa=setup.kappa,
            mu=cfg.game.mu,
            s_max=setup.s_max,
            curve=setup.curve,
            strategy=strategy,
            beta=beta,
            client_fraction=cfg.training.client_fraction,
            reference=setup.data.reference,
            contribution_accounting=contribution_accounting,
            outside_option=setup.engine(strategy, beta=beta).outside_option,
            random_state=cfg.random_state,
            **fedavg_options,
        )

    def __repr__(self) -> str:
        return (
            f"CoopetitiveFedAvg(strategy={self.strategy!r}, beta={self.beta!r}, "
            f"kappa={self.engine.kappa}, mu={self.engine.mu})"
        )

    # -- statistics ---------------------------------------------------------------------
    def _fetch_stats(self, clients: Sequence[ClientProxy], server_round: int) -> list[_Stats]:
        missing = [cp for cp in clients if cp.cid not in self._stats]

        def ask(cp: ClientProxy) -> _Stats:
            res = cp.get_properties(GetPropertiesIns({}), timeout=None, group_id=server_round)
            props = res.properties
            return _Stats(
                partition_id=int(props["partition_id"]),
                n_samples=int(props["n_samples"]),
                histogram=np.asarray(json.loads(str(props["label_histogram"])), dtype=float),
            )

        if missing:
            with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
                for cp, st in zip(missing, pool.map(ask, missing), strict=True):
                    self._stats[cp.cid] = st
        return [self._stats[cp.cid] for cp in clients]

    # -- Flower hooks -------------------------------------------------------------------
    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Let the round engine plan the round; send each member its amount and streams.

        Organisations are ordered by partition id before the engine samples them.
        """
        client_manager.wait_for(max(self.min_available_clients, 1), timeout=86400)
        available = list(client_manager.all().values())
        if not available:
            return []
        stats = self._fetch_stats(available, server_round)
        order = np.argsort([st.partition_id for st in stats], kind="stable")
        proxies = {stats[k].partition_id: available[k] for k in order}
        ids = [stats[k].partition_id for k in order]
        n = [stats[k].n_samples for k in order]
        h0 = [
            skew(stats[k].histogram / max(float(stats[k].histogram.sum()), 1.0), self.reference)
            for k in order
        ]
        plan = self.engine.plan(server_round - 1, ids, n, h0)
        incoming = parameters_to_ndarrays(parameters)
        if plan.members.size == 0:  # everyone left: the model stays as it is
            self._book(server_round, plan, self._accuracy(incoming), None, None)
            return []
        self._pending[server_round] = (plan, incoming)
        config: dict[str, Scalar] = {}
        if self._base_fit_config is not None:
            config.update(self._base_fit_config(server_round))
        config["server_round"] = server_round
        return [
            (
                proxies[int(i)],
                FitIns(
                    parameters,
                    {
                        **config,
                        "synthetic": int(s_i),
                        "train_stream": encode_stream(tr),
                        "generation_stream": encode_stream(gr),
                    },
                ),
            )
            for i, s_i, tr, gr in zip(
                plan.members,
                plan.synthetic_sent,
                plan.train_streams,
                plan.generation_streams,
                strict=True,
            )
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Aggregate by real + synthetic samples, account contributions, book the round."""
        pending = self._pending.pop(server_round, None)
        if not results or pending is None or (failures and not self.accept_failures):
            return None, {}
        plan, incoming = pending
        by_id = {int(res.metrics["partition_id"]): res for _, res in results}
        ids = [int(i) for i in plan.members if int(i) in by_id]
        updates = [parameters_to_ndarrays(by_id[i].parameters) for i in ids]
        sizes = np.array([by_id[i].num_examples for i in ids], dtype=np.float64)
        new = aggregate(updates, sizes)
        acc = self._accuracy(new)
        table: FloatArray | None = None
        phi: FloatArray | None = None
        if self.contribution_accounting and len(ids) <= MAX_ACCOUNTING_PLAYERS:
            table = coalition_values(self.model, incoming, updates, sizes, self.X_val, self.y_val)
            phi_sub = shapley_values(table, ids)
            pos = {int(i): k for k, i in enumerate(plan.members)}
            phi = np.zeros(plan.members.size)
            for k, i in enumerate(ids):
                phi[pos[i]] = phi_sub[k]
        if self.beta == "shapley" and phi is None:
            raise RuntimeError(
                f"round {server_round}: {len(ids)} participants exceed "
                f"MAX_ACCOUNTING_PLAYERS={MAX_ACCOUNTING_PLAYERS} for exact Shapley shares"
            )
        record = self._book(server_round, plan, acc, table, phi)
        self.parameters = new
        metrics: dict[str, Scalar] = {
            "accuracy": acc,
            "social_welfare": float(record.utilities_after.sum()),
            "synthetic": float(plan.synthetic_sent.sum()),
            "transfers_sum": float(record.transfers.sum()),
        }
        return ndarrays_to_parameters(new), metrics

    def _book(
        self,
        server_round: int,
        plan: RoundPlan,
        acc: float,
        table: FloatArray | None,
        phi: FloatArray | None,
    ) -> RoundRecord:
        record = self.engine.book(plan, acc, shapley=phi)
        game = plan.game
        self.records.append(record)
        self.rounds.append(
            FlowerRound(
                round=server_round,
                organisations=tuple(int(i) for i in plan.members),
                left=tuple(int(i) for i in np.setdiff1d(plan.sampled, plan.members)),
                n=np.zeros(0) if game is None else np.asarray(game.n, dtype=np.float64),
                h0=np.zeros(0) if game is None else np.asarray(game.h0, dtype=np.float64),
                synthetic=plan.synthetic,
                synthetic_sent=plan.synthetic_sent,
                equilibrium=plan.equilibrium,
                optimum=plan.optimum,
                redistribution=record.redistribution,
                transfers=record.transfers,
                utilities=record.utilities_after,
                utilities_equilibrium=record.utilities_equilibrium,
                coalition_values=table,
                shapley=phi,
                accuracy=acc,
            )
        )
        return record

    def _accuracy(self, params: Params) -> float:
        return accuracy(self.model, params, self.X_val, self.y_val)

    def strategy_result(self, n_organisations: int) -> StrategyResult:
        """The booked rounds as the simulator's :class:`~coopml.federated.rounds.StrategyResult`."""
        ledger = Ledger(self.strategy, len(self.records), n_organisations)
        for record in self.records:
            ledger.add(record)
        return ledger.result()

    def history(self) -> dict[str, Any]:
        """JSON-ready per-round history."""
        return to_jsonable(
            {
                "strategy": self.strategy,
                "beta": self.beta,
                "rounds": [r.to_dict() for r in self.rounds],
            }
        )
