r"""The coopetitive federated-learning loop: game, generation, FedAvg, booking.

Set-up (once, shared by every strategy): split the dataset among organisations with
Dirichlet label skew and measure each skew :math:`h_i^0`; fit one class-conditional
generator per organisation on its own data and measure the synthetic quality
:math:`\kappa`; fit the accuracy curve :math:`P(E)` from pilot FedAvg runs on IID subsets.

Per round :math:`t` (the reconstruction of CoCoGen+, arXiv 2604.14886):

1. sample the participating organisations (client sampling);
2. build their :class:`~coopml.federated.game.RoundGame` and solve the Nash equilibrium,
   the social optimum and the redistribution;
3. decide the synthetic amounts by the strategy -- ``mechanism`` (the optimum, with
   transfers), ``equilibrium`` (the Nash equilibrium, no transfers), ``no_generation``,
   ``competition_oblivious`` (the equilibrium of the same game with
   :math:`\gamma = 0`) or ``random`` (uniform on :math:`[0, s_i^{max}]`);
4. every participant draws its (rounded) synthetic samples, labels from the reference
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

from coopml._serialization import to_jsonable
from coopml._validation import RandomState, check_int, check_random_state
from coopml.federated.config import STRATEGIES, FLConfig
from coopml.federated.fedavg import (
    ClientData,
    FederatedModel,
    accuracy,
    fedavg,
    fedavg_round,
    make_model,
    sample_clients,
)
from coopml.federated.game import (
    AccuracyCurve,
    AccuracyModel,
    RoundGame,
    nash_equilibrium,
    redistribution,
    social_optimum,
    utilities,
)
from coopml.federated.synthetic import (
    FederatedData,
    GeneratorPool,
    QualityResult,
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
    "prepare",
    "run_strategy",
    "simulate",
]

Progress = Callable[[int, int], None]
FloatArray = NDArray[np.float64]


def _per_org(name: str, value: float | Sequence[float], N: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full(N, float(arr))
    if arr.shape != (N,):
        raise ValueError(
            f"parameter 'game.{name}' must be a number or have one entry per organisation "
            f"({N}); got {arr.size} entries"
        )
    return arr


def _scaled_epochs(model: FederatedModel, factor: int) -> FederatedModel:
    """The model with ``factor`` times its local epochs (when it is a dataclass with them)."""
    if factor > 1 and dataclasses.is_dataclass(model) and hasattr(model, "local_epochs"):
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
    recorded at :math:`E = f \\cdot n` (IID data has no skew). Small subsets get
    proportionally more local epochs (``ceil(1 / f)`` times), so every pilot takes about
    the same number of SGD steps and the curve measures data, not training time. The
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

    def game(self, participants: Sequence[int] | None = None) -> RoundGame:
        """The round game among ``participants`` (default: everyone)."""
        idx = (
            np.arange(len(self.data.clients))
            if participants is None
            else np.asarray(participants, dtype=np.intp)
        )
        g = self.config.game
        return RoundGame(
            n=self.data.n[idx],
            h0=self.data.h0[idx],
            theta=self.theta[idx],
            gamma=self.gamma[idx],
            c=self.c[idx],
            kappa=self.kappa,
            mu=g.mu,
            s_max=self.s_max[idx],
            curve=self.curve,
        )


def prepare(
    config: FLConfig,
    *,
    data: FederatedData | None = None,
    curve: AccuracyModel | None = None,
    train: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Setup:
    """Split the data, fit the generators, measure κ and fit the accuracy curve.

    ``data`` and ``curve`` may be given to reuse them (sweeps). With ``train=False``
    generators are only fitted when κ must be measured.
    """
    say = progress or (lambda _msg: None)
    seed = config.random_state
    d = config.data
    if data is None:
        say("splitting data")
        data = federated_split(
            d.dataset,
            d.n_organisations,
            d.alpha,
            validation_fraction=d.validation_fraction,
            reference=d.reference,
            min_size=d.min_size,
            random_state=seed,
        )
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
        theta=_per_org("theta", g.theta, N),
        gamma=_per_org("gamma", g.gamma, N),
        c=_per_org("c", g.c, N),
        s_max=g.s_max_factor * data.n,
    )


def decide(strategy: str, game: RoundGame, rng: np.random.Generator) -> FloatArray:
    """Synthetic amounts of one round under ``strategy`` (continuous, in ``[0, s_max]``)."""
    if strategy == "mechanism":
        return social_optimum(game).s
    if strategy == "equilibrium":
        return nash_equilibrium(game).s
    if strategy == "no_generation":
        return np.zeros(game.N)
    if strategy == "competition_oblivious":
        return nash_equilibrium(game.replace(gamma=np.zeros(game.N))).s
    if strategy == "random":
        return rng.uniform(0.0, 1.0, game.N) * np.asarray(game.s_max, dtype=np.float64)
    raise ValueError(
        f"parameter 'strategy' must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
    )


@dataclass(frozen=True, kw_only=True)
class StrategyResult:
    """Per-round record of one strategy (arrays of shape (rounds, N); zero for absent orgs).

    Attributes
    ----------
    name : str
    accuracy_per_round : ndarray of shape (rounds,)
        Validation accuracy of the global model after each round (NaN without training).
    synthetic : ndarray
        Synthetic samples decided (continuous; training uses them rounded).
    participants : ndarray of bool
    utilities_before : ndarray
        Game utilities :math:`u_i(s^t)` without transfers.
    transfers : ndarray
        Net transfers received (mechanism only; each row sums to 0).
    utilities_after : ndarray
        ``utilities_before + transfers``.
    utilities_equilibrium : ndarray
        Game utilities at the round's Nash equilibrium (the no-mechanism benchmark).
    utilities_measured : ndarray
        Utilities with the measured accuracy in place of :math:`P(E)` (before transfers).
    skew_after : ndarray
        Measured label skew of each participant's real + synthetic training set.
    """

    name: str
    accuracy_per_round: FloatArray
    synthetic: FloatArray
    participants: NDArray[np.bool_]
    utilities_before: FloatArray
    transfers: FloatArray
    utilities_after: FloatArray
    utilities_equilibrium: FloatArray
    utilities_measured: FloatArray
    skew_after: FloatArray

    @property
    def social_welfare(self) -> float:
        """Sum over rounds and organisations of game utilities (transfers cancel)."""
        return float(self.utilities_before.sum())

    @property
    def social_welfare_measured(self) -> float:
        """The same with measured accuracies."""
        return float(np.nansum(self.utilities_measured))

    @property
    def final_accuracy(self) -> float:
        """Accuracy after the last round (NaN without training)."""
        return float(self.accuracy_per_round[-1])

    @property
    def synthetic_per_round(self) -> FloatArray:
        """Total synthetic samples decided per round."""
        return np.asarray(self.synthetic.sum(axis=1), dtype=np.float64)

    @property
    def transfers_sum(self) -> float:
        """Largest absolute per-round sum of transfers."""
        return float(np.max(np.abs(self.transfers.sum(axis=1)))) if self.transfers.size else 0.0

    @property
    def individually_rational(self) -> bool:
        """Every participant, every round, at or above its equilibrium payoff."""
        return bool(np.all(self.utilities_after >= self.utilities_equilibrium - 1e-9))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-round arrays."""
        return to_jsonable(
            {
                "social_welfare": self.social_welfare,
                "social_welfare_measured": self.social_welfare_measured,
                "final_accuracy": None if np.isnan(self.final_accuracy) else self.final_accuracy,
                "synthetic_per_round": self.synthetic_per_round,
                "accuracy_per_round": [
                    None if np.isnan(a) else float(a) for a in self.accuracy_per_round
                ],
                "synthetic": self.synthetic,
                "participants": self.participants,
                "utilities_before": self.utilities_before,
                "transfers": self.transfers,
                "utilities_after": self.utilities_after,
                "utilities_equilibrium": self.utilities_equilibrium,
                "utilities_measured": self.utilities_measured,
                "skew_after": self.skew_after,
                "transfers_sum": self.transfers_sum,
                "individually_rational": self.individually_rational,
            }
        )


def _measured_utilities(game: RoundGame, s: FloatArray, acc: float) -> FloatArray:
    theta = np.asarray(game.theta, dtype=np.float64)
    gamma = np.asarray(game.gamma, dtype=np.float64)
    c = np.asarray(game.c, dtype=np.float64)
    A = acc - game.mu * np.asarray(game.skew_map(s, game.h0, game.n), dtype=np.float64)
    tA = theta * A
    N = game.N
    others = (tA.sum() - tA) / (N - 1) if N > 1 else np.zeros(1)
    return np.asarray(tA - gamma * others - c * s, dtype=np.float64)


def run_strategy(
    setup: Setup,
    strategy: str,
    *,
    rounds: int | None = None,
    train: bool = True,
    progress: Callable[[], None] | None = None,
) -> StrategyResult:
    """Run the per-round loop for one strategy (see the module docstring)."""
    cfg = setup.config
    R = check_int("rounds", cfg.rounds if rounds is None else rounds, minimum=1)
    data = setup.data
    N = len(data.clients)
    streams = np.random.SeedSequence(cfg.random_state).spawn(5)
    rng_init, rng_sample, rng_train, rng_gen, rng_random = (
        np.random.default_rng(s) for s in streams
    )
    model = setup.model() if train else None
    params = model.init(rng_init) if model is not None else None
    shape = (R, N)
    acc = np.full(R, np.nan)
    synthetic, before, transfers, eq_u, measured = (np.zeros(shape) for _ in range(5))
    skew_after = np.full(shape, np.nan)
    present = np.zeros(shape, dtype=bool)
    beta_rule = cfg.game.beta
    for t in range(R):
        part = sample_clients(N, cfg.training.client_fraction, rng_sample)
        present[t, part] = True
        game = setup.game(part.tolist())
        ne = nash_equilibrium(game)
        s = decide(strategy, game, rng_random)
        u = utilities(game, s)
        synthetic[t, part] = s
        before[t, part] = u
        eq_u[t, part] = ne.utilities
        if strategy == "mechanism":
            beta = np.full(game.N, 1.0 / game.N) if beta_rule == "equal" else None
            red = redistribution(game, beta, equilibrium=ne)
            transfers[t, part] = red.transfers
        if model is not None and params is not None:
            assert setup.pool is not None
            local: list[ClientData] = list(data.clients)
            # One generation stream per participant and round, as separate Flower
            # clients have (coopml.federated.flower): both engines draw the same samples.
            gen_rngs = rng_gen.spawn(part.size)
            for k, i in enumerate(part):
                m = int(np.floor(s[k] + 0.5))
                X, y = data.clients[i]
                if m > 0:
                    Xs, ys = setup.pool.generate(m, data.reference, gen_rngs[k])
                    X, y = np.vstack([X, Xs]), np.concatenate([y, ys])
                local[i] = (X, y)
                skew_after[t, i] = skew(label_distribution(y, data.n_classes), data.reference)
            rngs = list(rng_train.spawn(part.size))
            params = fedavg_round(model, params, local, part.tolist(), rngs)
            acc[t] = accuracy(model, params, data.X_val, data.y_val)
            measured[t, part] = _measured_utilities(game, s, float(acc[t]))
        else:
            measured[t, part] = np.nan
        if progress is not None:
            progress()
    return StrategyResult(
        name=strategy,
        accuracy_per_round=acc,
        synthetic=synthetic,
        participants=present,
        utilities_before=before,
        transfers=transfers,
        utilities_after=before + transfers,
        utilities_equilibrium=eq_u,
        utilities_measured=measured,
        skew_after=skew_after,
    )


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
    )
