r"""One round of the synthetic-data game of coopetitive cross-silo federated learning.

Reconstruction of the round game of CoCoGen+ (*Cooperate to Compete: Strategic Data
Generation and Incentivization Framework for Coopetitive Cross-Silo Federated Learning*,
arXiv 2604.14886, 2026; earlier CoCoGen, GLOBECOM 2025). The paper's full text was not
available: the functional forms are a **reconstruction** consistent with its abstract
(learning gain − generation cost − loss from strengthening rivals; a weighted potential
game per round).

Organisations :math:`i = 1..N` hold :math:`n_i` real samples with label skew
:math:`h_i^0` and choose :math:`s_i \in [0, s_i^{max}]` synthetic samples:

.. math::

    h_i(s_i) &= h_i^0\, n_i / (n_i + s_i) \quad\text{(skew after mixing)}\\
    E(s) &= \textstyle\sum_j n_j (1 - h_j^0) + \kappa \sum_j s_j\\
    A_i(s) &= P(E(s)) - \mu\, h_i(s_i)\\
    u_i(s) &= \textstyle\sum_j G_{ij} A_j(s) + k_i - c_i s_i

The payoff matrix :math:`G` comes from the competition model
(:mod:`coopml.federated.competition`); the linear model gives :math:`u_i = \theta_i A_i -
\tfrac{\gamma_i}{N-1}\sum_{j\ne i}\theta_j A_j - c_i s_i`. With weights :math:`B_i =
\sum_j G_{ij} > 0`,

.. math::

    \Phi(s) = P(E(s)) - \sum_j \frac{G_{jj}\,\mu\, h_j(s_j) + c_j s_j}{B_j}

is a weighted potential: :math:`u_i(s_i, s_{-i}) - u_i(s_i', s_{-i}) = B_i[\Phi(s_i,
s_{-i}) - \Phi(s_i', s_{-i})]`, because :math:`u_i = B_i P(E) - \mu\sum_j G_{ij} h_j -
c_i s_i + k_i` and only the :math:`j = i` terms move with :math:`s_i`. :math:`\Phi` is
concave; it is *strictly* concave only when every :math:`G_{jj}\mu h_j^0 > 0` (with
:math:`\mu = 0`, or an organisation without skew, it is linear along some directions and
equilibria need not be unique).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_fraction, check_positive
from coopml.federated._vectors import per_org
from coopml.federated.competition import CompetitionModel, resolve
from coopml.federated.curves import AccuracyModel
from coopml.federated.skew import MixingSkew, SkewMap

__all__ = [
    "RoundGame",
    "accuracies",
    "effective_data",
    "potential",
    "social_welfare",
    "utilities",
    "weights",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class RoundGame:
    r"""One round of the synthetic-data game among ``N`` organisations.

    Parameters
    ----------
    n : array-like of shape (N,)
        Real samples per organisation, > 0.
    h0 : array-like of shape (N,)
        Label skew :math:`h_i^0 = \tfrac12\lVert p_i - u\rVert_1`, in [0, 1].
    theta : array-like of shape (N,)
        Market valuation of accuracy, > 0.
    gamma : array-like of shape (N,) or float
        Competition intensity, in [0, 1] (the product similarity of the market under
        ``competition="market"``, where all entries must be equal).
    c : array-like of shape (N,) or float
        Cost per synthetic sample, >= 0.
    kappa : float
        Quality of a synthetic sample relative to a real one, in (0, 1].
    mu : float
        Accuracy lost per unit of skew, >= 0.
    s_max : array-like of shape (N,) or float
        Upper bound on the synthetic samples of each organisation, >= 0.
    curve : AccuracyModel
        Global accuracy :math:`P(E)` (increasing, concave), e.g. :class:`AccuracyCurve`.
    skew_map : SkewMap, default MixingSkew()
        Skew after mixing.
    competition : {"linear", "market"} or CompetitionModel, default "linear"
        How rivals' accuracy enters utility (:mod:`coopml.federated.competition`):
        ``"linear"`` is the original penalty, ``"market"`` a Cournot market where
        accuracy is quality (:class:`~coopml.federated.competition.MarketCompetition`).

    Examples
    --------
    >>> import dataclasses
    >>> from coopml.federated.curves import AccuracyCurve
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 1.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> weights(g)
    array([0.7, 0.7])
    >>> weights(dataclasses.replace(g, competition="market")).round(4)
    array([0.7449, 0.7665])
    """

    n: ArrayLike
    h0: ArrayLike
    theta: ArrayLike
    gamma: ArrayLike
    c: ArrayLike
    kappa: float
    mu: float
    s_max: ArrayLike
    curve: AccuracyModel
    skew_map: SkewMap = field(default_factory=MixingSkew)
    competition: str | CompetitionModel = "linear"
    payoff_matrix: FloatArray = field(init=False, repr=False)
    """:math:`G` with :math:`u_i = \\sum_j G_{ij} A_j + k_i - c_i s_i`, shape (N, N)."""
    payoff_offset: FloatArray = field(init=False, repr=False)
    """:math:`k`, shape (N,) (zero for the linear model)."""
    _E0: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n_arr = np.asarray(self.n, dtype=np.float64)
        if n_arr.ndim != 1 or n_arr.size < 1:
            raise ValueError(
                f"parameter 'n' must be a non-empty 1-D array; got shape {n_arr.shape}"
            )
        N = n_arr.size
        n_arr = per_org("n", n_arr, N)
        h0 = per_org("h0", self.h0, N)
        theta = per_org("theta", self.theta, N)
        gamma = per_org("gamma", self.gamma, N)
        c = per_org("c", self.c, N)
        s_max = per_org("s_max", self.s_max, N)
        if np.any(n_arr <= 0):
            raise ValueError(f"parameter 'n' must be > 0; got {n_arr.tolist()}")
        if np.any((h0 < 0) | (h0 > 1)):
            raise ValueError(f"parameter 'h0' must lie in [0, 1]; got {h0.tolist()}")
        if np.any(theta <= 0):
            raise ValueError(f"parameter 'theta' must be > 0; got {theta.tolist()}")
        if np.any((gamma < 0) | (gamma > 1)):
            raise ValueError(f"parameter 'gamma' must lie in [0, 1]; got {gamma.tolist()}")
        if np.any(c < 0):
            raise ValueError(f"parameter 'c' must be >= 0; got {c.tolist()}")
        if np.any(s_max < 0):
            raise ValueError(f"parameter 's_max' must be >= 0; got {s_max.tolist()}")
        kappa = check_fraction("kappa", self.kappa, open_low=True)
        mu = check_positive("mu", self.mu, strict=False)
        if not isinstance(self.curve, AccuracyModel):
            raise TypeError(
                "parameter 'curve' must have __call__(E) and derivative(E); "
                f"got {type(self.curve).__name__}"
            )
        if not isinstance(self.skew_map, SkewMap):
            raise TypeError(
                "parameter 'skew_map' must have __call__(s, h0, n) and derivative(s, h0, n); "
                f"got {type(self.skew_map).__name__}"
            )
        model = resolve(self.competition)
        for name, arr in (
            ("n", n_arr),
            ("h0", h0),
            ("theta", theta),
            ("gamma", gamma),
            ("c", c),
            ("s_max", s_max),
        ):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "competition", model)
        object.__setattr__(self, "_E0", float(np.sum(n_arr * (1.0 - h0))))
        if self.E0 <= 0:
            raise ValueError(
                "effective real data sum_j n_j (1 - h0_j) must be > 0; got "
                f"{self.E0} (every organisation fully skewed)"
            )
        A0 = float(self.curve(self.E0)) - mu * np.asarray(
            self.skew_map(np.zeros(N), h0, n_arr), dtype=np.float64
        )
        G, k = model.payoff(theta, gamma, A0)
        G = np.array(G, dtype=np.float64)
        k = np.array(k, dtype=np.float64)
        if G.shape != (N, N) or k.shape != (N,):
            raise ValueError(
                f"the competition model must return G of shape ({N}, {N}) and k of shape "
                f"({N},); got {G.shape} and {k.shape}"
            )
        B = G.sum(axis=1)
        if np.any(B <= 0):
            raise ValueError(
                "weights B_i = sum_j G_ij must be > 0; got "
                f"{B.tolist()} (linear model: B_i = theta_i - gamma_i * mean_(j != i) "
                "theta_j, competition too strong for the valuations; market model: an "
                "organisation whose market quantity is 0 has left the market)"
            )
        if np.any(np.diag(G) < 0):
            raise ValueError(
                f"the weight of an organisation's own accuracy must be >= 0; got {np.diag(G)}"
            )
        for name, arr in (("payoff_matrix", G), ("payoff_offset", k)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)

    # typed views (validated arrays) ------------------------------------------------------
    @property
    def N(self) -> int:
        """Number of organisations."""
        return int(np.asarray(self.n).size)

    @property
    def E0(self) -> float:
        r"""Effective real data :math:`\sum_j n_j (1 - h_j^0)`."""
        return self._E0

    @property
    def Gamma(self) -> FloatArray:
        r""":math:`\Gamma_j` = mean of :math:`\gamma_i` over :math:`i \ne j`."""
        return _others_mean(np.asarray(self.gamma, dtype=np.float64))

    def replace(self, **changes: Any) -> RoundGame:
        """:func:`dataclasses.replace` (a copy with some parameters changed, validated)."""
        return replace(self, **changes)


def _others_mean(x: FloatArray) -> FloatArray:
    N = x.size
    if N == 1:
        return np.zeros(1)
    return (x.sum() - x) / (N - 1)


def arr(game: RoundGame, name: str) -> FloatArray:
    """A validated per-organisation parameter as a float array."""
    return np.asarray(getattr(game, name), dtype=np.float64)


def check_profile(game: RoundGame, s: ArrayLike) -> FloatArray:
    """``s`` as an array of shape (N,) in ``[0, s_max]`` (error naming ``s`` otherwise)."""
    out = np.asarray(s, dtype=np.float64)
    if out.shape != (game.N,):
        raise ValueError(
            f"parameter 's' must have one entry per organisation ({game.N}); got shape {out.shape}"
        )
    s_max = np.asarray(game.s_max)
    if not np.all(np.isfinite(out)) or np.any(out < 0) or np.any(out > s_max * (1 + 1e-12)):
        raise ValueError(f"parameter 's' must lie in [0, s_max]; got {out.tolist()}")
    return out


def utilities_batch(
    game: RoundGame, S: FloatArray, global_accuracy: FloatArray | None = None
) -> FloatArray:
    """Utilities of a batch of profiles ``S`` of shape (k, N) (trusted input), (k, N)."""
    n, h0, c = arr(game, "n"), arr(game, "h0"), arr(game, "c")
    if global_accuracy is None:
        E = game.E0 + game.kappa * S.sum(axis=1)
        global_accuracy = np.asarray(game.curve(E), dtype=np.float64)
    A = global_accuracy[:, None] - game.mu * np.asarray(game.skew_map(S, h0, n), dtype=np.float64)
    return np.asarray(A @ game.payoff_matrix.T + game.payoff_offset - c * S, dtype=np.float64)


def weights(game: RoundGame) -> FloatArray:
    r"""Potential weights :math:`B_i = \sum_j G_{ij}` (linear model: :math:`\theta_i -
    \gamma_i\,\mathrm{mean}_{j\ne i}\theta_j`)."""
    return np.asarray(game.payoff_matrix.sum(axis=1), dtype=np.float64)


def effective_data(game: RoundGame, s: ArrayLike) -> float:
    r""":math:`E(s) = \sum_j n_j(1 - h_j^0) + \kappa \sum_j s_j`."""
    s_arr = check_profile(game, s)
    return game.E0 + game.kappa * float(s_arr.sum())


def accuracies(game: RoundGame, s: ArrayLike) -> FloatArray:
    r"""Accuracy experienced by each organisation, :math:`A_i(s) = P(E(s)) - \mu h_i(s_i)`."""
    s_arr = check_profile(game, s)
    n = arr(game, "n")
    h0 = arr(game, "h0")
    E = game.E0 + game.kappa * float(s_arr.sum())
    return np.asarray(
        float(game.curve(E)) - game.mu * np.asarray(game.skew_map(s_arr, h0, n)),
        dtype=np.float64,
    )


def utilities(game: RoundGame, s: ArrayLike, *, global_accuracy: float | None = None) -> FloatArray:
    r""":math:`u_i(s) = \sum_j G_{ij} A_j(s) + k_i - c_i s_i`.

    For the linear model :math:`u_i = \theta_i A_i - \tfrac{\gamma_i}{N-1}\sum_{j\ne i}
    \theta_j A_j - c_i s_i`.

    Parameters
    ----------
    game : RoundGame
    s : array-like of shape (N,)
        Synthetic samples per organisation.
    global_accuracy : float, optional
        Use this in place of :math:`P(E(s))` (e.g. a measured validation accuracy).

    Examples
    --------
    >>> from coopml.federated.curves import AccuracyCurve
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> utilities(g, [0.0, 0.0]).round(4)
    array([0.2488, 1.3304])
    >>> utilities(g, [0.0, 0.0], global_accuracy=0.9).round(4)
    array([0.284, 1.48 ])
    """
    s_arr = check_profile(game, s)
    P = None if global_accuracy is None else np.array([float(global_accuracy)])
    return utilities_batch(game, s_arr[None, :], P)[0]


def social_welfare(game: RoundGame, s: ArrayLike) -> float:
    """Sum of utilities :math:`\\sum_i u_i(s)` (transfers cancel out)."""
    return float(utilities(game, s).sum())


def potential(game: RoundGame, s: ArrayLike) -> float:
    r"""Weighted potential :math:`\Phi(s) = P(E) - \sum_j [G_{jj}\mu h_j(s_j) + c_j s_j]/B_j`."""
    s_arr = check_profile(game, s)
    n = arr(game, "n")
    h0 = arr(game, "h0")
    c = arr(game, "c")
    B = weights(game)
    own = np.diag(game.payoff_matrix)
    E = game.E0 + game.kappa * float(s_arr.sum())
    h = np.asarray(game.skew_map(s_arr, h0, n), dtype=np.float64)
    return float(game.curve(E)) - float(np.sum((own * game.mu * h + c * s_arr) / B))
