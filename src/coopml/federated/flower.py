r"""Flower adapter: the coopetitive round game inside a Flower deployment (extra ``flower``).

Reconstruction of CoCoGen+ (*Cooperate to Compete*, arXiv 2604.14886, 2026; the paper's
full text was not available, see :mod:`coopml.federated.game`) run by a Flower
(https://flower.ai, ``flwr`` >= 1.20) server strategy. Every round
:class:`CoopetitiveFedAvg`, a subclass of Flower's ``FedAvg``:

1. reads the statistics the organisations report through Flower's ``get_properties``
   (asked once per connected client: real sample count :math:`n_i`, label histogram
   :math:`\to` skew :math:`h_i^0 = \tfrac12\lVert p_i - u\rVert_1`; no raw data)
   and samples the round's participants;
2. solves the round game (:class:`~coopml.federated.game.RoundGame`): Nash equilibrium,
   social optimum, and decides each organisation's synthetic amount :math:`s_i` by the
   chosen strategy (``"mechanism"``: the optimum, which the redistribution turns into
   the equilibrium; ``"equilibrium"``, ``"no_generation"``, ``"competition_oblivious"``,
   ``"random"``: the baselines);
3. sends :math:`s_i` in each client's fit config (key ``"synthetic"``); the client
   (:class:`FlowerClient`) draws that many synthetic samples with labels from the
   reference distribution, trains locally on real + synthetic data with the model's
   own ``local_train`` (:mod:`coopml.federated.fedavg`) and returns its parameters;
4. aggregates the updates weighted by real + synthetic samples;
5. does **contribution accounting**: the model of every coalition :math:`S` of the
   round's participants is *reconstructed* as the weighted average of the members'
   updates (:math:`S=\emptyset` is the incoming global model), scored on a held-out
   validation set, and the exact per-round Shapley value of that game
   (:func:`coopml.coalitions.shapley`) gives the shares :math:`\beta_i` (negative values
   clipped to zero, then normalised) of the welfare gain in the redistribution
   (:func:`~coopml.federated.game.redistribution`);
6. books per-round transfers and utilities (:attr:`CoopetitiveFedAvg.rounds`,
   :meth:`CoopetitiveFedAvg.history`).

Reconstructing coalition models from the clients' updates (instead of retraining every
coalition) follows the per-round gradient-reconstruction idea of Song, Tong & Wei
(*Profit allocation for federated learning*, IEEE Big Data 2019); it costs
:math:`2^N` evaluations of the validation score per round and no extra training.

:func:`run_flower_simulation` runs the whole thing with Flower's simulation engine
(Ray backend) in this process, with telemetry off. Randomness follows the built-in
simulator (:func:`coopml.federated.simulation.run_strategy`): the same five streams from
``SeedSequence(random_state)`` for the initial model, client sampling, local training,
generation and the random strategy. The server spawns each participant's training and
generation streams and sends them in the fit config, so the Flower run samples the same
organisations, solves the same games and decides the same synthetic amounts, and with
a deterministic model (the NumPy logistic one) reproduces the simulator's parameters and
accuracies exactly when no synthetic data is drawn. The simulator draws all
participants' synthetic samples from one sequential stream, which clients running
apart cannot share; the adapter gives each participant its own spawned stream, so with
generation the accuracies agree with a simulator fed the same per-participant streams
(tested) rather than bit for bit with its default stream.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml._validation import RandomState, check_choice, check_fraction, check_int, check_seed
from coopml.coalitions import CoalitionGame, shapley
from coopml.federated.config import STRATEGIES, FLConfig
from coopml.federated.fedavg import FederatedModel, Params, aggregate, sample_clients
from coopml.federated.game import (
    AccuracyModel,
    GameSolution,
    MixingSkew,
    Redistribution,
    RoundGame,
    SkewMap,
    nash_equilibrium,
    redistribution,
    social_optimum,
    utilities,
)
from coopml.federated.simulation import Setup, decide, prepare
from coopml.federated.synthetic import skew

try:
    from flwr.client import Client, NumPyClient
    from flwr.clientapp import ClientApp
    from flwr.common import (
        Context,
        FitIns,
        FitRes,
        GetPropertiesIns,
        Parameters,
        Scalar,
        ndarrays_to_parameters,
        parameters_to_ndarrays,
    )
    from flwr.server import ServerAppComponents, ServerConfig
    from flwr.server.client_manager import ClientManager
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import FedAvg
    from flwr.serverapp import ServerApp
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("coopml.federated.flower needs Flower: pip install 'coopml[flower]'") from exc

__all__ = [
    "STRATEGIES",
    "CoopetitiveFedAvg",
    "FlowerClient",
    "FlowerRound",
    "FlowerRunResult",
    "make_apps",
    "make_client_fn",
    "run_flower_simulation",
]

#: Most participants per round for exact per-round Shapley (2**N coalition models).
MAX_ACCOUNTING_PLAYERS = 14

FloatArray = NDArray[np.float64]


# ---------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FlowerRound:
    """What one round of :class:`CoopetitiveFedAvg` decided, measured and booked.

    Arrays are indexed like ``organisations`` (the participants' partition ids, sorted).

    Attributes
    ----------
    round : int
        Flower's server round (1-based).
    organisations : tuple of int
        Partition ids of the participants.
    n, h0 : ndarray of shape (m,)
        Reported real sample counts and skews.
    synthetic : ndarray of shape (m,)
        Synthetic amounts decided by the strategy (the game's continuous profile).
    synthetic_sent : ndarray of shape (m,)
        What the clients generated: ``synthetic`` rounded to integers (half up).
    equilibrium, optimum : GameSolution
        The round game's Nash equilibrium and social optimum.
    redistribution : Redistribution
        Transfers that implement the optimum, with ``beta`` from the Shapley shares.
    transfers : ndarray of shape (m,)
        Transfers booked (the redistribution's under ``"mechanism"``, zero otherwise).
    utilities : ndarray of shape (m,)
        Model utilities :math:`u_i(s)` at the amounts decided plus booked transfers.
    coalition_values : ndarray of shape (2**m,) or None
        Validation accuracy of each reconstructed coalition model (bitmask order).
    shapley : ndarray of shape (m,) or None
        Per-round Shapley values of that game.
    accuracy : float
        Validation accuracy of the aggregated model.
    """

    round: int
    organisations: tuple[int, ...]
    n: FloatArray
    h0: FloatArray
    synthetic: FloatArray
    synthetic_sent: FloatArray
    equilibrium: GameSolution
    optimum: GameSolution
    redistribution: Redistribution
    transfers: FloatArray
    utilities: FloatArray
    coalition_values: FloatArray | None
    shapley: FloatArray | None
    accuracy: float

    @property
    def social_welfare(self) -> float:
        """Sum of booked utilities (transfers cancel out)."""
        return float(self.utilities.sum())

    @property
    def individually_rational(self) -> bool:
        """Everyone at or above its equilibrium utility (tolerance 1e-9)."""
        return bool(np.all(self.utilities >= self.redistribution.utilities_equilibrium - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(
            {
                "round": self.round,
                "organisations": list(self.organisations),
                "n": self.n,
                "h0": self.h0,
                "synthetic": self.synthetic,
                "synthetic_sent": self.synthetic_sent,
                "equilibrium": self.equilibrium.to_dict(),
                "optimum": self.optimum.to_dict(),
                "redistribution": self.redistribution.to_dict(),
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
    """

    rounds: list[FlowerRound]
    params: Params
    strategy: str
    converged: bool
    n_iter: int

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
                "rounds": [r.to_dict() for r in self.rounds],
            }
        )


# ---------------------------------------------------------------------------------------
# Helpers shared by server and client
# ---------------------------------------------------------------------------------------


def _per_org(name: str, value: ArrayLike, n_orgs: int | None) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1) if n_orgs is None else np.full(n_orgs, float(arr))
    if arr.ndim != 1 or (n_orgs is not None and arr.size != n_orgs):
        raise ValueError(
            f"parameter '{name}' must be a scalar or have one entry per organisation "
            f"({n_orgs}); got shape {arr.shape}"
        )
    return arr


def _pick(arr: FloatArray, ids: Sequence[int]) -> FloatArray:
    if arr.size == 1:  # a scalar applies to every organisation
        return np.full(len(ids), float(arr[0]))
    return arr[list(ids)]


def _round_rng(seed: int, server_round: int, partition_id: int) -> np.random.Generator:
    """Fallback stream of ``partition_id`` in ``server_round`` when the server sends none."""
    return np.random.default_rng([seed, server_round, partition_id])


def _encode_stream(rng: np.random.Generator) -> str:
    """A spawned generator as a config string: its seed sequence's entropy and spawn key."""
    seq = rng.bit_generator.seed_seq
    assert isinstance(seq, np.random.SeedSequence)
    return json.dumps({"entropy": seq.entropy, "spawn_key": list(seq.spawn_key)})


def _decode_stream(text: str) -> np.random.Generator:
    """Rebuild the generator encoded by :func:`_encode_stream` (the identical stream)."""
    spec = json.loads(text)
    seq = np.random.SeedSequence(spec["entropy"], spawn_key=tuple(spec["spawn_key"]))
    return np.random.Generator(np.random.PCG64(seq))


# ---------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------


class FlowerClient(NumPyClient):
    """One organisation: its real data, a synthetic-data generator and local training.

    Parameters
    ----------
    partition_id : int
        The organisation's index (Flower's ``node_config["partition-id"]``).
    X, y : ndarray
        Real training data.
    model : FederatedModel
        Provides ``local_train`` (e.g. :class:`~coopml.federated.fedavg.LogisticModel`).
    n_classes : int
    generator : object with ``generate(m, reference, rng) -> (X, y)``, optional
        E.g. a :class:`~coopml.federated.synthetic.GeneratorPool`. Without one the
        client refuses a positive synthetic amount.
    reference : array-like of shape (n_classes,), optional
        Label distribution of synthetic samples (default uniform).
    random_state : int, default 0
        Used only when the server sends no random streams: round ``t`` then draws from
        ``default_rng([seed, t, partition_id])``. :class:`CoopetitiveFedAvg` sends each
        client its minibatch and generation streams (``"train_stream"``,
        ``"generation_stream"`` in the fit config), spawned like the built-in simulator's.

    Examples
    --------
    >>> from coopml.federated.fedavg import LogisticModel
    >>> X, y = np.array([[0.0], [1.0], [2.0]]), np.array([0, 1, 1])
    >>> model = LogisticModel(1, 2)
    >>> client = FlowerClient(4, X, y, model, n_classes=2)
    >>> client.get_properties({})
    {'partition_id': 4, 'n_samples': 3, 'label_histogram': '[1, 2]'}
    >>> params, n, metrics = client.fit(model.init(None), {"synthetic": 0, "server_round": 1})
    >>> n, metrics
    (3, {'partition_id': 4, 'n_real': 3, 'n_synthetic': 0})
    """

    def __init__(
        self,
        partition_id: int,
        X: ArrayLike,
        y: ArrayLike,
        model: FederatedModel,
        *,
        n_classes: int,
        generator: Any = None,
        reference: ArrayLike | None = None,
        random_state: int = 0,
    ) -> None:
        self.partition_id = int(partition_id)
        self.X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.int64)
        self.model = model
        self.n_classes = int(n_classes)
        self.generator = generator
        self.reference = (
            np.full(self.n_classes, 1.0 / self.n_classes)
            if reference is None
            else np.asarray(reference, dtype=np.float64)
        )
        self.seed = int(random_state)

    def get_properties(self, config: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """Report the statistics the server's game needs (no raw data)."""
        hist = np.bincount(self.y, minlength=self.n_classes)
        return {
            "partition_id": self.partition_id,
            "n_samples": int(self.y.size),
            "label_histogram": json.dumps(hist.tolist()),
        }

    def get_parameters(self, config: Mapping[str, Scalar]) -> Params:
        """Initial parameters from the model (seeded)."""
        return self.model.init(np.random.default_rng(self.seed))

    def fit(
        self, parameters: Params, config: Mapping[str, Scalar]
    ) -> tuple[Params, int, dict[str, Scalar]]:
        """Generate ``config["synthetic"]`` samples, train locally on real + synthetic."""
        m = int(config.get("synthetic", 0))
        server_round = int(config.get("server_round", 0))
        if "train_stream" in config:
            train_rng = _decode_stream(str(config["train_stream"]))
            gen_rng = _decode_stream(str(config["generation_stream"]))
        else:
            train_rng = gen_rng = _round_rng(self.seed, server_round, self.partition_id)
        X, y = self.X, self.y
        if m > 0:
            if self.generator is None:
                raise ValueError(
                    f"organisation {self.partition_id} was asked for {m} synthetic samples "
                    "but has no generator"
                )
            Xs, ys = self.generator.generate(m, self.reference, gen_rng)
            X = np.vstack([X, Xs])
            y = np.concatenate([y, ys])
        params = [np.asarray(p, dtype=np.float64) for p in parameters]
        new = self.model.local_train(params, X, y, train_rng)
        metrics: dict[str, Scalar] = {
            "partition_id": self.partition_id,
            "n_real": int(self.y.size),
            "n_synthetic": m,
        }
        return new, int(y.size), metrics

    def evaluate(
        self, parameters: Params, config: Mapping[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        """Accuracy of ``parameters`` on the organisation's own data (loss = 1 − accuracy)."""
        params = [np.asarray(p, dtype=np.float64) for p in parameters]
        acc = float(np.mean(self.model.predict(params, self.X) == self.y))
        return 1.0 - acc, int(self.y.size), {"accuracy": acc}


def make_client_fn(
    clients: Sequence[tuple[ArrayLike, ArrayLike]],
    model: FederatedModel,
    *,
    n_classes: int,
    generator: Any = None,
    reference: ArrayLike | None = None,
    random_state: int = 0,
) -> Callable[[Context], Client]:
    """A Flower ``client_fn``: node ``partition-id`` becomes ``FlowerClient(clients[id])``."""
    data = [(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)) for X, y in clients]
    ref = None if reference is None else np.asarray(reference, dtype=np.float64)

    def client_fn(context: Context) -> Client:
        pid = int(context.node_config["partition-id"])
        X, y = data[pid]
        return FlowerClient(
            pid,
            X,
            y,
            model,
            n_classes=n_classes,
            generator=generator,
            reference=ref,
            random_state=random_state,
        ).to_client()

    return client_fn


# ---------------------------------------------------------------------------------------
# Server strategy
# ---------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """What configure_fit decided, waiting for aggregate_fit."""

    organisations: list[int]
    game: RoundGame
    equilibrium: GameSolution
    optimum: GameSolution
    synthetic: FloatArray
    synthetic_sent: FloatArray
    params: Params


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
        One of :data:`STRATEGIES` (decided by :func:`coopml.federated.simulation.decide`).
    beta : {"shapley", "contribution", "equal"}, default "shapley"
        Shares of the welfare gain in the redistribution: the round's Shapley shares
        from the contribution accounting, the effective-data shares, or equal shares.
    client_fraction : float in (0, 1], default 1.0
        Share of the organisations sampled each round
        (:func:`coopml.federated.fedavg.sample_clients`).
    reference : array-like of shape (n_classes,), optional
        Reference label distribution ``u`` for the skew (default uniform).
    skew_map : SkewMap, optional
        Default :class:`~coopml.federated.game.MixingSkew`.
    contribution_accounting : bool, default True
        Reconstruct every coalition's model and compute per-round Shapley values (needed
        for ``beta="shapley"``; at most :data:`MAX_ACCOUNTING_PLAYERS` participants).
    random_state : int, numpy.random.Generator or None
        Split into the simulator's five streams (initial model, client sampling, local
        training, generation, random strategy) with ``SeedSequence(seed).spawn(5)``.
    **fedavg_options
        Passed to ``flwr.server.strategy.FedAvg`` (``min_available_clients``,
        ``fraction_evaluate``, ``on_fit_config_fn``, ``evaluate_fn``, ...).

    Attributes
    ----------
    rounds : list of FlowerRound
        One record per completed round.
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
        random_state: RandomState = None,
        **fedavg_options: Any,
    ) -> None:
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.beta = check_choice("beta", beta, ("shapley", "contribution", "equal"))
        self.contribution_accounting = bool(contribution_accounting)
        if self.beta == "shapley" and not self.contribution_accounting:
            raise ValueError(
                "parameter 'beta' can be 'shapley' only with contribution_accounting=True"
            )
        self.client_fraction = check_fraction("client_fraction", client_fraction, open_low=True)
        self.model = model
        self.X_val = np.asarray(validation[0], dtype=np.float64)
        self.y_val = np.asarray(validation[1], dtype=np.int64)
        self.n_classes = check_int("n_classes", n_classes, minimum=2)
        self.theta = _per_org("theta", theta, None)
        self.gamma = _per_org("gamma", gamma, None)
        self.c = _per_org("c", c, None)
        self.s_max = _per_org("s_max", s_max, None)
        self.kappa = float(kappa)
        self.mu = float(mu)
        self.curve = curve
        self.skew_map: SkewMap = MixingSkew() if skew_map is None else skew_map
        self.reference = (
            np.full(self.n_classes, 1.0 / self.n_classes)
            if reference is None
            else np.asarray(reference, dtype=np.float64)
        )
        self.seed = check_seed(random_state)
        # the built-in simulator's streams (coopml.federated.simulation.run_strategy)
        streams = np.random.SeedSequence(self.seed).spawn(5)
        rng_init, self._rng_sample, self._rng_train, self._rng_gen, self._rng_random = (
            np.random.default_rng(st) for st in streams
        )
        if fedavg_options.get("initial_parameters") is None:
            fedavg_options["initial_parameters"] = ndarrays_to_parameters(model.init(rng_init))
        self._base_fit_config = fedavg_options.pop("on_fit_config_fn", None)
        fedavg_options.setdefault("min_fit_clients", 1)
        fedavg_options.setdefault("min_available_clients", 2)
        super().__init__(**fedavg_options)
        self.rounds: list[FlowerRound] = []
        self.parameters: Params | None = None
        self._stats: dict[str, _Stats] = {}
        self._pending: dict[int, _Pending] = {}

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
        reference distribution, client fraction and seed.
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
            random_state=cfg.random_state,
            **fedavg_options,
        )

    def __repr__(self) -> str:
        return (
            f"CoopetitiveFedAvg(strategy={self.strategy!r}, beta={self.beta!r}, "
            f"kappa={self.kappa}, mu={self.mu})"
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

    def _game(self, stats: Sequence[_Stats]) -> RoundGame:
        ids = [st.partition_id for st in stats]
        n = np.array([st.n_samples for st in stats], dtype=np.float64)
        h0 = np.array(
            [
                skew(st.histogram / max(float(st.histogram.sum()), 1.0), self.reference)
                for st in stats
            ]
        )
        return RoundGame(
            n=n,
            h0=np.clip(h0, 0.0, 1.0),
            theta=_pick(self.theta, ids),
            gamma=_pick(self.gamma, ids),
            c=_pick(self.c, ids),
            kappa=self.kappa,
            mu=self.mu,
            s_max=_pick(self.s_max, ids),
            curve=self.curve,
            skew_map=self.skew_map,
        )

    # -- Flower hooks -------------------------------------------------------------------
    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Sample organisations, solve the round game, send each its synthetic amount.

        Organisations are ordered by partition id and sampled with the simulator's
        stream (:func:`~coopml.federated.fedavg.sample_clients`).
        """
        client_manager.wait_for(max(self.min_available_clients, 1), timeout=86400)
        available = list(client_manager.all().values())
        if not available:
            return []
        stats_all = self._fetch_stats(available, server_round)
        order = np.argsort([st.partition_id for st in stats_all], kind="stable")
        available = [available[k] for k in order]
        stats_all = [stats_all[k] for k in order]
        part = sample_clients(len(available), self.client_fraction, self._rng_sample)
        proxies = [available[k] for k in part]
        stats = [stats_all[k] for k in part]
        game = self._game(stats)
        ne = nash_equilibrium(game)
        opt = social_optimum(game)
        s = np.asarray(decide(self.strategy, game, self._rng_random), dtype=np.float64)
        sent = np.floor(s + 0.5)
        train_rngs = self._rng_train.spawn(len(proxies))
        gen_rngs = self._rng_gen.spawn(len(proxies))
        self._pending[server_round] = _Pending(
            organisations=[st.partition_id for st in stats],
            game=game,
            equilibrium=ne,
            optimum=opt,
            synthetic=s,
            synthetic_sent=sent,
            params=parameters_to_ndarrays(parameters),
        )
        config: dict[str, Scalar] = {}
        if self._base_fit_config is not None:
            config.update(self._base_fit_config(server_round))
        config["server_round"] = server_round
        return [
            (
                cp,
                FitIns(
                    parameters,
                    {
                        **config,
                        "synthetic": int(s_i),
                        "train_stream": _encode_stream(tr),
                        "generation_stream": _encode_stream(gr),
                    },
                ),
            )
            for cp, s_i, tr, gr in zip(proxies, sent, train_rngs, gen_rngs, strict=True)
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """Aggregate by real + synthetic samples, account contributions, book transfers."""
        pending = self._pending.pop(server_round, None)
        if not results or pending is None or (failures and not self.accept_failures):
            return None, {}
        by_id = {int(res.metrics["partition_id"]): res for _, res in results}
        ids = [i for i in pending.organisations if i in by_id]
        updates = [parameters_to_ndarrays(by_id[i].parameters) for i in ids]
        sizes = np.array([by_id[i].num_examples for i in ids], dtype=np.float64)
        new = aggregate(updates, sizes)
        acc = self._accuracy(new)

        game = pending.game
        table: FloatArray | None = None
        phi: FloatArray | None = None
        if self.contribution_accounting and len(ids) <= MAX_ACCOUNTING_PLAYERS:
            table = self._coalition_values(pending.params, updates, sizes)
            phi_sub = shapley(CoalitionGame(table, names=tuple(str(i) for i in ids))).values
            phi = np.zeros(game.N)
            pos = {i: k for k, i in enumerate(pending.organisations)}
            for k, i in enumerate(ids):
                phi[pos[i]] = phi_sub[k]
        if self.beta == "shapley":
            if phi is None:
                raise RuntimeError(
                    f"round {server_round}: {len(ids)} participants exceed "
                    f"MAX_ACCOUNTING_PLAYERS={MAX_ACCOUNTING_PLAYERS} for exact Shapley shares"
                )
            beta: FloatArray | None = _shares(phi)
        elif self.beta == "equal":
            beta = np.full(game.N, 1.0 / game.N)
        else:
            beta = None  # the redistribution's effective-data contribution shares
        red = redistribution(game, beta, optimum=pending.optimum, equilibrium=pending.equilibrium)
        booked = red.transfers if self.strategy == "mechanism" else np.zeros(game.N)
        u = utilities(game, pending.synthetic) + booked
        record = FlowerRound(
            round=server_round,
            organisations=tuple(pending.organisations),
            n=np.asarray(game.n, dtype=np.float64),
            h0=np.asarray(game.h0, dtype=np.float64),
            synthetic=pending.synthetic,
            synthetic_sent=pending.synthetic_sent,
            equilibrium=pending.equilibrium,
            optimum=pending.optimum,
            redistribution=red,
            transfers=booked,
            utilities=u,
            coalition_values=table,
            shapley=phi,
            accuracy=acc,
        )
        self.rounds.append(record)
        self.parameters = new
        metrics: dict[str, Scalar] = {
            "accuracy": acc,
            "social_welfare": record.social_welfare,
            "synthetic": float(pending.synthetic_sent.sum()),
            "transfers_sum": float(booked.sum()),
        }
        return ndarrays_to_parameters(new), metrics

    # -- accounting ---------------------------------------------------------------------
    def _accuracy(self, params: Params) -> float:
        return float(np.mean(self.model.predict(params, self.X_val) == self.y_val))

    def _coalition_values(
        self, incoming: Params, updates: Sequence[Params], sizes: FloatArray
    ) -> FloatArray:
        """Validation accuracy of every reconstructed coalition model (bitmask order).

        The model of coalition ``S`` is the weighted average of its members' updates
        (weights: real + synthetic samples), the model FedAvg would have produced had
        only ``S`` taken part; the empty coalition keeps the incoming global model.
        """
        m = len(updates)
        table = np.empty(1 << m)
        table[0] = self._accuracy(incoming)
        for mask in range(1, 1 << m):
            members = [k for k in range(m) if mask >> k & 1]
            table[mask] = self._accuracy(aggregate([updates[k] for k in members], sizes[members]))
        return table

    def history(self) -> dict[str, Any]:
        """JSON-ready per-round history."""
        return to_jsonable(
            {
                "strategy": self.strategy,
                "beta": self.beta,
                "rounds": [r.to_dict() for r in self.rounds],
            }
        )


def _shares(phi: FloatArray) -> FloatArray:
    """Non-negative shares from Shapley values (uniform when no one adds value)."""
    pos = np.clip(phi, 0.0, None)
    total = float(pos.sum())
    return pos / total if total > 0 else np.full(phi.size, 1.0 / phi.size)


# ---------------------------------------------------------------------------------------
# Simulation helper
# ---------------------------------------------------------------------------------------


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
    converged = all(r.equilibrium.converged and r.optimum.converged for r in strat.rounds)
    return FlowerRunResult(
        rounds=list(strat.rounds),
        params=strat.parameters if strat.parameters is not None else [],
        strategy=strat.strategy,
        converged=converged,
        n_iter=len(strat.rounds),
    )
