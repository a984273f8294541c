r"""The federated round engine: random streams, the round plan and the round's books.

One engine runs every round of the coopetitive federated-learning loop (CoCoGen+, arXiv
2604.14886; reconstruction, see :mod:`coopml.federated.game`), for the built-in simulator
(:func:`coopml.federated.simulation.run_strategy`) and for the Flower adapter
(:mod:`coopml.federated.flower`) alike. Only the training differs: the simulator trains
every member in this process, Flower sends the plan to its clients.

**Streams.** ``SeedSequence(random_state).spawn(5)`` gives five independent streams: the
initial model, client sampling, local training, generation and the ``random`` strategy
(:func:`spawn_streams`). Every participant gets its own training and generation stream
per round, spawned from the round's stream, so clients running apart draw what the
simulator draws.

**Plan** (:meth:`RoundEngine.plan`). Sample the round's organisations; solve their
:class:`~coopml.federated.game.RoundGame` (Nash equilibrium and social optimum); let the
strategy choose the synthetic amounts :math:`s_i` (:func:`play`); apply the
participation rule: each organisation has an outside option :math:`o_i` (its standalone
utility, :func:`standalone_utility`, or a configured value), and while some member's
utility in the round falls below its outside option, the one with the largest shortfall
leaves and the game is solved again among the others. An organisation that left is
sampled and reconsidered afresh in later rounds, so it returns when taking part pays.

**Books** (:meth:`RoundEngine.book`). After training: the redistribution (transfers are
booked under ``"mechanism"`` only) with shares :math:`\beta` by the chosen rule
(``"contribution"``, ``"equal"`` or ``"shapley"``: the round's exact Shapley values of
the reconstructed coalition models, :mod:`coopml.federated.accounting`), the game
utilities, the equilibrium payoffs, measured utilities (the measured accuracy of the
round's model in place of :math:`P(E)`) and the certificate of the solution played.
:class:`Ledger` collects the rounds into a :class:`StrategyResult`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml._validation import check_choice, check_fraction, check_seed
from coopml.federated._vectors import per_org
from coopml.federated.accounting import shapley_shares
from coopml.federated.competition import CompetitionModel, resolve
from coopml.federated.config import STRATEGIES
from coopml.federated.fedavg import sample_clients
from coopml.federated.game import (
    AccuracyModel,
    GameSolution,
    MixingSkew,
    Redistribution,
    RoundGame,
    SkewMap,
    accuracies,
    deviation_gains,
    nash_equilibrium,
    redistribution,
    social_optimum,
    utilities,
)

__all__ = [
    "BETA_RULES",
    "CERTIFY_TOL",
    "Decision",
    "Ledger",
    "RoundEngine",
    "RoundPlan",
    "RoundRecord",
    "StrategyResult",
    "Streams",
    "decide",
    "mechanism_deviation_gain",
    "play",
    "spawn_streams",
    "standalone_utility",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BETA_RULES = ("contribution", "equal", "shapley")
OutsideOption = Literal["none", "standalone"] | float | ArrayLike

#: Utility shortfall below the outside option that is still a tie (the member stays).
PARTICIPATION_TOL = 1e-12
#: Largest deviation gain under the mechanism's transfers that still certifies it,
#: relative to ``max(1, max_i |u_i + t_i|)`` (the solvers' ``certify_tol``).
CERTIFY_TOL = 1e-9


# ---------------------------------------------------------------------------------------
# Memoised solutions: the round's game is often the same round after round (and across
# strategies); nash_equilibrium and social_optimum are pure functions of its parameters
# ---------------------------------------------------------------------------------------

_GAME_FIELDS = ("n", "h0", "theta", "gamma", "c", "s_max")
_SOLVED_MAX = 256
_solved: dict[tuple[Any, ...], GameSolution] = {}
_solved_lock = threading.Lock()


def _game_key(kind: str, game: RoundGame) -> tuple[Any, ...] | None:
    """A key made of every parameter of ``game``, or ``None`` when one of its model
    objects (curve, skew map, competition) has no value-based hash (it might change
    in place, so its solutions are not memoised)."""
    models = (game.curve, game.skew_map, game.competition)
    if any(type(m).__hash__ in (None, object.__hash__) for m in models):
        return None
    try:
        hash(models)
    except TypeError:  # e.g. a frozen dataclass holding an array
        return None
    arrays = tuple(
        np.broadcast_to(np.asarray(getattr(game, f), dtype=np.float64), (game.N,)).tobytes()
        for f in _GAME_FIELDS
    )
    return (kind, game.N, arrays, float(game.kappa), float(game.mu), *models)


def _memo(kind: str, game: RoundGame, solve: Any) -> GameSolution:
    """``solve(game)``, memoised on the game's parameters (a fresh copy each call)."""
    key = _game_key(kind, game)
    sol = None if key is None else _solved.get(key)
    if sol is None:
        sol = solve(game)
        if key is not None:
            with _solved_lock:  # runs may share the process (threads of the service)
                if len(_solved) >= _SOLVED_MAX:
                    _solved.pop(next(iter(_solved)), None)  # the oldest entry
                _solved[key] = sol
    return replace(sol, s=sol.s.copy(), utilities=sol.utilities.copy())


def _nash(game: RoundGame) -> GameSolution:
    return _memo("nash", game, nash_equilibrium)


def _optimum(game: RoundGame) -> GameSolution:
    return _memo("optimum", game, social_optimum)


class Streams(NamedTuple):
    """The five random streams of a run (one ``numpy.random.Generator`` each)."""

    init: np.random.Generator
    sample: np.random.Generator
    train: np.random.Generator
    generation: np.random.Generator
    random: np.random.Generator


def spawn_streams(random_state: int) -> Streams:
    """The streams ``SeedSequence(random_state).spawn(5)`` in the order of :class:`Streams`.

    Examples
    --------
    >>> a, b = spawn_streams(3), spawn_streams(3)
    >>> a.sample.random() == b.sample.random() != a.train.random()
    True
    """
    seqs = np.random.SeedSequence(check_seed(random_state)).spawn(5)
    return Streams(*(np.random.default_rng(s) for s in seqs))


# ---------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The synthetic amounts a strategy chose, and the solution concept it played (if any)."""

    s: FloatArray
    solution: GameSolution | None


def play(
    strategy: str,
    game: RoundGame,
    rng: np.random.Generator,
    *,
    equilibrium: GameSolution | None = None,
    optimum: GameSolution | None = None,
) -> Decision:
    """Synthetic amounts of one round under ``strategy`` (continuous, in ``[0, s_max]``).

    ``mechanism`` plays the social optimum (which the redistribution makes the
    equilibrium), ``equilibrium`` the Nash equilibrium, ``competition_oblivious`` the
    equilibrium of the same game with :math:`\\gamma = 0`, ``no_generation`` zero and
    ``random`` uniform draws from ``rng``.
    """
    if strategy == "mechanism":
        sol = _optimum(game) if optimum is None else optimum
        return Decision(sol.s, sol)
    if strategy == "equilibrium":
        sol = _nash(game) if equilibrium is None else equilibrium
        return Decision(sol.s, sol)
    if strategy == "no_generation":
        return Decision(np.zeros(game.N), None)
    if strategy == "competition_oblivious":
        sol = _nash(game.replace(gamma=np.zeros(game.N)))
        return Decision(sol.s, sol)
    if strategy == "random":
        return Decision(rng.uniform(0.0, 1.0, game.N) * np.asarray(game.s_max, np.float64), None)
    raise ValueError(
        f"parameter 'strategy' must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
    )


def decide(strategy: str, game: RoundGame, rng: np.random.Generator) -> FloatArray:
    """Synthetic amounts of one round under ``strategy`` (see :func:`play`)."""
    return play(strategy, game, rng).s


# ---------------------------------------------------------------------------------------
# Participation
# ---------------------------------------------------------------------------------------


def _alone(game: RoundGame, i: int) -> tuple[float, float]:
    """Accuracy and synthetic amount of organisation ``i`` of ``game`` training alone."""
    if game.N != 1:
        n, h0 = np.asarray(game.n), np.asarray(game.h0)
        game = game.replace(
            n=n[i : i + 1], h0=h0[i : i + 1], theta=np.asarray(game.theta)[i : i + 1],
            gamma=0.0, c=np.asarray(game.c)[i : i + 1], s_max=np.asarray(game.s_max)[i : i + 1],
        )  # fmt: skip
    s = _nash(game).s
    return float(accuracies(game, s)[0]), float(s[0])


def standalone_utility(game: RoundGame, i: int, s: ArrayLike) -> float:
    r"""Utility of organisation ``i`` of ``game`` if it left the round alone.

    It trains on its own data plus the synthetic amount that is best for it alone (the
    one-organisation game's equilibrium), so its accuracy is
    :math:`P(n_i(1-h_i^0) + \kappa s_i^{alone}) - \mu h_i(s_i^{alone})`. Its rivals keep
    their amounts ``s`` and train without it, at effective data
    :math:`E(s) - n_i(1-h_i^0) - \kappa s_i`; it still loses :math:`\gamma_i` times their
    mean valued accuracy (the market competition does not end when it leaves):

    .. math:: o_i = \theta_i A_i^{alone} - \tfrac{\gamma_i}{N-1}\textstyle\sum_{j\ne i}
              \theta_j A_j^{-i} - c_i s_i^{alone}.

    Examples
    --------
    Two organisations without skew and no generation: the large one gains more alone
    than it keeps after its rivals' competition (hand computation in the tests).

    >>> from coopml.federated.game import AccuracyCurve
    >>> g = RoundGame(n=[100, 10], h0=[0.0, 0.0], theta=1.0, gamma=0.9, c=1.0,
    ...               kappa=1.0, mu=0.0, s_max=0.0, curve=AccuracyCurve(1.0, 1.0, 1.0))
    >>> round(standalone_utility(g, 0, [0.0, 0.0]), 6), round(standalone_utility(g, 1, [0.0, 0.0]), 6)
    (0.18, 0.009)
    """  # noqa: E501
    s_arr = np.asarray(s, dtype=np.float64)
    n = np.asarray(game.n, dtype=np.float64)
    h0 = np.asarray(game.h0, dtype=np.float64)
    theta = np.asarray(game.theta, dtype=np.float64)
    gamma = np.asarray(game.gamma, dtype=np.float64)
    c = np.asarray(game.c, dtype=np.float64)
    A_alone, s_alone = _alone(game, i)
    own = float(theta[i] * A_alone - c[i] * s_alone)
    if game.N == 1:
        return own
    rivals = np.arange(game.N) != i
    # at least one effective sample: the curve is not defined at E = 0
    E_rivals = max(
        float(np.sum(n[rivals] * (1.0 - h0[rivals])) + game.kappa * s_arr[rivals].sum()), 1.0
    )
    h_rivals = np.asarray(game.skew_map(s_arr[rivals], h0[rivals], n[rivals]), np.float64)
    A_rivals = float(game.curve(E_rivals)) - game.mu * h_rivals
    return own - float(gamma[i]) * float(np.mean(theta[rivals] * A_rivals))


# ---------------------------------------------------------------------------------------
# Plan and books
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class RoundPlan:
    r"""What the engine decided for one round, before training.

    Attributes
    ----------
    t : int
        Round index (0-based).
    sampled : ndarray of int
        Organisations sampled this round (sorted ids).
    members : ndarray of int
        The sampled organisations that take part (the others left for their outside
        option).
    game : RoundGame or None
        The game among the members (None when everyone left).
    equilibrium, optimum : GameSolution or None
    decision : Decision or None
    synthetic : ndarray of shape (len(members),)
        Amounts decided (continuous).
    synthetic_sent : ndarray of shape (len(members),)
        Amounts generated: ``synthetic`` rounded half up.
    outside : ndarray of shape (len(sampled),)
        Each sampled organisation's outside option at the end of the plan (NaN when
        participation is not modelled).
    market_offset : ndarray of shape (len(members),)
        Competition loss each member suffers from the organisations that left,
        :math:`\gamma_i \sum_{l} \theta_l A_l^{alone} / (S - 1)` over the ``S`` sampled;
        subtracted from its game utilities when booked (zero when nobody left).
    train_streams, generation_streams : list of numpy.random.Generator
        One per member.
    """

    t: int
    sampled: IntArray
    members: IntArray
    game: RoundGame | None
    equilibrium: GameSolution | None
    optimum: GameSolution | None
    decision: Decision | None
    synthetic: FloatArray
    synthetic_sent: FloatArray
    outside: FloatArray
    market_offset: FloatArray
    train_streams: list[np.random.Generator] = field(repr=False)
    generation_streams: list[np.random.Generator] = field(repr=False)


@dataclass(frozen=True, kw_only=True, eq=False)
class RoundRecord:
    """The books of one round (member arrays follow ``plan.members``).

    Attributes
    ----------
    plan : RoundPlan
    accuracy : float
        Validation accuracy of the round's global model (NaN without training).
    redistribution : Redistribution or None
        The transfers that implement the optimum (computed for every strategy, booked
        under ``"mechanism"`` only).
    transfers : ndarray
        Transfers booked.
    utilities_before : ndarray
        Game utilities :math:`u_i(s)` at the amounts decided.
    utilities_equilibrium : ndarray
        :math:`u_i(s^{NE})` of the round's game.
    utilities_measured : ndarray
        Utilities with the measured accuracy in place of :math:`P(E)` (NaN without one).
    shapley : ndarray or None
        The round's Shapley values of the reconstructed coalition models.
    max_deviation_gain : float or None
        The largest gain any member gets from a unilateral deviation from the amounts
        played, in the game it is paid in: under ``"mechanism"`` the utilities plus the
        per-sample transfers :math:`\\sigma_i s_i` (:func:`mechanism_deviation_gain`);
        otherwise the certificate of the solution played (``GameSolution.
        max_deviation_gain``; for ``competition_oblivious`` in the game with
        :math:`\\gamma = 0` it solves). None where no solution is played.
    optimum_welfare_gap : float or None
        ``"mechanism"`` only: the optimum's welfare certificate (the largest welfare gain
        from changing one member's amount, ``GameSolution.max_deviation_gain`` of the
        optimum).
    converged : bool or None
        Whether the solver converged and the certificates are within tolerance (under
        ``"mechanism"``: the optimum's, and ``max_deviation_gain`` at most
        :data:`CERTIFY_TOL` relative to ``max(1, max |u_i + t_i|)``). None where no
        solution is played.
    """

    plan: RoundPlan
    accuracy: float
    redistribution: Redistribution | None
    transfers: FloatArray
    utilities_before: FloatArray
    utilities_equilibrium: FloatArray
    utilities_measured: FloatArray
    shapley: FloatArray | None
    max_deviation_gain: float | None
    optimum_welfare_gap: float | None = None
    converged: bool | None = None

    @property
    def utilities_after(self) -> FloatArray:
        """Utilities plus transfers."""
        return np.asarray(self.utilities_before + self.transfers, dtype=np.float64)


def measured_utilities(game: RoundGame, s: FloatArray, acc: float) -> FloatArray:
    """Utilities with the measured accuracy ``acc`` of the round's model in place of P(E)
    (under the game's own competition model)."""
    return utilities(game, s, global_accuracy=acc)


def _pick(name: str, arr: FloatArray, ids: IntArray) -> FloatArray:
    """Entries of a per-organisation parameter for ``ids`` (a scalar applies to everyone)."""
    if arr.ndim == 0:
        return np.full(ids.size, float(arr))
    if ids.size and int(ids.max()) >= arr.size:
        raise ValueError(
            f"parameter '{name}' has {arr.size} entries but organisation {int(ids.max())} "
            "takes part; give one entry per organisation (by id) or a number"
        )
    return arr[ids]


class RoundEngine:
    """The round engine of one run of one strategy (stateful: it owns the run's streams).

    Parameters
    ----------
    strategy : str
        One of :data:`~coopml.federated.config.STRATEGIES`.
    theta, gamma, c, s_max : float or array-like indexed by organisation id
    kappa, mu : float
    curve : AccuracyModel
    skew_map : SkewMap, optional
        Default :class:`~coopml.federated.game.MixingSkew`.
    client_fraction : float in (0, 1], default 1.0
    beta : {"contribution", "equal", "shapley"}, default "contribution"
        Shares of the welfare gain in the redistribution; ``"shapley"`` needs the round's
        coalition values at :meth:`book`.
    outside_option : "none", "standalone", float or array-like, default "none"
        The participation rule: ``"none"`` keeps every sampled organisation in;
        ``"standalone"`` uses :func:`standalone_utility`; a number (or one per
        organisation id) is a configured outside option.
    competition : {"linear", "market"} or CompetitionModel, default "linear"
        How rivals' accuracy enters utility (``RoundGame(competition=...)``, see
        :mod:`coopml.federated.competition`).
    random_state : int, default 0

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve
    >>> eng = RoundEngine("equilibrium", theta=1.0, gamma=0.5, c=2e-4, s_max=300.0,
    ...                   kappa=0.9, mu=0.5, curve=AccuracyCurve(0.95, 0.9, 0.5),
    ...                   client_fraction=0.5, random_state=0)
    >>> plan = eng.plan(0, [0, 1, 2, 3], n=[100, 120, 80, 60], h0=[0.5, 0.2, 0.6, 0.3])
    >>> plan.members.tolist(), plan.synthetic.round(1).tolist()
    ([1, 2], [136.6, 282.9])
    >>> rec = eng.book(plan, accuracy=0.9)
    >>> bool(np.all(rec.transfers == 0)), rec.utilities_before.round(3).tolist()
    (True, [0.414, 0.356])
    """

    def __init__(
        self,
        strategy: str,
        *,
        theta: ArrayLike,
        gamma: ArrayLike,
        c: ArrayLike,
        s_max: ArrayLike,
        kappa: float,
        mu: float,
        curve: AccuracyModel,
        skew_map: SkewMap | None = None,
        client_fraction: float = 1.0,
        beta: str = "contribution",
        outside_option: OutsideOption = "none",
        competition: str | CompetitionModel = "linear",
        random_state: int = 0,
    ) -> None:
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.beta = check_choice("beta", beta, BETA_RULES)
        self.client_fraction = check_fraction("client_fraction", client_fraction, open_low=True)
        self.theta = self._param("theta", theta)
        self.gamma = self._param("gamma", gamma)
        self.c = self._param("c", c)
        self.s_max = self._param("s_max", s_max)
        self.kappa = float(kappa)
        self.mu = float(mu)
        self.curve = curve
        self.skew_map: SkewMap = MixingSkew() if skew_map is None else skew_map
        if isinstance(outside_option, str):
            self.outside_option: str | FloatArray = check_choice(
                "outside_option", outside_option, ("none", "standalone")
            )
        else:
            self.outside_option = self._param("outside_option", outside_option)
        self.competition = resolve(competition)
        self.streams = spawn_streams(random_state)

    @staticmethod
    def _param(name: str, value: ArrayLike) -> FloatArray:
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim > 1:
            raise ValueError(
                f"parameter '{name}' must be a number or one entry per organisation; "
                f"got shape {arr.shape}"
            )
        return per_org(name, arr.reshape(-1), arr.size).reshape(arr.shape)

    @property
    def needs_accounting(self) -> bool:
        """Whether :meth:`book` needs the round's Shapley values (``beta="shapley"``)."""
        return self.beta == "shapley"

    def game(
        self, ids: ArrayLike, n: ArrayLike, h0: ArrayLike, *, market: int | None = None
    ) -> RoundGame:
        """The round game among organisations ``ids`` with real counts ``n`` and skews ``h0``.

        ``market`` is the number of organisations competing in the round (the sampled
        ones, members or not; default ``len(ids)``). When some left, each member's
        competition intensity is scaled by ``(m - 1) / (market - 1)``: its utility's
        competition term is the mean over all ``market - 1`` rivals, of which the
        ``m - 1`` co-members depend on the game and the leavers add a constant
        (:attr:`RoundPlan.market_offset`).
        """
        idx = np.asarray(ids, dtype=np.intp)
        gamma = _pick("gamma", self.gamma, idx)
        if market is not None and market > idx.size:
            gamma = gamma * (idx.size - 1) / (market - 1)
        return RoundGame(
            n=n,
            h0=np.clip(np.asarray(h0, dtype=np.float64), 0.0, 1.0),
            theta=_pick("theta", self.theta, idx),
            gamma=gamma,
            c=_pick("c", self.c, idx),
            kappa=self.kappa,
            mu=self.mu,
            s_max=_pick("s_max", self.s_max, idx),
            curve=self.curve,
            skew_map=self.skew_map,
            competition=self.competition,
        )

    def _solve(self, game: RoundGame) -> tuple[GameSolution, GameSolution, Decision, FloatArray]:
        ne = _nash(game)
        opt = _optimum(game)
        decision = play(self.strategy, game, self.streams.random, equilibrium=ne, optimum=opt)
        u = utilities(game, decision.s)
        if self.strategy == "mechanism":
            # the shares are known ex ante under "contribution" and "equal"; under
            # "shapley" only after training, so members count on the guaranteed part
            # (their equilibrium payoff; beta >= 0)
            if self.beta == "shapley":
                u = ne.utilities
            else:
                beta = np.full(game.N, 1.0 / game.N) if self.beta == "equal" else None
                u = redistribution(game, beta, optimum=opt, equilibrium=ne).utilities_after
        return ne, opt, decision, u

    def plan(self, t: int, ids: ArrayLike, n: ArrayLike, h0: ArrayLike) -> RoundPlan:
        """Sample, solve, decide and apply the participation rule for round ``t``.

        Parameters
        ----------
        t : int
            Round index (0-based).
        ids : array-like of int
            The organisations available, sorted by id.
        n, h0 : array-like
            Their real sample counts and skews (aligned with ``ids``).
        """
        ids_arr = np.asarray(ids, dtype=np.intp)
        n_arr = np.asarray(n, dtype=np.float64)
        h0_arr = np.asarray(h0, dtype=np.float64)
        pos = sample_clients(ids_arr.size, self.client_fraction, self.streams.sample)
        sampled = ids_arr[pos]
        keep = pos.copy()
        participation = not (isinstance(self.outside_option, str) and self.outside_option == "none")
        solved: tuple[GameSolution, GameSolution, Decision, FloatArray] | None = None
        game: RoundGame | None = None
        outside = np.full(sampled.size, np.nan)
        offset = np.zeros(keep.size)
        while keep.size:
            game = self.game(ids_arr[keep], n_arr[keep], h0_arr[keep], market=pos.size)
            solved = self._solve(game)
            if not participation:
                break
            outside, offset = self._outside_of_sampled(ids_arr, n_arr, h0_arr, pos, keep, solved)
            # market utilities: the game's less the competition from those who left
            shortfall = outside[np.isin(pos, keep)] - (solved[3] - offset)
            worst = int(np.argmax(shortfall))
            if shortfall[worst] <= PARTICIPATION_TOL:
                break
            keep = np.delete(keep, worst)
            game = solved = None
        if participation and not keep.size:
            outside, offset = self._outside_of_sampled(ids_arr, n_arr, h0_arr, pos, keep, None)
        members = ids_arr[keep]
        if game is None or solved is None:
            empty = np.zeros(0)
            return RoundPlan(
                t=t, sampled=sampled, members=members, game=None, equilibrium=None,
                optimum=None, decision=None, synthetic=empty, synthetic_sent=empty,
                outside=outside, market_offset=offset, train_streams=[],
                generation_streams=[],
            )  # fmt: skip
        ne, opt, decision, _ = solved
        s = np.asarray(decision.s, dtype=np.float64)
        return RoundPlan(
            t=t,
            sampled=sampled,
            members=members,
            game=game,
            equilibrium=ne,
            optimum=opt,
            decision=decision,
            synthetic=s,
            synthetic_sent=np.floor(s + 0.5),
            outside=outside,
            market_offset=offset,
            train_streams=list(self.streams.train.spawn(members.size)),
            generation_streams=list(self.streams.generation.spawn(members.size)),
        )

    def _outside_of_sampled(
        self,
        ids: IntArray,
        n: FloatArray,
        h0: FloatArray,
        pos: IntArray,
        keep: IntArray,
        solved: tuple[GameSolution, GameSolution, Decision, FloatArray] | None,
    ) -> tuple[FloatArray, FloatArray]:
        """Every sampled organisation's outside option, and the members' market offsets.

        Every sampled organisation competes with every other (``S - 1`` rivals): the
        members at the federation's accuracy, the leavers at their standalone accuracy.
        A member's outside option is its standalone utility with the members and leavers
        as they are; a leaver's is its standalone utility.
        """
        S = pos.size
        leavers = [int(p) for p in pos if p not in keep]
        if not isinstance(self.outside_option, str):
            outside = _pick("outside_option", self.outside_option, ids[pos])
            # leavers' accuracy alone, for the members' competition term
            alone_valued = [
                float(_pick("theta", self.theta, ids[[q]])[0])
                * _alone(self.game(ids[[q]], n[[q]], h0[[q]]), 0)[0]
                for q in leavers
            ]
            offset = _pick("gamma", self.gamma, ids[keep]) * sum(alone_valued) / max(S - 1, 1)
            return outside, offset
        s_members = np.zeros(0) if solved is None else np.asarray(solved[2].s, np.float64)
        members = self.game(ids[keep], n[keep], h0[keep], market=S) if keep.size else None
        valued = (
            np.zeros(0)
            if members is None
            else np.asarray(members.theta) * accuracies(members, s_members)
        )
        alone = {p: _alone(self.game(ids[[p]], n[[p]], h0[[p]]), 0) for p in leavers}
        theta_of = {p: float(_pick("theta", self.theta, ids[[p]])[0]) for p in leavers}
        L = sum(theta_of[q] * alone[q][0] for q in leavers)
        offset = _pick("gamma", self.gamma, ids[keep]) * L / max(S - 1, 1)
        out = np.empty(S)
        for k, p in enumerate(pos):
            if members is not None and p in keep:
                at = int(np.flatnonzero(keep == p)[0])
                out[k] = standalone_utility(members, at, s_members) - offset[at]
                continue
            A_p, s_p = alone[int(p)]
            gamma, c = (
                float(_pick(name, arr, ids[[p]])[0])
                for name, arr in (("gamma", self.gamma), ("c", self.c))
            )
            rivals = float(valued.sum()) + L - theta_of[int(p)] * A_p
            loss = gamma * rivals / (S - 1) if S > 1 else 0.0
            out[k] = theta_of[int(p)] * A_p - c * s_p - loss
        return out, offset

    def book(
        self,
        plan: RoundPlan,
        accuracy: float = float("nan"),
        *,
        shapley: ArrayLike | None = None,
    ) -> RoundRecord:
        """Book round ``plan`` after training: transfers, utilities, certificate.

        Parameters
        ----------
        plan : RoundPlan
        accuracy : float
            Measured validation accuracy of the round's model (NaN without training).
        shapley : array-like of shape (len(plan.members),), optional
            The round's Shapley values (needed with ``beta="shapley"``).
        """
        m = plan.members.size
        phi = None if shapley is None else np.asarray(shapley, dtype=np.float64)
        if plan.game is None or plan.equilibrium is None or plan.optimum is None:
            empty = np.zeros(0)
            return RoundRecord(
                plan=plan, accuracy=accuracy, redistribution=None, transfers=empty,
                utilities_before=empty, utilities_equilibrium=empty,
                utilities_measured=empty, shapley=phi, max_deviation_gain=None,
            )  # fmt: skip
        game = plan.game
        if self.beta == "shapley":
            if phi is None:
                raise ValueError(
                    "beta='shapley' needs the round's Shapley values (contribution accounting "
                    "of trained coalition models); train the round or choose beta="
                    "'contribution' or 'equal'"
                )
            beta: FloatArray | None = shapley_shares(phi)
        elif self.beta == "equal":
            beta = np.full(m, 1.0 / m)
        else:
            beta = None
        red = redistribution(game, beta, optimum=plan.optimum, equilibrium=plan.equilibrium)
        booked = red.transfers if self.strategy == "mechanism" else np.zeros(m)
        measured = (
            np.full(m, np.nan)
            if math.isnan(accuracy)
            else measured_utilities(game, plan.synthetic, float(accuracy)) - plan.market_offset
        )
        solution = plan.decision.solution if plan.decision else None
        certificate = getattr(solution, "max_deviation_gain", None)
        converged = getattr(solution, "converged", None)
        gap = None
        if self.strategy == "mechanism":
            gap = certificate
            certificate = mechanism_deviation_gain(game, red)
            after = np.abs(utilities(game, plan.synthetic) + booked)
            converged = bool(
                plan.optimum.converged
                and certificate <= CERTIFY_TOL * max(1.0, float(after.max(initial=0.0)))
            )
        return RoundRecord(
            plan=plan,
            accuracy=float(accuracy),
            redistribution=red,
            transfers=booked,
            utilities_before=utilities(game, plan.synthetic) - plan.market_offset,
            utilities_equilibrium=plan.equilibrium.utilities - plan.market_offset,
            utilities_measured=measured,
            shapley=phi,
            max_deviation_gain=None if certificate is None else float(certificate),
            optimum_welfare_gap=None if gap is None else float(gap),
            converged=None if converged is None else bool(converged),
        )


def mechanism_deviation_gain(game: RoundGame, red: Redistribution) -> float:
    r"""The largest unilateral deviation gain from the optimum with the transfers in place.

    The mechanism pays organisation :math:`i` the transfer :math:`\sigma_i s_i - L_i`
    (:func:`~coopml.federated.redistribution.redistribution`), so the game it plays is
    :math:`u_i(s) + \sigma_i s_i - L_i`; the lump sum :math:`L_i` does not depend on the
    amounts. Returns :math:`\max_i [\max_x u_i(x, s^{SW}_{-i}) + \sigma_i x -
    u_i(s^{SW}) - \sigma_i s_i^{SW}]`
    (:func:`~coopml.federated.equilibrium.deviation_gains` with ``sigma``): about 0 when
    the transfers make the optimum an equilibrium.

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> red = redistribution(g)
    >>> bool(deviation_gains(g, red.s_optimum).max() > 1e-4)   # no transfers: not stable
    True
    >>> mechanism_deviation_gain(g, red) < 1e-9                # with them: an equilibrium
    True
    """
    return float(deviation_gains(game, red.s_optimum, sigma=red.sigma).max(initial=0.0))


# ---------------------------------------------------------------------------------------
# Ledger
# ---------------------------------------------------------------------------------------


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
        Organisations that took part (trained) in each round.
    sampled : ndarray of bool
        Organisations sampled in each round (``participants`` plus those that left).
    utilities_before : ndarray
        Game utilities :math:`u_i(s^t)` without transfers; an organisation that left is
        booked at its outside option.
    transfers : ndarray
        Net transfers received (mechanism only; each row sums to 0).
    utilities_after : ndarray
        ``utilities_before + transfers``.
    utilities_equilibrium : ndarray
        Game utilities at the round's Nash equilibrium (the no-mechanism benchmark);
        the outside option for an organisation that left.
    utilities_measured : ndarray
        Utilities with the measured accuracy in place of :math:`P(E)` (before transfers;
        the outside option for an organisation that left).
    skew_after : ndarray
        Measured label skew of each participant's real + synthetic training set.
    outside_option : ndarray
        Each sampled organisation's outside option (NaN when not modelled).
    max_deviation_gain_per_round : ndarray of shape (rounds,)
        The largest unilateral deviation gain in each round
        (:attr:`RoundRecord.max_deviation_gain`: with the transfers in place under
        ``"mechanism"``; NaN where no solution is played).
    optimum_welfare_gap_per_round : ndarray of shape (rounds,)
        ``"mechanism"``: the optimum's welfare certificate in each round (NaN otherwise).
    converged_per_round : ndarray of shape (rounds,)
        1.0 where the round's solution converged with its certificates within
        tolerance, 0.0 where not, NaN where no solution was played
        (:attr:`RoundRecord.converged`).
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
    sampled: NDArray[np.bool_] | None = None
    outside_option: FloatArray | None = None
    max_deviation_gain_per_round: FloatArray | None = None
    optimum_welfare_gap_per_round: FloatArray | None = None
    converged_per_round: FloatArray | None = None

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
    def participation_per_round(self) -> FloatArray:
        """Share of the sampled organisations that took part, per round."""
        sampled = self.participants if self.sampled is None else self.sampled
        return np.asarray(
            self.participants.sum(axis=1) / np.maximum(sampled.sum(axis=1), 1), dtype=np.float64
        )

    @property
    def max_deviation_gain(self) -> float | None:
        """Worst certificate over the rounds (None where the game reports none)."""
        gains = self.max_deviation_gain_per_round
        if gains is None or not np.any(np.isfinite(gains)):
            return None
        return float(np.nanmax(gains))

    @property
    def optimum_welfare_gap(self) -> float | None:
        """Worst welfare certificate of the optimum over the rounds (mechanism only)."""
        gaps = self.optimum_welfare_gap_per_round
        if gaps is None or not np.any(np.isfinite(gaps)):
            return None
        return float(np.nanmax(gaps))

    @property
    def converged(self) -> bool | None:
        """True when every round's solution converged with its certificates within
        tolerance; None when no round played a solution."""
        flags = self.converged_per_round
        if flags is None or not np.any(np.isfinite(flags)):
            return None
        return bool(np.all(flags[np.isfinite(flags)] == 1.0))

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

        def clean(x: FloatArray | None) -> list[float | None] | None:
            return None if x is None else [None if np.isnan(v) else float(v) for v in x]

        return to_jsonable(
            {
                "social_welfare": self.social_welfare,
                "social_welfare_measured": self.social_welfare_measured,
                "final_accuracy": None if np.isnan(self.final_accuracy) else self.final_accuracy,
                "synthetic_per_round": self.synthetic_per_round,
                "accuracy_per_round": clean(self.accuracy_per_round),
                "participation_per_round": self.participation_per_round,
                "participants_per_round": self.participants.sum(axis=1),
                "max_deviation_gain": self.max_deviation_gain,
                "max_deviation_gain_per_round": clean(self.max_deviation_gain_per_round),
                "optimum_welfare_gap": self.optimum_welfare_gap,
                "converged": self.converged,
                "synthetic": self.synthetic,
                "participants": self.participants,
                "sampled": self.participants if self.sampled is None else self.sampled,
                "outside_option": None
                if self.outside_option is None
                else [clean(row) for row in self.outside_option],
                "utilities_before": self.utilities_before,
                "transfers": self.transfers,
                "utilities_after": self.utilities_after,
                "utilities_equilibrium": self.utilities_equilibrium,
                "utilities_measured": self.utilities_measured,
                "skew_after": [clean(row) for row in self.skew_after],
                "transfers_sum": self.transfers_sum,
                "individually_rational": self.individually_rational,
            }
        )


class Ledger:
    """Collects :class:`RoundRecord` objects into a :class:`StrategyResult`.

    Parameters
    ----------
    name : str
        The strategy.
    rounds : int
    n_organisations : int
    """

    def __init__(self, name: str, rounds: int, n_organisations: int) -> None:
        shape = (rounds, n_organisations)
        self.name = name
        self.accuracy = np.full(rounds, np.nan)
        self.synthetic, self.before, self.transfers, self.eq_u = (np.zeros(shape) for _ in range(4))
        self.measured = np.zeros(shape)
        self.skew_after = np.full(shape, np.nan)
        self.outside = np.full(shape, np.nan)
        self.present = np.zeros(shape, dtype=bool)
        self.sampled = np.zeros(shape, dtype=bool)
        self.certificate = np.full(rounds, np.nan)
        self.welfare_gap = np.full(rounds, np.nan)
        self.converged = np.full(rounds, np.nan)

    def add(self, record: RoundRecord, skew_after: ArrayLike | None = None) -> None:
        """Book one round (``skew_after``: measured skew of each member's training set)."""
        plan = record.plan
        t, part = plan.t, plan.members
        self.accuracy[t] = record.accuracy
        self.sampled[t, plan.sampled] = True
        self.present[t, part] = True
        self.synthetic[t, part] = plan.synthetic
        self.before[t, part] = record.utilities_before
        self.transfers[t, part] = record.transfers
        self.eq_u[t, part] = record.utilities_equilibrium
        self.measured[t, part] = record.utilities_measured
        self.outside[t, plan.sampled] = plan.outside
        left = np.setdiff1d(plan.sampled, part)
        if left.size:  # booked at their outside option
            o = plan.outside[np.searchsorted(plan.sampled, left)]
            self.before[t, left] = self.eq_u[t, left] = self.measured[t, left] = o
        if skew_after is not None:
            self.skew_after[t, part] = np.asarray(skew_after, dtype=np.float64)
        if record.max_deviation_gain is not None:
            self.certificate[t] = record.max_deviation_gain
        if record.optimum_welfare_gap is not None:
            self.welfare_gap[t] = record.optimum_welfare_gap
        if record.converged is not None:
            self.converged[t] = float(record.converged)

    def result(self) -> StrategyResult:
        """The strategy's per-round record."""
        return StrategyResult(
            name=self.name,
            accuracy_per_round=self.accuracy.copy(),
            synthetic=self.synthetic.copy(),
            participants=self.present.copy(),
            utilities_before=self.before.copy(),
            transfers=self.transfers.copy(),
            utilities_after=self.before + self.transfers,
            utilities_equilibrium=self.eq_u.copy(),
            utilities_measured=self.measured.copy(),
            skew_after=self.skew_after.copy(),
            sampled=self.sampled.copy(),
            outside_option=self.outside.copy(),
            max_deviation_gain_per_round=self.certificate.copy(),
            optimum_welfare_gap_per_round=self.welfare_gap.copy(),
            converged_per_round=self.converged.copy(),
        )
