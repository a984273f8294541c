r"""Cournot and Bertrand competition with differentiated products.

Quadratic consumer utility (Singh & Vives 1984) :math:`U(q) = a\sum_i q_i - \tfrac12 q^\top
B q` with :math:`B = (1-\gamma) I + \gamma \mathbf{1}\mathbf{1}^\top` gives the linear
inverse demand :math:`p_i = a - q_i - \gamma \sum_{j \ne i} q_j`; :math:`\gamma \in [0, 1]`
is the similarity of the products (0: independent monopolies, 1: homogeneous goods).
Firm :math:`i` has marginal cost :math:`c_i` and margin :math:`m_i = a - c_i`.

* Cournot (quantities): :math:`Q = \sum_j m_j / (2 + (n-1)\gamma)`,
  :math:`q_i^* = (m_i - \gamma Q)/(2 - \gamma)`, :math:`\pi_i = (q_i^*)^2`.
* Bertrand (prices, :math:`\gamma < 1`): direct demand :math:`q = B^{-1}(a\mathbf 1 - p)`;
  with :math:`D = \operatorname{diag}(B^{-1})` the first-order conditions form the linear
  system :math:`(B^{-1} + D) p = a B^{-1}\mathbf 1 + D c`.

A firm whose equilibrium quantity is not positive exits (the one with the smallest
quantity first) and the equilibrium is recomputed on the remaining firms' demand system.
Consumer surplus is :math:`U(q) - p^\top q = \tfrac12 q^\top B q`; welfare adds profits.
:func:`equilibrium_deviation_gain` verifies an equilibrium numerically.

User-supplied markets (profit functions solved numerically) are in
:mod:`coopml.competition.user_markets`; these two models are offered there in that form
too (``CournotMarket``, ``BertrandMarket``).

This is the market component of the data-sharing framework of Tsoy & Konstantinov,
"Strategic data sharing between competitors", NeurIPS 2023 (arXiv 2305.16052); the
instantiation is a **reconstruction** of their "conventional market model".

References
----------
N. Singh and X. Vives, "Price and quantity competition in a differentiated duopoly",
RAND Journal of Economics 15 (1984) 546-554.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar

from coopml._validation import check_fraction, check_int

__all__ = [
    "MARKETS",
    "MarketEquilibrium",
    "bertrand_equilibrium",
    "cournot_equilibrium",
    "equilibrium_deviation_gain",
    "equilibrium_profits",
]

MARKETS = ("cournot", "bertrand")
"""Names of the built-in market models."""


def _frozen(values: ArrayLike, dtype: Any = np.float64) -> NDArray[Any]:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True)
class MarketEquilibrium:
    """A Nash equilibrium of the differentiated-products market.

    Parameters
    ----------
    model : str
        ``"cournot"`` or ``"bertrand"``.
    a : ndarray of shape (n_firms,)
        Demand intercepts ``a_i`` (equal unless quality shifts demand).
    costs : ndarray of shape (n_firms,)
        Marginal costs ``c_i``.
    gamma : float
        Product similarity.
    quantities, prices, profits : ndarray of shape (n_firms,)
        Equilibrium quantities, prices and profits (zero quantity and profit, and price
        ``nan``, for firms that exited).
    active : ndarray of bool, shape (n_firms,)
        Firms that produce.

    Examples
    --------
    >>> eq = cournot_equilibrium(1.0, [0.0, 0.0], 0.5)
    >>> eq.quantities.round(4).tolist(), round(eq.consumer_surplus, 4)
    ([0.4, 0.4], 0.24)
    """

    model: str
    a: NDArray[np.float64]
    costs: NDArray[np.float64]
    gamma: float
    quantities: NDArray[np.float64]
    prices: NDArray[np.float64]
    profits: NDArray[np.float64]
    active: NDArray[np.bool_]

    def __post_init__(self) -> None:
        for name in ("a", "costs", "quantities", "prices", "profits"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "active", _frozen(self.active, np.bool_))

    @property
    def n_firms(self) -> int:
        """Number of firms (active or not)."""
        return int(self.costs.shape[0])

    @property
    def consumer_surplus(self) -> float:
        """``q^T B q / 2`` for the quadratic utility."""
        q = self.quantities
        return float(0.5 * ((1 - self.gamma) * q @ q + self.gamma * q.sum() ** 2))

    @property
    def welfare(self) -> float:
        """Consumer surplus plus total profit."""
        return self.consumer_surplus + float(self.profits.sum())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (exited firms' prices are ``None``)."""
        return {
            "model": self.model,
            "a": self.a.tolist(),
            "gamma": self.gamma,
            "costs": self.costs.tolist(),
            "quantities": self.quantities.tolist(),
            "prices": [None if np.isnan(p) else float(p) for p in self.prices],
            "profits": self.profits.tolist(),
            "active": self.active.tolist(),
            "consumer_surplus": self.consumer_surplus,
            "welfare": self.welfare,
        }


def _check_market(
    a: Any, costs: ArrayLike, gamma: Any
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    c = np.atleast_1d(np.asarray(costs, dtype=np.float64))
    if c.ndim != 1 or c.size < 1 or not np.all(np.isfinite(c)):
        raise ValueError(
            f"parameter 'costs' must be a finite 1-D array with at least one firm; got {costs!r}"
        )
    if isinstance(a, bool) or isinstance(a, str):
        raise TypeError(f"parameter 'a' must be a real number or one per firm; got {a!r}")
    try:
        intercepts = np.broadcast_to(np.asarray(a, dtype=np.float64), c.shape).copy()
    except (TypeError, ValueError):
        raise TypeError(
            f"parameter 'a' must be a real number or one per firm ({c.size}); got {a!r}"
        ) from None
    if not np.all(np.isfinite(intercepts)):
        raise ValueError(f"parameter 'a' must be finite; got {a!r}")
    return intercepts, c, check_fraction("gamma", gamma)


def _demand_matrix(n: int, gamma: float) -> NDArray[np.float64]:
    return (1 - gamma) * np.eye(n) + gamma * np.ones((n, n))


def _solve_with_exit(
    model: str, a: NDArray[np.float64], c: NDArray[np.float64], gamma: float
) -> MarketEquilibrium:
    n = c.size
    active = a - c > 0
    q = np.zeros(n)
    p = np.full(n, np.nan)
    while active.any():
        idx = np.flatnonzero(active)
        m = a[idx] - c[idx]
        if model == "cournot":
            qa = (m - gamma * m.sum() / (2 + (idx.size - 1) * gamma)) / (2 - gamma)
        else:
            binv = np.linalg.inv(_demand_matrix(idx.size, gamma))
            d = np.diag(binv)
            pa = np.linalg.solve(binv + np.diag(d), binv @ a[idx] + d * c[idx])
            qa = binv @ (a[idx] - pa)
        if np.all(qa > 0):
            q[idx] = qa
            p[idx] = a[idx] - _demand_matrix(idx.size, gamma) @ qa
            break
        active[idx[np.argmin(qa)]] = False
    profits = np.where(active, (np.nan_to_num(p) - c) * q, 0.0)
    return MarketEquilibrium(
        model=model, a=a, costs=c, gamma=gamma, quantities=q, prices=p, profits=profits,
        active=active,
    )  # fmt: skip


def cournot_equilibrium(a: float | ArrayLike, costs: ArrayLike, gamma: float) -> MarketEquilibrium:
    """Cournot equilibrium with differentiated products and exit.

    Parameters
    ----------
    a : float or array_like of shape (n_firms,)
        Demand intercept(s) ``a_i`` (inverse demand ``p_i = a_i - q_i - gamma sum_j q_j``).
    costs : array_like of shape (n_firms,)
        Marginal costs ``c_i``.
    gamma : float
        Product similarity in ``[0, 1]``.

    Returns
    -------
    MarketEquilibrium

    Examples
    --------
    >>> eq = cournot_equilibrium(1.0, [0.0, 0.2], 0.5)
    >>> eq.quantities.round(4).tolist(), eq.profits.round(4).tolist()
    ([0.4267, 0.2933], [0.182, 0.086])
    """
    return _solve_with_exit("cournot", *_check_market(a, costs, gamma))


def bertrand_equilibrium(a: float | ArrayLike, costs: ArrayLike, gamma: float) -> MarketEquilibrium:
    """Bertrand (price) equilibrium on the same demand system, with exit.

    Parameters
    ----------
    a : float or array_like of shape (n_firms,)
        Demand intercept(s) ``a_i``.
    costs : array_like of shape (n_firms,)
        Marginal costs ``c_i``.
    gamma : float
        Product similarity in ``[0, 1)`` (demand cannot be inverted at ``gamma = 1``).

    Returns
    -------
    MarketEquilibrium

    Examples
    --------
    >>> eq = bertrand_equilibrium(1.0, [0.0, 0.0], 0.5)
    >>> eq.prices.round(4).tolist()
    [0.3333, 0.3333]
    """
    a, c, gamma = _check_market(a, costs, gamma)
    if gamma >= 1:
        raise ValueError(f"parameter 'gamma' must be < 1 for Bertrand competition; got {gamma}")
    return _solve_with_exit("bertrand", a, c, gamma)


def equilibrium_profits(
    a: float | ArrayLike, costs: ArrayLike, gamma: float, market: str = "cournot"
) -> NDArray[np.float64]:
    """Equilibrium profits for a batch of cost vectors (vectorised fast path).

    Interior equilibria of the whole batch come from the closed forms at once; rows
    where some firm would not produce fall back to :func:`cournot_equilibrium` /
    :func:`bertrand_equilibrium` (with exit). Inputs are trusted (internal fast path).

    Parameters
    ----------
    a : float or array_like broadcastable to ``costs``
        Demand intercepts.
    costs : array_like of shape (..., n_firms)
        Marginal costs; leading axes are a batch.
    gamma : float
        Product similarity (``< 1`` for Bertrand).
    market : {"cournot", "bertrand"}

    Returns
    -------
    ndarray of shape (..., n_firms)

    Examples
    --------
    >>> equilibrium_profits(1.0, [[0.0, 0.2], [0.0, 0.9]], 1.0).round(4).tolist()
    [[0.16, 0.04], [0.25, 0.0]]
    """
    c = np.asarray(costs, dtype=np.float64)
    batch = c.reshape(-1, c.shape[-1])
    a_batch = np.broadcast_to(np.asarray(a, dtype=np.float64), c.shape).reshape(batch.shape)
    n = batch.shape[1]
    if market == "cournot":
        m = a_batch - batch
        q = (m - gamma * m.sum(axis=1, keepdims=True) / (2 + (n - 1) * gamma)) / (2 - gamma)
        out = q**2
    else:
        binv = np.linalg.inv(_demand_matrix(n, gamma))
        d = np.diag(binv)
        p = (a_batch @ binv.T + batch * d) @ np.linalg.inv(binv + np.diag(d)).T
        q = (a_batch - p) @ binv.T
        out = (p - batch) * q
    for r in np.flatnonzero(np.any(q <= 0, axis=1)):
        out[r] = _solve_with_exit(market, a_batch[r], batch[r], gamma).profits
    return out.reshape(c.shape)


def _deviation_profit(eq: MarketEquilibrium, i: int, action: float) -> float:
    """Firm ``i``'s profit when it plays ``action`` and the others keep their equilibrium
    actions (quantity for Cournot, price for Bertrand among the active firms)."""
    others = eq.quantities.sum() - eq.quantities[i]
    if eq.model == "cournot":
        return float((eq.a[i] - action - eq.gamma * others - eq.costs[i]) * action)
    idx = np.flatnonzero(eq.active)
    binv = np.linalg.inv(_demand_matrix(idx.size, eq.gamma))
    p = eq.prices[idx].copy()
    k = int(np.flatnonzero(idx == i)[0])
    p[k] = action
    return float((action - eq.costs[i]) * (binv[k] @ (eq.a[idx] - p)))


def equilibrium_deviation_gain(eq: MarketEquilibrium, *, n_grid: int = 201) -> float:
    """Largest profit gain any firm gets from a unilateral deviation.

    For every firm (Cournot: also the exited ones, who may re-enter with any quantity;
    Bertrand: the active firms on their demand system) the profit is maximised over its
    own action with the others fixed -- a grid over the action range followed by bounded
    scalar optimisation (scipy) around the best grid point.

    Parameters
    ----------
    eq : MarketEquilibrium
        The equilibrium to verify.
    n_grid : int
        Grid points per firm.

    Returns
    -------
    float
        ``max_i (max_x pi_i(x, a_{-i}) - pi_i(a*))`` (profits recomputed from the
        actions), clipped at 0; ~0 at an equilibrium.

    Examples
    --------
    >>> eq = cournot_equilibrium(1.0, [0.1, 0.3, 0.2], 0.7)
    >>> equilibrium_deviation_gain(eq) <= 1e-10
    True
    """
    check_int("n_grid", n_grid, minimum=3)
    best = 0.0
    span = float(np.max(eq.a - eq.costs.min()) + np.max(np.abs(eq.a)))
    for i in range(eq.n_firms):
        if eq.model == "cournot":
            lo, hi, current = 0.0, max(span, 1e-12), eq.quantities[i]
        elif eq.active[i]:
            lo, hi, current = float(eq.costs[i]), float(eq.costs[i]) + span, eq.prices[i]
        else:
            continue
        base = _deviation_profit(eq, i, float(current))
        grid = np.linspace(lo, hi, n_grid)
        values = np.array([_deviation_profit(eq, i, x) for x in grid])
        k = int(np.argmax(values))
        res = minimize_scalar(
            lambda x, i=i: -_deviation_profit(eq, i, x),
            bounds=(grid[max(k - 1, 0)], grid[min(k + 1, n_grid - 1)]),
            method="bounded",
            options={"xatol": 1e-12},
        )
        top = max(values[k], -float(res.fun))
        best = max(best, top - base)
    return float(best)
