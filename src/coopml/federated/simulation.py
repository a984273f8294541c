r"""The coopetitive federated-learning loop: game, generation, FedAvg, booking.

Set-up (once, shared by every strategy): split the dataset among organisations with
Dirichlet label skew, or read one file per organisation, and measure each skew
:math:`h_i^0`; fit one class-conditional
generator per organisation on its own data and measure the synthetic quality
:math:`\kappa`; fit the accuracy curve :math:`P(E)` from pilot FedAvg runs on IID subsets.

Per round :math:`t` (the reconstruction of CoCoGen+, arXiv 2604.14886), steps 1-3 and 5
by the round engine that the Flower adapter shares (:mod:`coopml.federated.rounds`):

1. sample the participating organisations (client sampling);
2. build their :class:`~coopml.federated.game.RoundGame` and solve the Nash equilibrium
   and the social optimum;
3. decide the synthetic amounts by the strategy -- ``mechanism`` (the optimum, with
   transfers), ``equilibrium`` (the Nash equilibrium, no transfers), ``no_generation``,
   ``competition_oblivious`` (the equilibrium of the same game with
   :math:`\gamma = 0`) or ``random`` (uniform on :math:`[0, s_i^{max}]`) -- and let
   organisations whose utility falls below their outside option leave (when
   ``game.outside_option`` is set);
4. every member draws its (rounded) synthetic samples, labels from the reference
   distribution, from the generator pool, mixes them with its real data for this round
   and trains locally; the server averages (FedAvg) and the global model is evaluated;
5. book the round: game utilities :math:`u_i(s^t)` (the accuracy model the organisations
   decide with), transfers (mechanism only), utilities after transfers, the equilibrium
   payoff (for individual rationality), and *measured* utilities, in which the measured
   validation accuracy of the round's global model replaces :math:`P(E)`.

Synthetic samples are fresh every round (they are not accumulated), so each round is the
one-shot game of the paper. Every strategy sees the same random streams (initial model,
client sampling, minibatch order, generator draws), so differences between strategies come
from the synthetic amounts only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.impute import SimpleImputer

from coopml._serialization import to_jsonable
from coopml._validation import RandomState, check_int, check_random_state
from coopml.config import ConfigError, JobConfig, build_parties
from coopml.federated._vectors import per_org
from coopml.federated.accounting import coalition_values, shapley_values
from coopml.federated.config import STRATEGIES, FLConfig
from coopml.federated.fedavg import FederatedModel, accuracy, aggregate, fedavg, make_model
from coopml.federated.game import AccuracyCurve, AccuracyModel, RoundGame
from coopml.federated.rounds import Ledger, RoundEngine, StrategyResult, decide
from coopml.federated.synthetic import (
    FederatedData,
    GeneratorPool,
    QualityResult,
    federated_from_parties,
    federated_split,
    fit_generators,
    label_distribution,
    measure_quality,
    skew,
)

__all__ = [
    "STRATEGIES",
    "Setup",
    "SimulationResult",
    "StrategyResult",
    "decide",
    "fit_accuracy_curve",
    "load_data",
    "prepare",
    "run_strategy",
    "simulate",
]

Progress = Callable[[int, int], None]
FloatArray = NDArray[np.float64]


def _scaled_epochs(model: FederatedModel, factor: int) -> FederatedModel:
    """The model with ``factor`` times its local epochs (epoch budget only)."""
    if (
        factor > 1
        and dataclasses.is_dataclass(model)
        and hasattr(model, "local_epochs")
        and getattr(model, "local_steps", None) is None
    ):
        scaled: FederatedModel = dataclasses.replace(
            model, local_epochs=int(model.local_epochs) * factor
        )
        return scaled
    return model


def fit_accuracy_curve(
    data: FederatedData,
    model: FederatedModel,
    *,
    fractions: Sequence[float] = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
    rounds: int = 10,
    client_fraction: float = 1.0,
    random_state: RandomState = 0,
) -> tuple[AccuracyCurve, FloatArray, FloatArray]:
    """Fit :math:`P(E)` from pilot FedAvg runs on IID subsets of the pooled training data.

    For each fraction ``f`` a random subset of ``f`` of the rows is dealt out IID to the
    organisations, FedAvg runs ``rounds`` rounds and the final validation accuracy is
    recorded at :math:`E = f \\cdot n` (IID data has no skew). Every pilot takes the same
    number of SGD steps, so the curve measures data, not training time, and matches the
    training budget of the rounds: under a fixed ``local_steps`` budget every client
    takes that many steps whatever its size, as in the rounds; under the epoch budget
    small subsets get proportionally more local epochs (``ceil(1 / f)`` times). The
    accuracy of a run is the mean over its last three rounds (SGD noise).

    Returns
    -------
    curve : AccuracyCurve
    E : ndarray
        Pilot data sizes.
    acc : ndarray
        Measured pilot accuracies.
    """
    rng = check_random_state(random_state)
    X, y = data.pooled()
    N = len(data.clients)
    E, acc = [], []
    for f in fractions:
        m = max(N, round(f * y.size))
        rows = rng.permutation(y.size)[:m]
        parts = np.array_split(rows, N)
        clients = [(X[p], y[p]) for p in parts]
        res = fedavg(
            _scaled_epochs(model, math.ceil(y.size / m)),
            clients,
            (data.X_val, data.y_val),
            rounds=rounds,
            client_fraction=client_fraction,
            random_state=rng,
        )
        E.append(float(m))
        acc.append(float(np.mean(res.accuracy_per_round[-3:])))
    E_arr, acc_arr = np.array(E), np.array(acc)
    return AccuracyCurve.fit(E_arr, acc_arr), E_arr, acc_arr


@dataclass(frozen=True, eq=False)
class Setup:
    """Everything the strategies share: data, generators, quality, curve, game parameters."""

    config: FLConfig
    data: FederatedData
    pool: GeneratorPool | None
    quality: QualityResult | None
    kappa: float
    curve: AccuracyModel
    pilot_E: FloatArray
    pilot_accuracy: FloatArray
    theta: FloatArray
    gamma: FloatArray
    c: FloatArray
    s_max: FloatArray

    def model(self) -> FederatedModel:
        """A fresh FedAvg model for this data."""
        t = self.config.training
        return make_model(t.model, self.data.n_features, self.data.n_classes, **t.model_options())

    def engine(self, strategy: str, *, beta: str | None = None) -> RoundEngine:
        """A round engine for ``strategy`` (``beta`` default: the config's rule)."""
        g = self.config.game
        outside = g.outside_option
        return RoundEngine(
            strategy,
            theta=self.theta,
            gamma=self.gamma,
            c=self.c,
            s_max=self.s_max,
            kappa=self.kappa,
            mu=g.mu,
            curve=self.curve,
            client_fraction=self.config.training.client_fraction,
            beta=g.beta if beta is None else beta,
            outside_option=outside
            if isinstance(outside, str)
            else per_org("game.outside_option", outside, len(self.data.clients)),
            competition=g.competition_model(),
            random_state=self.config.random_state,
        )

    def game(self, participants: Sequence[int] | None = None) -> RoundGame:
        """The round game among ``participants`` (default: everyone)."""
        idx = (
            np.arange(len(self.data.clients))
            if participants is None
            else np.asarray(participants, dtype=np.intp)
        )
        return self.engine("equilibrium").game(idx, self.data.n[idx], self.data.h0[idx])


_LEARNER_HINT = ", use a learner that accepts missing values (e.g. HistGradientBoostingClassifier)"


def load_data(config: FLConfig) -> FederatedData:
    """The organisations' data of a job: a bundled dataset split with Dirichlet label skew,
    or one file per organisation (``[[parties]]``, columns matched by name).

    Party files honour ``[preprocessing]``: text columns are encoded
    (``categorical``, one fixed category list, see :func:`coopml.config.build_parties`)
    and missing values are filled (``impute``) with one statistic of the pooled training
    rows, as the features are then standardised (so ``scale`` adds nothing)."""
    d = config.data
    if config.parties is None or config.validation is None:
        return federated_split(
            d.dataset,
            d.n_organisations,
            d.alpha,
            validation_fraction=d.validation_fraction,
            reference=d.reference,
            min_size=d.min_size,
            random_state=config.random_state,
        )
    prep = config.preprocessing
    job = JobConfig(
        parties=config.parties,
        validation=config.validation,
        features=config.features,
        extra_columns=config.extra_columns,
        preprocessing=prep,
    )
    try:
        parties, validation = build_parties(job)
    except ConfigError as exc:  # FL has no [learner]: drop that remedy from the hint
        raise ConfigError(str(exc).replace(_LEARNER_HINT, "")) from None
    Xs = [p.X for p in parties]
    X_val = validation[0]
    if prep.impute != "none":
        # one pooled statistic of the training rows, as for the standardisation
        imputer = SimpleImputer(strategy=prep.impute, keep_empty_features=True)
        imputer.fit(np.vstack(Xs))
        Xs = [imputer.transform(X) for X in Xs]
        X_val = imputer.transform(X_val)
    return federated_from_parties(
        [(p.name, X, p.y) for p, X in zip(parties, Xs, strict=True)],
        (X_val, validation[1]),
        reference=d.reference,
    )


def prepare(
    config: FLConfig,
    *,
    data: FederatedData | None = None,
    curve: AccuracyModel | None = None,
    train: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Setup:
    """Load or split the data, fit the generators, measure κ and fit the accuracy curve.

    ``data`` and ``curve`` may be given to reuse them (sweeps). With ``train=False``
    generators are only fitted when κ must be measured.
    """
    say = progress or (lambda _msg: None)
    seed = config.random_state
    if data is None:
        say("loading data" if config.parties else "splitting data")
        data = load_data(config)
    N = len(data.clients)
    g = config.game
    pool: GeneratorPool | None = None
    quality: QualityResult | None = None
    if train or g.kappa == "measured":
        say(f"fitting {config.generator.kind} generators")
        pool = fit_generators(
            data, config.generator.kind, random_state=seed, **config.generator.options()
        )
    if g.kappa == "measured":
        assert pool is not None
        say("measuring synthetic quality")
        quality = measure_quality(pool, data, random_state=seed)
        kappa = quality.kappa
    else:
        kappa = float(g.kappa)
    t = config.training
    pilot_E = pilot_acc = np.zeros(0)
    if curve is None:
        if g.curve.fit:
            say("pilot FedAvg runs for the accuracy curve")
            model = make_model(t.model, data.n_features, data.n_classes, **t.model_options())
            curve, pilot_E, pilot_acc = fit_accuracy_curve(
                data,
                model,
                fractions=g.curve.pilot_fractions,
                rounds=g.curve.pilot_rounds or config.rounds,
                client_fraction=t.client_fraction,
                random_state=seed,
            )
        else:
            assert g.curve.A_max is not None and g.curve.a is not None and g.curve.b is not None
            curve = AccuracyCurve(g.curve.A_max, g.curve.a, g.curve.b)
    return Setup(
        config=config,
        data=data,
        pool=pool,
        quality=quality,
        kappa=kappa,
        curve=curve,
        pilot_E=pilot_E,
        pilot_accuracy=pilot_acc,
        theta=per_org("game.theta", g.theta, N),
        gamma=per_org("game.gamma", g.gamma, N),
        c=per_org("game.c", g.c, N),
        s_max=g.s_max_factor * data.n,
    )


def run_strategy(
    setup: Setup,
    strategy: str,
    *,
    rounds: int | None = None,
    train: bool = True,
    beta: str | None = None,
    progress: Callable[[], None] | None = None,
) -> StrategyResult:
    """Run the per-round loop for one strategy (see the module docstring).

    The round engine (:class:`~coopml.federated.rounds.RoundEngine`) plans and books
    every round; this function trains the members in this process: each draws its
    rounded synthetic amount from the generator pool with its own stream, trains locally
    on real + synthetic rows and the server takes the sample-weighted mean. With
    ``beta="shapley"`` the round's coalition models are reconstructed from the updates
    and scored (:mod:`coopml.federated.accounting`).
    """
    cfg = setup.config
    R = check_int("rounds", cfg.rounds if rounds is None else rounds, minimum=1)
    data = setup.data
    N = len(data.clients)
    engine = setup.engine(strategy, beta=beta)
    if engine.needs_accounting and not train:
        raise ValueError(
            "beta='shapley' needs training (the round's Shapley values come from the trained "
            "coalition models); use train=True or beta='contribution' or 'equal'"
        )
    model = setup.model() if train else None
    params = model.init(engine.streams.init) if model is not None else None
    ledger = Ledger(strategy, R, N)
    ids = np.arange(N)
    for t in range(R):
        plan = engine.plan(t, ids, data.n, data.h0)
        acc = float("nan")
        phi: FloatArray | None = None
        skew_after: FloatArray | None = None
        if model is not None and params is not None:
            assert setup.pool is not None
            updates, sizes, skews = [], [], []
            for k, i in enumerate(plan.members):
                X, y = data.clients[i]
                m = int(plan.synthetic_sent[k])
                if m > 0:
                    Xs, ys = setup.pool.generate(m, data.reference, plan.generation_streams[k])
                    X, y = np.vstack([X, Xs]), np.concatenate([y, ys])
                skews.append(skew(label_distribution(y, data.n_classes), data.reference))
                updates.append(model.local_train(params, X, y, plan.train_streams[k]))
                sizes.append(X.shape[0])
            if updates:
                incoming = params
                params = aggregate(updates, sizes)
                if engine.needs_accounting:
                    table = coalition_values(
                        model, incoming, updates, sizes, data.X_val, data.y_val
                    )
                    phi = shapley_values(table, plan.members.tolist())
            acc = accuracy(model, params, data.X_val, data.y_val)
            skew_after = np.asarray(skews)
        ledger.add(engine.book(plan, acc, shapley=phi), skew_after=skew_after)
        if progress is not None:
            progress()
    return ledger.result()


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    """Outcome of :func:`simulate`: one :class:`StrategyResult` per strategy plus the set-up.

    ``transfers_sum`` is the largest absolute per-round sum of the mechanism's transfers
    and ``individually_rational`` whether every organisation, every round, ends at or
    above its equilibrium payoff under the mechanism.
    """

    strategies: dict[str, StrategyResult]
    n: FloatArray
    h0: FloatArray
    kappa: float
    quality: QualityResult | None
    curve: AccuracyModel
    pilot_E: FloatArray
    pilot_accuracy: FloatArray
    rounds: int
    runtime_s: float
    config: dict[str, Any] = field(default_factory=dict)
    organisations: tuple[str, ...] = ()

    @property
    def transfers_sum(self) -> float:
        mech = self.strategies.get("mechanism")
        return 0.0 if mech is None else mech.transfers_sum

    @property
    def individually_rational(self) -> bool:
        mech = self.strategies.get("mechanism")
        return True if mech is None else mech.individually_rational

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` document."""
        curve: dict[str, Any] = {"kind": type(self.curve).__name__}
        if isinstance(self.curve, AccuracyCurve):
            curve.update(A_max=self.curve.A_max, a=self.curve.a, b=self.curve.b)
        return to_jsonable(
            {
                "strategies": {k: v.to_dict() for k, v in self.strategies.items()},
                "transfers_sum": self.transfers_sum,
                "individually_rational": self.individually_rational,
                "rounds": self.rounds,
                "organisations": list(self.organisations) or None,
                "n": self.n,
                "h0": self.h0,
                "kappa": self.kappa,
                "quality": None if self.quality is None else self.quality.to_dict(),
                "curve": curve,
                "pilot": {"E": self.pilot_E, "accuracy": self.pilot_accuracy},
                "runtime_s": self.runtime_s,
                "model": "reconstruction of CoCoGen+ (arXiv 2604.14886)",
                "config": self.config,
            }
        )


def simulate(
    config: FLConfig,
    *,
    setup: Setup | None = None,
    rounds: int | None = None,
    train: bool = True,
    progress: Progress | None = None,
    status: Callable[[str], None] | None = None,
) -> SimulationResult:
    """Run every configured strategy and collect the results.

    Parameters
    ----------
    config : FLConfig
    setup : Setup, optional
        Reuse a prepared set-up (default: :func:`prepare`).
    rounds : int, optional
        Override ``config.rounds``.
    train : bool, default True
        Run FedAvg with generated data; ``False`` books the game only (fast sweeps).
    progress : callable(done, total), optional
        Called after each round of each strategy.
    status : callable(str), optional
        Set-up messages.

    Examples
    --------
    >>> from coopml.federated.config import FLConfig
    >>> cfg = FLConfig.model_validate({"rounds": 3, "data": {"dataset": "wine",
    ...     "n_organisations": 3, "alpha": 1.0, "min_size": 5},
    ...     "game": {"kappa": 0.8, "curve": {"fit": False, "A_max": 0.97, "a": 2.0, "b": 0.6}}})
    >>> res = simulate(cfg, train=False)
    >>> sorted(res.strategies)
    ['competition_oblivious', 'equilibrium', 'mechanism', 'no_generation', 'random']
    >>> res.transfers_sum < 1e-9, res.individually_rational
    (True, True)
    """
    start = time.perf_counter()
    R = config.rounds if rounds is None else rounds
    if setup is None:
        setup = prepare(config, train=train, progress=status)
    total = R * len(config.strategies)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    results: dict[str, StrategyResult] = {
        str(name): run_strategy(setup, name, rounds=R, train=train, progress=tick)
        for name in config.strategies
    }
    return SimulationResult(
        strategies=results,
        n=setup.data.n,
        h0=setup.data.h0,
        kappa=setup.kappa,
        quality=setup.quality,
        curve=setup.curve,
        pilot_E=setup.pilot_E,
        pilot_accuracy=setup.pilot_accuracy,
        rounds=R,
        runtime_s=time.perf_counter() - start,
        config=config.model_dump(mode="json"),
        organisations=setup.data.organisations,
    )
