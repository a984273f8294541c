r"""Reference games with exact Shapley and Banzhaf values at 20 to 1,000 players.

A Monte Carlo estimator is checked by its *coverage*: how often the interval
:math:`\hat\varphi_i \pm 1.96\,\widehat{\operatorname{se}}_i` holds the true value.
That needs games whose values are known exactly at sizes where a value table
(:class:`~coopml.coalitions.CoalitionGame`, :math:`2^n` entries) cannot be built.
Each :class:`ReferenceGame` here pairs a vectorised characteristic function with its
Shapley value :math:`\varphi` and its (raw) Banzhaf value

.. math::

    \beta_i = \frac{1}{2^{n-1}} \sum_{S \subseteq N \setminus \{i\}}
        \bigl(v(S \cup \{i\}) - v(S)\bigr),

computed by counting, dynamic programming or closed forms, never by enumeration:

- :func:`weighted_voting_reference`: :math:`v(S) = [w(S) \ge q]` with integer weights.
  A swing of :math:`i` is a coalition with :math:`q - w_i \le w(S) < q`; by Owen's
  multilinear extension (1972),

  .. math::

      \varphi_i = \int_0^1 \Pr\nolimits_p\bigl(q - w_i \le w(S) < q\bigr)\,dp, \qquad
      \beta_i = \Pr\nolimits_{1/2}\bigl(q - w_i \le w(S) < q\bigr),

  with :math:`S \subseteq N \setminus \{i\}` holding each player independently with
  probability :math:`p`. The integrand is a polynomial of degree :math:`n - 1`, so
  Gauss-Legendre quadrature with :math:`\lfloor n/2 \rfloor + 1` nodes is exact; at each
  node the distribution of :math:`w(S)` comes from a dynamic programme over the weights
  (only sums of positive terms), and player :math:`i` is removed from it by
  deconvolution from :math:`t = 0` up, stable for :math:`p \le 1/2`; the nodes
  :math:`1 - p` are read off the complements (the nodes are symmetric). Cost about
  :math:`n^2 w(N) / 8` flops (5 s at 1,000 players with weights up to 10); relative
  error about :math:`10^{-15}` against exact integer counts at 51, 70 and 200 players.
  :func:`castro_voting_reference` is the 51-player game of Castro, Gómez & Tejada
  (2009).
- :func:`symmetric_voting_reference`: all weights 1; :math:`\varphi_i = 1/n`,
  :math:`\beta_i = \binom{n-1}{q-1} / 2^{n-1}`.
- :func:`glove_reference`: :math:`v(S) = \min(|S \cap L|, |S \cap R|)`; a left glove's
  marginal is 1 iff the coalition holds more right than left gloves, counted exactly
  with integer binomials.
- :func:`airport_reference`: the cost game :math:`c(S) = \max_{i \in S} c_i` (as
  :func:`~coopml.coalitions.games.airport_game`); Shapley by Littlechild & Owen (1973),
  and with sorted costs :math:`c_{(1)} \le \dots \le c_{(n)}`, :math:`c_{(0)} = 0`, the
  player in position :math:`j` has
  :math:`\beta = \sum_{k \le j} (c_{(k)} - c_{(k-1)})\, 2^{-(n-k)}` (a runway segment is
  paid by :math:`i` when none of the :math:`n - k` others who need it is present).
- :func:`miner_reference`: :math:`v(S) = \lfloor |S|/2 \rfloor` (pairs of miners carry a
  gold bar, as pyDVL's ``MinerGame``); :math:`\varphi_i = \lfloor n/2 \rfloor / n`,
  :math:`\beta_i = 1/2` (a marginal is 1 iff :math:`|S|` is odd).
- :func:`additive_reference`: :math:`v(S) = \sum_{i \in S} w_i`; both values are
  :math:`w`.
- :func:`harsanyi_reference`: :math:`v(S) = b + \sum_{i \in S} a_i +
  \sum_k c_k [T_k \subseteq S]`, a game given by its Harsanyi dividends on small
  carriers (signed: non-monotone); :math:`\varphi_i = a_i + \sum_{k: i \in T_k} c_k/|T_k|`,
  :math:`\beta_i = a_i + \sum_{k: i \in T_k} c_k / 2^{|T_k| - 1}` (Shapley 1953).
  :func:`random_harsanyi_reference` draws one, with :math:`v(\varnothing) = b \ne 0`
  if asked.

:func:`reference_suite` returns these games at given sizes; :func:`coverage` runs one
estimator on one game and measures the coverage of its intervals, the efficiency gap
against its standard error, the evaluations it used and its time (the harness of
``benchmarks/bench_coverage.py`` and ``tests/coalitions/test_estimator_coverage.py``).

Coalitions are addressed as the estimators address them: ``evaluate_masks`` takes
``int64`` bitmasks (player ``i`` is bit ``i``, at most 62 players) or a 1-D object
array of Python ints (any number of players).

References
----------
J. Castro, D. Gómez and J. Tejada, "Polynomial calculation of the Shapley value based on
sampling", Computers & Operations Research 36(5) (2009), pp. 1726-1730.
G. Owen, "Multilinear extensions of games", Management Science 18(5) (1972), pp. 64-79.
S. C. Littlechild and G. Owen, "A simple expression for the Shapley value in a special
case", Management Science 20(3) (1973), pp. 370-372.
L. S. Shapley, "A value for n-person games", in Contributions to the Theory of Games II,
Annals of Mathematics Studies 28 (1953), pp. 307-317.
J. F. Banzhaf III, "Weighted voting doesn't work: a mathematical analysis", Rutgers Law
Review 19 (1965), pp. 317-343.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._bitmask import MAX_MASK_PLAYERS, decode_masks
from coopml._validation import RandomState, check_int, check_names, check_random_state
from coopml.coalitions.game import CoalitionGame
from coopml.coalitions.games import _check_vector as check_player_vector
from coopml.coalitions.games import airport_shapley
from coopml.coalitions.result import ValuationResult
from coopml.coalitions.stopping import MaxEvaluations

__all__ = [
    "CASTRO_QUOTA",
    "CASTRO_WEIGHTS",
    "ESTIMATOR_TARGETS",
    "CoverageResult",
    "ReferenceGame",
    "additive_reference",
    "airport_reference",
    "castro_airport_costs",
    "castro_voting_reference",
    "coverage",
    "glove_reference",
    "harsanyi_reference",
    "masks_to_membership",
    "miner_reference",
    "random_harsanyi_reference",
    "reference_suite",
    "symmetric_voting_reference",
    "weighted_voting_reference",
]

#: Most players for which :meth:`ReferenceGame.to_game` builds the full table.
MAX_TABLE_PLAYERS = 20

#: Weights of the 51-player weighted voting game of Castro, Gómez & Tejada (2009, §4.2):
#: the electoral votes of the 50 states and DC in the 1970s (538 in all), in decreasing
#: order, as in the list the paper's experiments use (independent replication codes in
#: MATLAB, R and Python agree on it). It has four 9s, two 8s and four 7s where the official
#: 1972-1980 apportionment has three, four and three; player 0's Shapley value is
#: 0.0883094 with this list and 0.0883101 with the official one (0.08831 in the paper).
CASTRO_WEIGHTS: tuple[int, ...] = (
    45, 41, 27, 26, 26, 25, 21, 17, 17, 14, 13, 13, 12, 12, 12, 11, 10, 10, 10, 10,
    9, 9, 9, 9, 8, 8, 7, 7, 7, 7, 6, 6, 6, 6, 5, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 3,
)  # fmt: skip
#: Quota of the Castro et al. game: a coalition wins with more than half of 538 votes.
CASTRO_QUOTA = 270

Kernel = Callable[[NDArray[np.bool_]], NDArray[np.float64]]


# ---------------------------------------------------------------------------- the game
@dataclass(frozen=True, eq=False)
class ReferenceGame:
    """A TU game with a vectorised characteristic function and exact values.

    Build one with the constructors of this module (e.g.
    :func:`weighted_voting_reference`); the class only checks shapes.

    Parameters
    ----------
    name : str
        Short label of the game family, e.g. ``"weighted_voting"``.
    names : tuple of str
        Player names; their number is ``n_players``.
    shapley : ndarray of shape (n_players,)
        Exact Shapley value.
    banzhaf : ndarray of shape (n_players,)
        Exact raw Banzhaf value (mean marginal over the coalitions of the others).
    kernel : callable
        ``kernel(membership) -> values``: a boolean array of shape ``(k, n_players)``
        (row ``r``: who is in coalition ``r``) to the ``k`` coalition values.
    params : mapping, optional
        The game's parameters (for reports).

    Attributes
    ----------
    grand_value, empty_value : float
        :math:`v(N)` and :math:`v(\\varnothing)`.

    Examples
    --------
    >>> game = symmetric_voting_reference(5, quota=3)
    >>> game
    ReferenceGame('symmetric_voting', n_players=5)
    >>> game(frozenset({0, 1, 2})), game(frozenset({0, 4}))
    (1.0, 0.0)
    >>> game.evaluate_masks(np.array([0b00111, 0b10001])).tolist()
    [1.0, 0.0]
    >>> game.shapley.tolist(), game.banzhaf.tolist()[0]
    ([0.2, 0.2, 0.2, 0.2, 0.2], 0.375)
    >>> bool(np.allclose(game.to_game().banzhaf().values, game.banzhaf))
    True
    """

    name: str
    names: tuple[str, ...]
    shapley: NDArray[np.float64]
    banzhaf: NDArray[np.float64]
    kernel: Kernel = field(repr=False)
    params: Mapping[str, Any] = field(default_factory=dict)
    grand_value: float = field(init=False)
    empty_value: float = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"parameter 'name' must be a non-empty string; got {self.name!r}")
        n = len(tuple(self.names))
        if n < 1:
            raise ValueError("parameter 'names' must name at least one player; got none")
        object.__setattr__(self, "names", check_names("names", self.names, n))
        for label in ("shapley", "banzhaf"):
            values = np.array(getattr(self, label), dtype=np.float64)
            if values.shape != (n,) or not np.all(np.isfinite(values)):
                raise ValueError(
                    f"parameter '{label}' must be a finite array of shape ({n},); "
                    f"got shape {values.shape}"
                )
            values.setflags(write=False)
            object.__setattr__(self, label, values)
        if not callable(self.kernel):
            raise TypeError(
                "parameter 'kernel' must be callable (bool array (k, n) -> values); "
                f"got {type(self.kernel).__name__}"
            )
        object.__setattr__(self, "params", dict(self.params))
        ends = self._values(np.array([np.zeros(n, bool), np.ones(n, bool)]))
        object.__setattr__(self, "empty_value", float(ends[0]))
        object.__setattr__(self, "grand_value", float(ends[1]))

    def __repr__(self) -> str:
        return f"ReferenceGame({self.name!r}, n_players={self.n_players})"

    @property
    def n_players(self) -> int:
        """Number of players ``n``."""
        return len(self.names)

    # ------------------------------------------------------------------ evaluation
    def __call__(self, coalition: Iterable[int]) -> float:
        """Value of a coalition given as player indices (e.g. a ``frozenset[int]``)."""
        n = self.n_players
        row = np.zeros((1, n), dtype=bool)
        for i in coalition:
            row[0, check_int("coalition", i, minimum=0, maximum=n - 1)] = True
        return float(self._values(row)[0])

    def evaluate_membership(self, membership: ArrayLike) -> NDArray[np.float64]:
        """Values of coalitions given as a boolean membership matrix.

        Parameters
        ----------
        membership : array-like of bool, shape (k, n_players)
            ``membership[r, i]``: whether player ``i`` is in coalition ``r``.

        Returns
        -------
        ndarray of shape (k,)

        Examples
        --------
        >>> miner_reference(4).evaluate_membership([[True, True, True, False]]).tolist()
        [1.0]
        """
        member = np.asarray(membership)
        if member.ndim != 2 or member.shape[1] != self.n_players or member.dtype != np.bool_:
            raise ValueError(
                f"parameter 'membership' must be a boolean array of shape (k, {self.n_players}); "
                f"got shape {member.shape}, dtype {member.dtype}"
            )
        return self._values(member)

    def evaluate_masks(self, masks: ArrayLike) -> NDArray[np.float64]:
        """Values of coalitions given as bitmasks (player ``i`` is bit ``i``).

        Parameters
        ----------
        masks : ndarray of shape (k,)
            ``int64`` bitmasks (at most 62 players) or an object array of Python ints
            (any number of players).

        Returns
        -------
        ndarray of float64, shape (k,)

        Examples
        --------
        >>> game = additive_reference([1.0, 2.0, 4.0])
        >>> game.evaluate_masks(np.array([0, 3, 7])).tolist()
        [0.0, 3.0, 7.0]
        >>> game.evaluate_masks(np.array([5], dtype=object)).tolist()
        [5.0]
        """
        return self._values(masks_to_membership(masks, self.n_players))

    def _values(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        values = np.asarray(self.kernel(member), dtype=np.float64)
        if values.shape != (member.shape[0],):  # pragma: no cover - kernels are ours
            raise RuntimeError(f"kernel returned shape {values.shape} for {member.shape[0]} rows")
        return values

    # ------------------------------------------------------------------ cross-checks
    def to_game(self) -> CoalitionGame:
        """The full value table as a :class:`~coopml.coalitions.CoalitionGame` (n <= 20).

        Examples
        --------
        >>> airport_reference([1.0, 3.0]).to_game().table.tolist()
        [0.0, 1.0, 3.0, 3.0]
        """
        n = self.n_players
        if n > MAX_TABLE_PLAYERS:
            raise ValueError(
                f"to_game builds 2**n_players values, so n_players must be at most "
                f"{MAX_TABLE_PLAYERS}; this game has {n}"
            )
        chunk = 1 << 16
        table = np.concatenate(
            [
                self.evaluate_masks(np.arange(start, min(start + chunk, 1 << n), dtype=np.int64))
                for start in range(0, 1 << n, chunk)
            ]
        )
        return CoalitionGame(table, names=self.names, info={"reference_game": self.name})

    def truth(self, target: Literal["shapley", "banzhaf"]) -> NDArray[np.float64]:
        """The exact value named ``target``."""
        if target == "shapley":
            return self.shapley
        if target == "banzhaf":
            return self.banzhaf
        raise ValueError(f"parameter 'target' must be 'shapley' or 'banzhaf'; got {target!r}")


def masks_to_membership(masks: ArrayLike, n_players: int) -> NDArray[np.bool_]:
    """Boolean membership matrix ``(k, n_players)`` of bitmasks (bit ``i``: player ``i``).

    Parameters
    ----------
    masks : ndarray of shape (k,)
        Integer bitmasks (``n_players <= 62``) or an object array of Python ints.
    n_players : int

    Examples
    --------
    >>> masks_to_membership(np.array([5, 2]), 3).astype(int).tolist()
    [[1, 0, 1], [0, 1, 0]]
    >>> masks_to_membership(np.array([1 << 69], dtype=object), 70)[0, 69]
    np.True_
    """
    arr = np.asarray(masks)
    n = n_players
    if arr.ndim != 1:
        raise ValueError(f"parameter 'masks' must be 1-D; got shape {arr.shape}")
    if arr.dtype != object and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(
            "parameter 'masks' must be an int64 array or an object array of Python ints; "
            f"got dtype {arr.dtype}"
        )
    if arr.dtype != object and n > MAX_MASK_PLAYERS:
        raise ValueError(
            f"int64 bitmasks address at most {MAX_MASK_PLAYERS} players; this game has {n}: "
            "pass a 1-D object array of Python ints"
        )
    bad = [m for m in arr.tolist() if not isinstance(m, int) or not 0 <= m < 1 << n]
    if bad:
        raise ValueError(f"parameter 'masks' must hold integers in [0, 2**{n}); got {bad[0]!r}")
    return decode_masks(arr, n)


# ---------------------------------------------------------------------------- kernels
# Small picklable callables (membership -> values), so that games cross process borders.
@dataclass(frozen=True, eq=False)
class _Threshold:
    weights: NDArray[np.float64]
    quota: float

    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        return (member @ self.weights >= self.quota).astype(np.float64)


@dataclass(frozen=True, eq=False)
class _SizeThreshold:
    quota: int

    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        return (member.sum(axis=1) >= self.quota).astype(np.float64)


@dataclass(frozen=True, eq=False)
class _Glove:
    n_left: int

    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        left = member[:, : self.n_left].sum(axis=1)
        right = member[:, self.n_left :].sum(axis=1)
        return np.minimum(left, right).astype(np.float64)


@dataclass(frozen=True, eq=False)
class _Airport:
    costs: NDArray[np.float64]

    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        return np.where(member, self.costs, 0.0).max(axis=1)


@dataclass(frozen=True, eq=False)
class _Miner:
    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        return (member.sum(axis=1) // 2).astype(np.float64)


@dataclass(frozen=True, eq=False)
class _Harsanyi:
    baseline: float
    additive: NDArray[np.float64]
    carriers: NDArray[np.intp]  # (K, max size), short carriers padded with their first member
    coefficients: NDArray[np.float64]

    def __call__(self, member: NDArray[np.bool_]) -> NDArray[np.float64]:
        values = self.baseline + member @ self.additive
        if self.coefficients.size:
            values = values + member[:, self.carriers].all(axis=2) @ self.coefficients
        return np.asarray(values, dtype=np.float64)


def _make(
    name: str,
    names: Sequence[str],
    shapley: ArrayLike,
    banzhaf: ArrayLike,
    kernel: Kernel,
    **params: Any,
) -> ReferenceGame:
    return ReferenceGame(
        name=name,
        names=tuple(names),
        shapley=np.asarray(shapley, dtype=np.float64),
        banzhaf=np.asarray(banzhaf, dtype=np.float64),
        kernel=kernel,
        params=params,
    )


def _default_names(n: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(n))


def _check_vector(name: str, values: ArrayLike, *, nonnegative: bool = False) -> NDArray[Any]:
    """One finite entry per player, any number of players (see :mod:`coopml.coalitions.games`)."""
    return check_player_vector(name, values, nonnegative=nonnegative, max_size=None)


# ---------------------------------------------------------------------------- voting
def weighted_voting_reference(
    weights: ArrayLike, quota: int, *, names: Sequence[str] | None = None
) -> ReferenceGame:
    """Weighted voting (majority) game ``[q; w_1, ..., w_n]`` with exact values.

    A coalition wins (worth 1) iff its total weight reaches the quota. Values by Owen's
    multilinear extension with exact Gauss-Legendre quadrature (module docstring).

    Parameters
    ----------
    weights : array-like of int, shape (n,)
        Non-negative integer weights.
    quota : int
        ``1 <= quota <= sum(weights)``.
    names : sequence of str, optional

    Returns
    -------
    ReferenceGame
        ``name="weighted_voting"``.

    Examples
    --------
    >>> game = weighted_voting_reference([2, 1, 1], quota=3)
    >>> game.shapley.round(4).tolist(), game.banzhaf.tolist()
    ([0.6667, 0.1667, 0.1667], [0.75, 0.25, 0.25])
    """
    w = _check_vector("weights", weights, nonnegative=True)
    if not np.all(w == np.round(w)) or w.max() > 2**40:
        raise ValueError(f"parameter 'weights' must hold integers; got {w.tolist()[:10]}")
    w_int = w.astype(np.int64)
    total = int(w_int.sum())
    q = check_int("quota", quota, minimum=1, maximum=max(total, 1))
    if total < 1:
        raise ValueError("parameter 'weights' must have a positive sum; got all zeros")
    n = w_int.size
    shapley, banzhaf = _voting_values(w_int, q)
    return _make(
        "weighted_voting",
        _default_names(n) if names is None else names,
        shapley,
        banzhaf,
        _Threshold(w_int.astype(np.float64), float(q)),
        weights=w_int.tolist(),
        quota=q,
    )


def castro_voting_reference() -> ReferenceGame:
    """The 51-player weighted voting game of Castro, Gómez & Tejada (2009, §4.2).

    Weights :data:`CASTRO_WEIGHTS` (the 1970s electoral college as printed in the
    paper, 538 votes) and quota 270; player 0 (45 votes) has Shapley value
    0.0883094 (0.08831 in the paper).

    Returns
    -------
    ReferenceGame
        ``name="castro_voting"``.

    Examples
    --------
    >>> game = castro_voting_reference()
    >>> game.n_players, round(float(game.shapley[0]), 7), round(float(game.banzhaf[0]), 7)
    (51, 0.0883094, 0.3793656)
    """
    game = weighted_voting_reference(CASTRO_WEIGHTS, CASTRO_QUOTA)
    return _make(
        "castro_voting", game.names, game.shapley, game.banzhaf, game.kernel, **game.params
    )


def _voting_values(
    weights: NDArray[np.int64], quota: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact Shapley and Banzhaf values of ``[quota; weights]`` (multilinear extension)."""
    from scipy.special import roots_legendre

    m = weights.size // 2 + 1  # nodes: exact for polynomials of degree <= 2m - 1 >= n - 1
    x, gl = roots_legendre(m)
    k = m // 2  # nodes x[:k] < 0 mirror x[m-k:] > 0; x[k] = 0 when m is odd
    p = np.concatenate([(x[:k] + 1.0) / 2.0, [0.5]])
    at_p, at_mirror = _swing_probabilities(weights, quota, p)
    node_weights = (gl[:k] + gl[::-1][:k]) / 4.0  # the two mirrored weights, on [0, 1]
    shapley = node_weights @ (at_p[:k] + at_mirror[:k])
    if m % 2:
        shapley = shapley + gl[k] / 2.0 * at_p[k]
    return shapley, at_p[k]


def _swing_probabilities(
    weights: NDArray[np.int64], quota: int, p: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Swing probabilities of every player at ``p <= 1/2`` and at ``1 - p``.

    ``P_p(quota - w_i <= w(S) < quota)`` for ``S`` random in ``N - i`` (each player in
    with probability ``p``), shape (len(p), n); at ``1 - p`` it is the probability that
    the complement ``T = N - i - S`` (each in with probability ``p``) has
    ``W - w_i - quota < w(T) <= W - quota``.
    """
    total = int(weights.sum())
    size = max(quota, total - quota + 1)  # the sums w(S) < size are needed
    P, Q = p[:, None], 1.0 - p[:, None]
    f = np.zeros((p.size, size))  # f[k, t] = P_{p_k}(w(S) = t), S random in N
    f[:, 0] = 1.0
    for w in weights[weights > 0].tolist():
        shifted = P * f[:, : max(size - w, 0)]
        f *= Q
        f[:, w:] += shifted
    at_p, at_mirror = np.zeros((p.size, weights.size)), np.zeros((p.size, weights.size))
    for w in np.unique(weights[weights > 0]).tolist():
        g = _remove_bottom_up(f, p, w)  # P_p(w(S) = t), S random in N - i, t < size
        players = weights == w
        lo, hi = max(quota - w, 0), min(quota - 1, total - w)
        if lo <= hi:
            at_p[:, players] = g[:, lo : hi + 1].sum(axis=1)[:, None]
        lo, hi = max(total - w - quota + 1, 0), total - quota
        if lo <= hi:
            at_mirror[:, players] = g[:, lo : hi + 1].sum(axis=1)[:, None]
    return at_p, at_mirror


def _remove_bottom_up(
    f: NDArray[np.float64], p: NDArray[np.float64], w: int
) -> NDArray[np.float64]:
    """Solve ``f = (1-p) g + p shift_w(g)`` for ``g`` from t = 0 up.

    Each step multiplies the error so far by ``p / (1 - p) <= 1``: stable for ``p <= 1/2``.
    """
    size = f.shape[1]
    g = np.empty_like(f)
    P, Q = p[:, None], 1.0 - p[:, None]
    for b in range(0, size, w):
        e = min(b + w, size)
        g[:, b:e] = f[:, b:e] / Q if b == 0 else (f[:, b:e] - P * g[:, b - w : e - w]) / Q
    return g


def symmetric_voting_reference(n_players: int, quota: int | None = None) -> ReferenceGame:
    """Symmetric voting game: a coalition wins iff it has at least ``quota`` members.

    Parameters
    ----------
    n_players : int
    quota : int, optional
        ``1 <= quota <= n_players``; default a strict majority ``n_players // 2 + 1``.

    Returns
    -------
    ReferenceGame
        ``name="symmetric_voting"``; Shapley ``1/n``, Banzhaf ``C(n-1, q-1) / 2**(n-1)``.

    Examples
    --------
    >>> symmetric_voting_reference(4).banzhaf.tolist()
    [0.375, 0.375, 0.375, 0.375]
    """
    n = check_int("n_players", n_players, minimum=1)
    q = n // 2 + 1 if quota is None else check_int("quota", quota, minimum=1, maximum=n)
    beta = math.comb(n - 1, q - 1) / 2 ** (n - 1)
    return _make(
        "symmetric_voting",
        _default_names(n),
        np.full(n, 1.0 / n),
        np.full(n, beta),
        _SizeThreshold(q),
        quota=q,
    )


# ---------------------------------------------------------------------------- glove
def glove_reference(n_left: int, n_right: int) -> ReferenceGame:
    """Glove (shoes) game: :math:`v(S) = \\min(|S \\cap L|, |S \\cap R|)`.

    Parameters
    ----------
    n_left, n_right : int
        Owners of a left glove (players ``0 .. n_left - 1``, named ``"L0", ...``) and of
        a right glove (the rest, ``"R0", ...``); each at least 1.

    Returns
    -------
    ReferenceGame
        ``name="glove"``.

    Examples
    --------
    >>> game = glove_reference(1, 2)
    >>> game.shapley.round(4).tolist(), game.banzhaf.tolist()
    ([0.6667, 0.1667, 0.1667], [0.75, 0.25, 0.25])
    """
    L = check_int("n_left", n_left, minimum=1)
    R = check_int("n_right", n_right, minimum=1)
    left = _glove_share(L - 1, R)
    right = _glove_share(R - 1, L)
    names = [f"L{i}" for i in range(L)] + [f"R{i}" for i in range(R)]
    return _make(
        "glove",
        names,
        [left[0]] * L + [right[0]] * R,
        [left[1]] * L + [right[1]] * R,
        _Glove(L),
        n_left=L,
        n_right=R,
    )


def _glove_share(own: int, other: int) -> tuple[float, float]:
    """Shapley and Banzhaf of a glove whose coalition partners are ``own`` others of its
    side and ``other`` of the other side: its marginal is 1 iff S holds more of the other.
    """
    n = own + other + 1
    fact = [1] * (n + 1)
    for k in range(1, n + 1):
        fact[k] = fact[k - 1] * k
    c_own = [math.comb(own, x) for x in range(own + 1)]
    c_other = [math.comb(other, y) for y in range(other + 1)]
    shapley_num, swings = 0, 0
    for s in range(1, n):  # |S| = x + y with y > x
        count = sum(
            c_own[x] * c_other[s - x] for x in range(max(0, s - other), min(own, (s - 1) // 2) + 1)
        )
        shapley_num += count * fact[s] * fact[n - 1 - s]
        swings += count
    return shapley_num / fact[n], swings / 2 ** (n - 1)


# ---------------------------------------------------------------------------- airport
def airport_reference(costs: ArrayLike) -> ReferenceGame:
    """Airport cost game :math:`c(S) = \\max_{i \\in S} c_i` (Littlechild & Owen 1973).

    The same convention as :func:`~coopml.coalitions.games.airport_game`: values are
    costs, :math:`c(\\varnothing) = 0`.

    Parameters
    ----------
    costs : array-like of shape (n,)
        Non-negative runway cost each player needs.

    Returns
    -------
    ReferenceGame
        ``name="airport"``.

    Examples
    --------
    >>> game = airport_reference([1.0, 3.0])
    >>> game.shapley.tolist(), game.banzhaf.tolist()
    ([0.5, 2.5], [0.5, 2.5])
    """
    c = _check_vector("costs", costs, nonnegative=True)
    n = c.size
    order = np.argsort(c, kind="stable")
    segments = np.diff(c[order], prepend=0.0)  # c_(k) - c_(k-1), k = 1..n
    beta = np.empty(n)
    beta[order] = np.cumsum(np.ldexp(segments, -(n - 1 - np.arange(n))))
    return _make(
        "airport", _default_names(n), airport_shapley(c), beta, _Airport(c), costs=c.tolist()
    )


def castro_airport_costs() -> NDArray[np.float64]:
    """Costs of the 100-player airport game of Castro, Gómez & Tejada (2009, §4.3).

    Eight players need 1, twelve 2, six 3, fourteen 4, eight 5, nine 6, thirteen 7 and
    ten each 8, 9 and 10 (as in replication codes of the paper).

    Examples
    --------
    >>> c = castro_airport_costs()
    >>> c.size, float(c.sum())
    (100, 561.0)
    """
    counts = (8, 12, 6, 14, 8, 9, 13, 10, 10, 10)
    return np.repeat(np.arange(1.0, 11.0), counts)


# ---------------------------------------------------------------------------- others
def miner_reference(n_players: int) -> ReferenceGame:
    """Miner game :math:`v(S) = \\lfloor |S| / 2 \\rfloor`: pairs carry a gold bar.

    Parameters
    ----------
    n_players : int

    Returns
    -------
    ReferenceGame
        ``name="miner"``; Shapley ``floor(n/2) / n``, Banzhaf ``1/2`` (0 for one player).

    Examples
    --------
    >>> game = miner_reference(3)
    >>> game.shapley.round(4).tolist(), game.banzhaf.tolist()
    ([0.3333, 0.3333, 0.3333], [0.5, 0.5, 0.5])
    """
    n = check_int("n_players", n_players, minimum=1)
    return _make(
        "miner",
        _default_names(n),
        np.full(n, (n // 2) / n),
        np.full(n, 0.5 if n > 1 else 0.0),
        _Miner(),
    )


def additive_reference(weights: ArrayLike) -> ReferenceGame:
    """Additive game :math:`v(S) = \\sum_{i \\in S} w_i`; both values equal ``w``.

    Examples
    --------
    >>> additive_reference([1.0, -2.0]).banzhaf.tolist()
    [1.0, -2.0]
    """
    w = _check_vector("weights", weights)
    n = w.size
    empty = np.zeros((0, 1), dtype=np.intp)
    return _make(
        "additive",
        _default_names(n),
        w,
        w,
        _Harsanyi(0.0, w, empty, np.zeros(0)),
        weights=w.tolist(),
    )


def harsanyi_reference(
    n_players: int,
    carriers: Sequence[Iterable[int]],
    coefficients: ArrayLike,
    *,
    additive: ArrayLike | None = None,
    baseline: float = 0.0,
    name: str = "harsanyi",
) -> ReferenceGame:
    """Game given by Harsanyi dividends: a sum of unanimity games on small carriers.

    :math:`v(S) = b + \\sum_{i \\in S} a_i + \\sum_k c_k [T_k \\subseteq S]`.

    Parameters
    ----------
    n_players : int
    carriers : sequence of iterables of int
        The carriers :math:`T_k`, non-empty sets of player indices.
    coefficients : array-like of shape (len(carriers),)
        The dividends :math:`c_k` (any sign).
    additive : array-like of shape (n_players,), optional
        :math:`a`; default zeros.
    baseline : float
        :math:`b = v(\\varnothing)`.
    name : str
        Label of the game.

    Returns
    -------
    ReferenceGame

    Examples
    --------
    >>> game = harsanyi_reference(3, [{0, 1}, {0, 1, 2}], [1.0, -3.0], baseline=0.5)
    >>> game.shapley.tolist(), game.banzhaf.tolist()
    ([-0.5, -0.5, -1.0], [-0.25, -0.25, -0.75])
    >>> game(frozenset({0, 1})), game.empty_value, game.grand_value
    (1.5, 0.5, -1.5)
    """
    n = check_int("n_players", n_players, minimum=1)
    c = np.asarray(coefficients, dtype=np.float64)
    sets = [
        sorted({check_int("carriers", i, minimum=0, maximum=n - 1) for i in t}) for t in carriers
    ]
    if c.shape != (len(sets),) or not np.all(np.isfinite(c)):
        raise ValueError(
            f"parameter 'coefficients' must be finite with shape ({len(sets)},) (one per "
            f"carrier); got shape {c.shape}"
        )
    if any(not t for t in sets):
        raise ValueError("parameter 'carriers' must hold non-empty sets of players")
    a = np.zeros(n) if additive is None else _check_vector("additive", additive)
    if a.size != n:
        raise ValueError(f"parameter 'additive' must have {n} entries; got {a.size}")
    b = float(baseline)
    if not math.isfinite(b):
        raise ValueError(f"parameter 'baseline' must be finite; got {baseline!r}")
    width = max((len(t) for t in sets), default=1)
    padded = np.array([t + [t[0]] * (width - len(t)) for t in sets], dtype=np.intp).reshape(
        len(sets), width
    )
    shapley, banzhaf = a.copy(), a.copy()
    for t, c_k in zip(sets, c.tolist(), strict=True):
        shapley[t] += c_k / len(t)
        banzhaf[t] += c_k / 2 ** (len(t) - 1)
    return _make(
        name,
        _default_names(n),
        shapley,
        banzhaf,
        _Harsanyi(b, a, padded, c),
        n_carriers=len(sets),
        max_order=width,
        baseline=b,
    )


def random_harsanyi_reference(
    n_players: int,
    *,
    n_terms: int | None = None,
    max_order: int = 4,
    baseline: float = 0.0,
    random_state: RandomState = None,
) -> ReferenceGame:
    """A random non-monotone game: additive part plus signed dividends on random carriers.

    :math:`a_i \\sim N(0, 1)`; ``n_terms`` carriers of sizes drawn uniformly from
    ``2 .. max_order`` (pairwise terms included), each a uniform random set of players,
    with dividends :math:`c_k \\sim N(0, 1)`. The draws are rounded to multiples of
    :math:`2^{-16}`, so that coalition values are exact sums (independent of the order of
    summation).

    Parameters
    ----------
    n_players : int
        At least 2.
    n_terms : int, optional
        Number of carriers; default ``n_players``.
    max_order : int
        Largest carrier, ``2 .. n_players``.
    baseline : float
        :math:`v(\\varnothing)`.
    random_state : int, Generator or None

    Returns
    -------
    ReferenceGame
        ``name="harsanyi"``.

    Examples
    --------
    >>> game = random_harsanyi_reference(6, random_state=0)
    >>> bool(np.isclose(game.shapley.sum(), game.grand_value - game.empty_value))
    True
    """
    n = check_int("n_players", n_players, minimum=2)
    k = n if n_terms is None else check_int("n_terms", n_terms, minimum=0)
    order = check_int("max_order", max_order, minimum=2, maximum=n)
    rng = check_random_state(random_state)
    a = _dyadic(rng.normal(size=n))
    sizes = rng.integers(2, order + 1, size=k)
    carriers = [rng.choice(n, size=int(s), replace=False).tolist() for s in sizes]
    c = _dyadic(rng.normal(size=k))
    game = harsanyi_reference(n, carriers, c, additive=a, baseline=baseline)
    params = {**game.params, "n_terms": k}
    return _make("harsanyi", game.names, game.shapley, game.banzhaf, game.kernel, **params)


# ---------------------------------------------------------------------------- the suite
def reference_suite(
    sizes: Iterable[int] = (20, 50, 100), *, random_state: int = 0
) -> list[ReferenceGame]:
    """The reference games at each size: voting, glove, airport, miner, additive, Harsanyi.

    At size ``n`` (``n >= 4``): a weighted voting game with weights drawn from
    ``1 .. 10`` and a strict-majority quota; the symmetric voting game (strict
    majority); a glove game with equal sides (``n // 2`` left) and one with unequal
    sides (``n // 3`` left); an airport game with costs drawn from ``1 .. 10``; the
    miner game; an additive game with normal weights; and a random Harsanyi game with
    ``v(empty) = 1``. Random draws depend on ``random_state`` and ``n`` only.

    Parameters
    ----------
    sizes : iterable of int
    random_state : int

    Returns
    -------
    list of ReferenceGame
        Eight games per size, in the order above (the glove games are named
        ``"glove_equal"`` and ``"glove_unequal"``).

    Examples
    --------
    >>> [(g.name, g.n_players) for g in reference_suite([6])][:4]
    [('weighted_voting', 6), ('symmetric_voting', 6), ('glove_equal', 6), ('glove_unequal', 6)]
    """
    seed = check_int("random_state", random_state, minimum=0)
    games: list[ReferenceGame] = []
    for size in sizes:
        n = check_int("sizes", size, minimum=4)
        rng = np.random.default_rng([seed, n])
        weights = rng.integers(1, 11, size=n)
        equal, unequal = glove_reference(n // 2, n - n // 2), glove_reference(n // 3, n - n // 3)
        games += [
            weighted_voting_reference(weights, int(weights.sum()) // 2 + 1),
            symmetric_voting_reference(n),
            _renamed(equal, "glove_equal"),
            _renamed(unequal, "glove_unequal"),
            airport_reference(rng.integers(1, 11, size=n).astype(np.float64)),
            miner_reference(n),
            additive_reference(_dyadic(rng.normal(size=n))),
            random_harsanyi_reference(n, baseline=1.0, random_state=rng),
        ]
    return games


def _dyadic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``x`` rounded to multiples of ``2**-16``: sums of a few thousand such numbers are
    exact in float64, so a coalition's value does not depend on the summation order
    (on the batch it is evaluated in, or on the BLAS)."""
    return np.round(x * 2.0**16) / 2.0**16


def _renamed(game: ReferenceGame, name: str) -> ReferenceGame:
    return _make(name, game.names, game.shapley, game.banzhaf, game.kernel, **game.params)


# ---------------------------------------------------------------------------- coverage
@dataclass(frozen=True, kw_only=True)
class CoverageResult:
    """How well one estimator's intervals cover the exact values of one game.

    Parameters
    ----------
    estimator, game : str
        Names of the estimator function and the game.
    n_players, budget, repetitions : int
        Game size, ``MaxEvaluations`` budget, number of seeds.
    target : {"shapley", "banzhaf"}
    coverage : float
        Fraction of (player, repetition) pairs with
        ``|estimate - truth| <= z * stderr`` (NaN standard errors count as misses).
    min_player_coverage : float
        The smallest per-player coverage over the repetitions.
    mean_z2 : float
        Mean of ``((estimate - truth) / stderr)**2`` over finite, positive standard
        errors: about 1 when the standard errors are right, above when too small.
    rmse : float
        Root mean squared error over players and repetitions.
    efficiency_coverage : float or None
        Shapley estimators: fraction of runs whose efficiency gap
        ``sum(estimate) - (v(N) - v(empty))`` lies within ``z`` of its standard error
        (``info["efficiency_gap_stderr"]`` if reported, else the root sum of squared
        standard errors).
    max_efficiency_z : float or None
        The largest ``|gap| / stderr(gap)`` over the runs.
    max_evaluation_ratio : float
        The largest ``n_evaluations / budget`` reported by the estimator.
    max_call_ratio : float
        The largest number of coalition values the estimator requested from the game,
        over the budget (counted by the harness).
    seconds : float
        Mean wall time of one run.
    source : str
        How the game was passed: ``"utility"`` (``evaluate_masks``) or ``"callable"``.
    refused : str or None
        The estimator's error message when it refused the game or budget (no run was
        made; the statistics are NaN).
    z : float
    """

    estimator: str
    game: str
    n_players: int
    budget: int
    repetitions: int
    target: str
    coverage: float = math.nan
    min_player_coverage: float = math.nan
    mean_z2: float = math.nan
    rmse: float = math.nan
    efficiency_coverage: float | None = None
    max_efficiency_z: float | None = None
    max_evaluation_ratio: float = math.nan
    max_call_ratio: float = math.nan
    seconds: float = math.nan
    source: str = ""
    refused: str | None = None
    z: float = 1.96

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields (NaN as ``None``)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = None if isinstance(value, float) and math.isnan(value) else value
        return out


#: The target of each sampling estimator of :mod:`coopml.coalitions`.
ESTIMATOR_TARGETS: dict[str, Literal["shapley", "banzhaf"]] = {
    "monte_carlo_shapley": "shapley",
    "stratified_shapley": "shapley",
    "svarm_shapley": "shapley",
    "msr_banzhaf": "banzhaf",
}


class _CountingUtility:
    """The game as a mask utility, counting the coalitions requested."""

    def __init__(self, game: ReferenceGame) -> None:
        self.game, self.calls = game, 0

    @property
    def n_players(self) -> int:
        return self.game.n_players

    @property
    def names(self) -> tuple[str, ...]:
        return self.game.names

    def evaluate_masks(self, masks: NDArray[Any]) -> NDArray[np.float64]:
        self.calls += len(masks)
        return self.game.evaluate_masks(masks)


class _CountingCallable:
    """The game as ``value_fn(frozenset) -> float``, counting the calls."""

    def __init__(self, game: ReferenceGame) -> None:
        self.game, self.calls = game, 0

    def __call__(self, coalition: frozenset[int]) -> float:
        self.calls += 1
        return self.game(coalition)


def coverage(
    estimator: Callable[..., ValuationResult],
    game: ReferenceGame,
    budget: int,
    *,
    repetitions: int = 20,
    target: Literal["shapley", "banzhaf"] | None = None,
    z: float = 1.96,
    seed: int = 0,
    name: str | None = None,
) -> CoverageResult:
    """Run ``estimator`` with its defaults and ``stopping=MaxEvaluations(budget)`` on ``game``.

    Repetition ``r`` uses ``random_state=seed + r``. Games of at most 62 players are
    passed as a mask utility; larger ones first as a utility and, if the estimator
    refuses that, as a callable with ``n_players``. An estimator that raises before
    evaluating any coalition *refused* (e.g. a budget too small for its pilot); the
    result then carries the message and NaN statistics. Errors after evaluations began
    propagate.

    Parameters
    ----------
    estimator : callable
        E.g. :func:`~coopml.coalitions.monte_carlo_shapley`; called as
        ``estimator(source, [n_players], stopping=..., random_state=...)``.
    game : ReferenceGame
    budget : int
        Distinct coalition evaluations per run (``<= 2**n_players``).
    repetitions : int
    target : {"shapley", "banzhaf"}, optional
        Default from the estimator's name (:data:`ESTIMATOR_TARGETS`).
    z : float
        Interval half-width in standard errors.
    seed : int
    name : str, optional
        Label of the estimator; default its ``__name__``.

    Returns
    -------
    CoverageResult

    Examples
    --------
    >>> from coopml.coalitions.monte_carlo import monte_carlo_shapley
    >>> r = coverage(monte_carlo_shapley, glove_reference(3, 3), 60, repetitions=5)
    >>> r.estimator, r.repetitions, r.max_evaluation_ratio <= 64 / 60
    ('monte_carlo_shapley', 5, True)
    """
    label = str(name or getattr(estimator, "__name__", type(estimator).__name__))
    target = ESTIMATOR_TARGETS.get(label) if target is None else target
    if target not in ("shapley", "banzhaf"):
        raise ValueError(
            f"parameter 'target' must be 'shapley' or 'banzhaf' (no default for {label!r}); "
            f"got {target!r}"
        )
    if not isinstance(game, ReferenceGame):
        raise TypeError(f"parameter 'game' must be a ReferenceGame; got {type(game).__name__}")
    n = game.n_players
    budget = check_int("budget", budget, minimum=1)
    reps = check_int("repetitions", repetitions, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    truth = game.truth(target)
    total = game.grand_value - game.empty_value
    scale = max(1.0, float(np.abs(truth).max()), abs(total))
    tol = 1e-9 * scale
    base = CoverageResult(
        estimator=label,
        game=game.name,
        n_players=n,
        budget=budget,
        repetitions=reps,
        target=target,
        z=float(z),
    )

    def run(r: int, kind: str) -> tuple[ValuationResult | None, int, str | None]:
        source: _CountingUtility | _CountingCallable
        if kind == "utility":
            source = _CountingUtility(game)
            args: tuple[Any, ...] = (source,)
        else:
            source = _CountingCallable(game)
            args = (source, n)
        try:
            result = estimator(*args, stopping=MaxEvaluations(budget), random_state=seed + r)
        except (ValueError, TypeError) as error:
            if source.calls:
                raise
            return None, 0, f"{type(error).__name__}: {error}"
        return result, source.calls, None

    kinds = ["utility"] if n <= MAX_MASK_PLAYERS else ["utility", "callable"]
    results: list[ValuationResult] = []
    calls: list[int] = []
    seconds = 0.0
    kind = kinds[0]
    for r in range(reps):
        for kind in kinds:
            start = time.perf_counter()
            result, n_calls, refusal = run(r, kind)
            seconds += time.perf_counter() - start
            if result is not None:
                kinds = [kind]  # keep the source that worked
                break
        if result is None:
            return replace(base, refused=refusal, source=kind)
        results.append(result)
        calls.append(n_calls)

    estimates = np.array([res.values for res in results])
    stderr = np.array([np.full(n, np.nan) if res.stderr is None else res.stderr for res in results])
    error = estimates - truth
    with np.errstate(invalid="ignore", divide="ignore"):
        covered = np.abs(error) <= z * stderr + tol  # NaN standard errors: False
        z2 = (error / stderr) ** 2
    usable = np.isfinite(stderr) & (stderr > 0)
    efficiency_coverage = max_efficiency_z = None
    if target == "shapley":
        gaps = estimates.sum(axis=1) - total
        gap_se = np.array(
            [
                float(res.info["efficiency_gap_stderr"])
                if "efficiency_gap_stderr" in res.info
                else float(np.sqrt(np.sum(se**2)))
                for res, se in zip(results, stderr, strict=True)
            ]
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            gap_z = np.where(np.abs(gaps) <= tol, 0.0, np.abs(gaps) / gap_se)
        gap_z = np.where(np.isnan(gap_z), np.inf, gap_z)
        efficiency_coverage = float(np.mean(gap_z <= z))
        max_efficiency_z = float(gap_z.max())
    return replace(
        base,
        coverage=float(covered.mean()),
        min_player_coverage=float(covered.mean(axis=0).min()),
        mean_z2=float(z2[usable].mean()) if usable.any() else math.nan,
        rmse=float(np.sqrt(np.mean(error**2))),
        efficiency_coverage=efficiency_coverage,
        max_efficiency_z=max_efficiency_z,
        max_evaluation_ratio=max(res.n_evaluations for res in results) / budget,
        max_call_ratio=max(calls) / budget,
        seconds=seconds / reps,
        source=kind,
    )
