r"""Payoff redistribution that implements the social optimum of the round game.

Reconstruction of CoCoGen+'s incentive mechanism (arXiv 2604.14886; the full text was
not available). Organisation :math:`i` receives :math:`\sigma_i s_i - L_i`. The
per-sample transfer :math:`\sigma_i` makes each organisation's marginal utility equal to
the marginal welfare of its amount, so the social optimum :math:`s^{SW}` is an
equilibrium of the modified game; the lump sums :math:`L_i = \sigma_i s_i^{SW} +
u_i(s^{SW}) - u_i(s^{NE}) - \beta_i\Delta SW` (:math:`\beta_i \ge 0`, :math:`\sum_i
\beta_i = 1`) balance the budget and leave everyone at its equilibrium payoff plus
:math:`\beta_i \Delta SW`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._serialization import to_jsonable
from coopml.federated._vectors import per_org
from coopml.federated.equilibrium import GameSolution, nash_equilibrium, social_optimum
from coopml.federated.round_game import RoundGame, arr, check_profile, utilities, weights

__all__ = ["Redistribution", "contribution_shares", "redistribution"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class Redistribution:
    r"""Payoff redistribution that implements the social optimum.

    Organisation ``i`` receives :math:`\sigma_i s_i - L_i` (negative: it pays). With
    the per-sample transfers :math:`\sigma_i` the optimum is the unique equilibrium of
    the modified game; the lump sums make the round budget balanced and individually
    rational.

    Attributes
    ----------
    sigma : ndarray of shape (N,)
        Per-synthetic-sample transfer :math:`\sigma_i`.
    lump_sum : ndarray of shape (N,)
        Lump sum :math:`L_i` paid by ``i``.
    transfers : ndarray of shape (N,)
        Net transfer to ``i`` at the optimum, :math:`\sigma_i s_i^{SW} - L_i` (sums to 0).
    beta : ndarray of shape (N,)
        Shares of the welfare gain (non-negative, sum 1).
    s_optimum, s_equilibrium : ndarray of shape (N,)
        Synthetic samples at the optimum and at the equilibrium without transfers.
    utilities_equilibrium : ndarray of shape (N,)
        :math:`u_i(s^{NE})` (what each organisation gets without the mechanism).
    utilities_before : ndarray of shape (N,)
        :math:`u_i(s^{SW})` before transfers.
    utilities_after : ndarray of shape (N,)
        :math:`u_i(s^{SW})` + transfer :math:`= u_i(s^{NE}) + \beta_i\Delta SW`.
    budget_balance : float
        Sum of the transfers (0 up to rounding).
    individually_rational : bool
        Whether everyone ends at or above its equilibrium payoff (tolerance 1e-9).
    welfare_gain : float
        :math:`\Delta SW = SW(s^{SW}) - SW(s^{NE})`.
    """

    sigma: FloatArray
    lump_sum: FloatArray
    transfers: FloatArray
    beta: FloatArray
    s_optimum: FloatArray
    s_equilibrium: FloatArray
    utilities_equilibrium: FloatArray
    utilities_before: FloatArray
    utilities_after: FloatArray
    budget_balance: float
    individually_rational: bool
    welfare_gain: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return to_jsonable(dict(self.__dict__))


def contribution_shares(game: RoundGame, s: ArrayLike) -> FloatArray:
    r"""Shares of effective data contributed, :math:`\propto n_i(1-h_i^0) + \kappa s_i`."""
    s_arr = check_profile(game, s)
    n = arr(game, "n")
    h0 = arr(game, "h0")
    contrib = n * (1.0 - h0) + game.kappa * s_arr
    total = float(contrib.sum())
    return contrib / total


def redistribution(
    game: RoundGame,
    beta: ArrayLike | None = None,
    *,
    optimum: GameSolution | None = None,
    equilibrium: GameSolution | None = None,
) -> Redistribution:
    r"""Per-sample transfers and lump sums that make the social optimum the equilibrium.

    :math:`\sigma_i = \kappa P'(E^{SW})(W - B_i) + \mu\sum_{j\ne i} G_{ji}\,(-h_i'(s_i^{SW}))`
    (linear model: :math:`\sum_{j\ne i} G_{ji} = -\theta_i\Gamma_i`)
    and :math:`L_i = \sigma_i s_i^{SW} + u_i(s^{SW}) - u_i(s^{NE}) - \beta_i\Delta SW`.

    Parameters
    ----------
    game : RoundGame
    beta : array-like of shape (N,), optional
        Shares of the welfare gain (>= 0, summing to 1). Default: contribution shares
        (effective data each organisation brings at the optimum).
    optimum, equilibrium : GameSolution, optional
        Precomputed solutions (recomputed when omitted).

    Examples
    --------
    >>> from coopml.federated.game import AccuracyCurve, RoundGame
    >>> g = RoundGame(n=[100, 200], h0=[0.5, 0.2], theta=[1.0, 2.0], gamma=0.3, c=1e-4,
    ...               kappa=0.8, mu=0.2, s_max=500, curve=AccuracyCurve(0.95, 2.0, 0.5))
    >>> r = redistribution(g)
    >>> abs(r.budget_balance) < 1e-9, r.individually_rational
    (True, True)
    >>> bool(np.all(r.utilities_after >= r.utilities_equilibrium))
    True
    """
    n = arr(game, "n")
    h0 = arr(game, "h0")
    ne = nash_equilibrium(game) if equilibrium is None else equilibrium
    opt = social_optimum(game, equilibrium=ne) if optimum is None else optimum
    G = game.payoff_matrix
    B = weights(game)
    W = float(B.sum())
    # what i's amount does to the others' accuracy-weighted payoffs (linear: -theta_i Gamma_i)
    spill = G.sum(axis=0) - np.diag(G)
    s_opt = opt.s
    dP = float(game.curve.derivative(opt.E))
    neg_dh = -np.asarray(game.skew_map.derivative(s_opt, h0, n), dtype=np.float64)
    sigma = game.kappa * dP * (W - B) + spill * game.mu * neg_dh
    if beta is None:
        beta_arr = contribution_shares(game, s_opt)
    else:
        beta_arr = per_org("beta", beta, game.N)
        if np.any(beta_arr < 0) or abs(float(beta_arr.sum()) - 1.0) > 1e-9:
            raise ValueError(f"parameter 'beta' must be >= 0 and sum to 1; got {beta_arr.tolist()}")
    u_opt = utilities(game, s_opt)
    u_ne = utilities(game, ne.s)
    delta = float(u_opt.sum() - u_ne.sum())
    lump = sigma * s_opt + u_opt - u_ne - beta_arr * delta
    transfers = sigma * s_opt - lump
    after = u_opt + transfers
    return Redistribution(
        sigma=sigma,
        lump_sum=lump,
        transfers=transfers,
        beta=beta_arr,
        s_optimum=s_opt,
        s_equilibrium=ne.s,
        utilities_equilibrium=u_ne,
        utilities_before=u_opt,
        utilities_after=after,
        budget_balance=float(transfers.sum()),
        individually_rational=bool(np.all(after >= u_ne - 1e-9)),
        welfare_gain=delta,
    )
