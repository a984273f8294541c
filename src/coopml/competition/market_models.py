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

User-supplied markets follow the :class:`MarketModel` protocol (profit functions and
action bounds); :func:`solve_equilibrium` finds their pure Nash equilibria by
best-response iteration or by root-finding on the first-order conditions, and every
equilibrium it returns carries the result of a unilateral-deviation check
(:func:`deviation_gain`). :class:`CournotMarket` and :class:`BertrandMarket` are the
built-in models in that form.

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
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar, root

from coopml._validation import check_choice, check_fraction, check_int, check_positive

__all__ = [
    "MARKETS",
    "BertrandMarket",
    "CournotMarket",
    "MarketEquilibrium",
    "MarketModel",
    "NumericalEquilibrium",
    "bertrand_equilibrium",
    "cournot_equilibrium",
    "deviation_gain",
    "equilibrium_deviation_gain",
    "equilibrium_profits",
    "solve_equilibrium",
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


# --------------------------------------------------------------------------------------
# User-supplied market models: profit functions, equilibria found numerically.
# --------------------------------------------------------------------------------------


@runtime_checkable
class MarketModel(Protocol):
    """A market given by its profit functions (structural typing, no inheritance).

    Firm ``i`` chooses an action ``x_i`` (a quantity, a price, ...) in
    ``[lower_i, upper_i]``; its profit depends on all actions and on the firms' demand
    intercepts ``a`` (quality through demand) and marginal costs ``c`` (quality through
    cost). :func:`solve_equilibrium` finds a pure Nash equilibrium numerically and
    verifies it; a model may also offer ``equilibrium_actions(intercepts, costs)`` (a
    closed form), which the solver then verifies instead of searching.
    """

    def profits(
        self,
        actions: NDArray[np.float64],
        intercepts: NDArray[np.float64],
        costs: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Profits of every firm, shape ``(..., n_firms)``, for actions of shape
        ``(..., n_firms)`` (leading axes are a batch; vectorise over them)."""
        ...

    def action_bounds(
        self, intercepts: NDArray[np.float64], costs: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Lower and upper bounds of every firm's action, each of shape (n_firms,)."""
        ...


@dataclass(frozen=True)
class CournotMarket:
    """The built-in Cournot market as a :class:`MarketModel` (quantities ``q >= 0``).

    Profits ``pi_i = (a_i - q_i - gamma sum_{j != i} q_j - c_i) q_i``; the closed form
    (with exit) is offered as ``equilibrium_actions``.

    Examples
    --------
    >>> m = CournotMarket(0.5)
    >>> m.profits(np.array([0.4, 0.4]), np.ones(2), np.zeros(2)).round(4).tolist()
    [0.16, 0.16]
    """

    gamma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", check_fraction("gamma", self.gamma))

    def profits(
        self,
        actions: NDArray[np.float64],
        intercepts: NDArray[np.float64],
        costs: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        q = np.asarray(actions, dtype=np.float64)
        others = q.sum(axis=-1, keepdims=True) - q
        return np.asarray((intercepts - q - self.gamma * others - costs) * q)

    def action_bounds(
        self, intercepts: NDArray[np.float64], costs: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        top = float(np.max(np.asarray(intercepts) - np.asarray(costs)))
        return np.zeros(len(costs)), np.full(len(costs), max(top, 1e-12))

    def equilibrium_actions(
        self, intercepts: NDArray[np.float64], costs: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Equilibrium quantities (closed form with exit)."""
        return cournot_equilibrium(intercepts, costs, self.gamma).quantities


@dataclass(frozen=True)
class BertrandMarket:
    """The built-in Bertrand market as a :class:`MarketModel` (prices ``p >= c``).

    Demand ``q = B^{-1}(a - p)`` of the linear system *without* truncation, so it
    agrees with :func:`bertrand_equilibrium` when every firm is active (``gamma < 1``).

    Examples
    --------
    >>> m = BertrandMarket(0.5)
    >>> p = m.equilibrium_actions(np.ones(2), np.zeros(2))
    >>> p.round(4).tolist()
    [0.3333, 0.3333]
    """

    gamma: float

    def __post_init__(self) -> None:
        gamma = check_fraction("gamma", self.gamma)
        if gamma >= 1:
            raise ValueError(f"parameter 'gamma' must be < 1 for Bertrand competition; got {gamma}")
        object.__setattr__(self, "gamma", gamma)

    def profits(
        self,
        actions: NDArray[np.float64],
        intercepts: NDArray[np.float64],
        costs: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        p = np.asarray(actions, dtype=np.float64)
        binv = np.linalg.inv(_demand_matrix(p.shape[-1], self.gamma))
        return np.asarray((p - costs) * ((intercepts - p) @ binv.T))

    def action_bounds(
        self, intercepts: NDArray[np.float64], costs: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        c = np.asarray(costs, dtype=np.float64)
        return c.copy(), np.maximum(np.asarray(intercepts, dtype=np.float64), c + 1e-12)

    def equilibrium_actions(
        self, intercepts: NDArray[np.float64], costs: NDArray[np.float64]
    ) -> NDArray[np.float64] | None:
        """Equilibrium prices (closed form) when every firm is active, else ``None``."""
        eq = bertrand_equilibrium(intercepts, costs, self.gamma)
        return eq.prices if bool(eq.active.all()) else None


@dataclass(frozen=True, kw_only=True)
class NumericalEquilibrium:
    """A pure Nash equilibrium of a :class:`MarketModel`, verified by deviation checks.

    Parameters
    ----------
    actions, profits, intercepts, costs : ndarray of shape (n_firms,)
    method : str
        ``"closed_form"``, ``"best_response"``, ``"root"`` or ``"root+best_response"``
        (root-finding did not reach a verified equilibrium, e.g. at a corner where a
        firm exits, and best responses took over).
    n_iter : int
        Best-response sweeps or root-finder evaluations.
    max_deviation_gain : float
        Largest profit gain of a unilateral deviation found (grid + bounded optimiser).
    converged : bool
        Whether the search converged **and** no deviation gains more than the tolerance.
    """

    actions: NDArray[np.float64]
    profits: NDArray[np.float64]
    intercepts: NDArray[np.float64]
    costs: NDArray[np.float64]
    method: str
    n_iter: int
    max_deviation_gain: float
    converged: bool

    def __post_init__(self) -> None:
        for name in ("actions", "profits", "intercepts", "costs"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "actions": self.actions.tolist(),
            "profits": self.profits.tolist(),
            "intercepts": self.intercepts.tolist(),
            "costs": self.costs.tolist(),
            "method": self.method,
            "n_iter": self.n_iter,
            "max_deviation_gain": self.max_deviation_gain,
            "converged": self.converged,
        }


def _own_profit(
    market: MarketModel,
    x: NDArray[np.float64],
    i: int,
    values: NDArray[np.float64],
    a: NDArray[np.float64],
    c: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Firm ``i``'s profit for each value of its own action (others fixed at ``x``)."""
    trial = np.repeat(x[None, :], values.size, axis=0)
    trial[:, i] = values
    return np.asarray(market.profits(trial, a, c), dtype=np.float64)[:, i]


def _best_response(
    market: MarketModel,
    x: NDArray[np.float64],
    i: int,
    lo: float,
    hi: float,
    a: NDArray[np.float64],
    c: NDArray[np.float64],
    n_grid: int,
) -> tuple[float, float]:
    """``(argmax, max)`` of firm ``i``'s profit over ``[lo, hi]``: a grid, then a bounded
    scalar search between the best grid point's neighbours."""
    grid = np.linspace(lo, hi, n_grid)
    values = _own_profit(market, x, i, grid, a, c)
    k = int(np.argmax(values))
    res = minimize_scalar(
        lambda v: -float(_own_profit(market, x, i, np.array([v]), a, c)[0]),
        bounds=(grid[max(k - 1, 0)], grid[min(k + 1, n_grid - 1)]),
        method="bounded",
        options={"xatol": 1e-13 * max(1.0, abs(hi))},
    )
    if -float(res.fun) >= values[k]:
        return float(res.x), -float(res.fun)
    return float(grid[k]), float(values[k])


def deviation_gain(
    market: MarketModel,
    actions: ArrayLike,
    intercepts: ArrayLike,
    costs: ArrayLike,
    *,
    n_grid: int = 401,
) -> float:
    """Largest profit gain any firm gets by changing its own action alone.

    For every firm the profit is maximised over its action range (the model's
    ``action_bounds``) with the others fixed: a grid of ``n_grid`` points, then a bounded
    scalar optimiser around the best one.

    Parameters
    ----------
    market : MarketModel
    actions, intercepts, costs : array_like of shape (n_firms,)
    n_grid : int
        Grid points per firm (>= 3).

    Returns
    -------
    float
        ``max_i (max_x pi_i(x, a_{-i}) - pi_i(a))``, clipped at 0.

    Examples
    --------
    >>> m = CournotMarket(0.5)
    >>> deviation_gain(m, [0.4, 0.4], [1.0, 1.0], [0.0, 0.0]) < 1e-12
    True
    >>> round(deviation_gain(m, [0.5, 0.4], [1.0, 1.0], [0.0, 0.0]), 4)
    0.01
    """
    check_int("n_grid", n_grid, minimum=3)
    x = np.asarray(actions, dtype=np.float64)
    a = np.asarray(intercepts, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    base = np.asarray(market.profits(x, a, c), dtype=np.float64)
    lower, upper = market.action_bounds(a, c)
    best = 0.0
    for i in range(x.size):
        _, top = _best_response(market, x, i, float(lower[i]), float(upper[i]), a, c, n_grid)
        best = max(best, top - float(base[i]))
    return best


def solve_equilibrium(
    market: MarketModel,
    intercepts: ArrayLike,
    costs: ArrayLike,
    *,
    method: str = "best_response",
    x0: ArrayLike | None = None,
    tol: float = 1e-8,
    max_iter: int = 500,
    n_grid: int = 201,
    verify: bool = True,
    verify_tol: float = 1e-8,
) -> NumericalEquilibrium:
    """A pure Nash equilibrium of a market model, found numerically and verified.

    If the model offers ``equilibrium_actions`` (a closed form) that is used; otherwise
    ``"best_response"`` iterates exact best responses (grid + bounded scalar search,
    Gauss-Seidel order) until no action moves by more than ``tol``, and ``"root"``
    solves the first-order conditions ``d pi_i / d x_i = 0`` (central differences) with
    :func:`scipy.optimize.root`, started from a few best-response sweeps (falling back
    to best responses when that fails, e.g. at a corner). The result is
    then checked by :func:`deviation_gain`; ``converged`` is false when the search did
    not converge or some firm can gain more than ``verify_tol * max(1, |pi|)``.

    Parameters
    ----------
    market : MarketModel
    intercepts, costs : array_like of shape (n_firms,)
        Demand intercepts and marginal costs (the firms' types).
    method : {"best_response", "root"}
    x0 : array_like of shape (n_firms,), optional
        Start (default: the middle of every action range).
    tol : float
        Convergence tolerance on actions, relative to ``1 + max |x|`` (a bounded scalar
        search locates a smooth maximum to about ``1e-8`` relative, so much smaller
        values cannot be reached).
    max_iter : int
        Bound on best-response sweeps / root-finder evaluations.
    n_grid : int
        Grid points of every best response.
    verify : bool
        Run the deviation check (skip only on internal fast paths).
    verify_tol : float
        Allowed deviation gain, relative to ``max(1, |profit|)``.

    Returns
    -------
    NumericalEquilibrium

    Examples
    --------
    >>> class LogDemandCournot:
    ...     '''Cournot with inverse demand p_i = a_i - log(1 + q_i + g * q_j).'''
    ...     def profits(self, q, a, c):
    ...         others = q.sum(axis=-1, keepdims=True) - q
    ...         return (a - np.log1p(q + 0.5 * others) - c) * q
    ...     def action_bounds(self, a, c):
    ...         return np.zeros(len(a)), np.full(len(a), 10.0)
    >>> eq = solve_equilibrium(LogDemandCournot(), [2.0, 2.0], [0.5, 1.0])
    >>> eq.converged, eq.actions.round(4).tolist()
    (True, [1.3979, 0.4811])
    """
    if not isinstance(market, MarketModel):
        raise TypeError(
            "parameter 'market' must have methods profits(actions, intercepts, costs) and "
            f"action_bounds(intercepts, costs); got {type(market).__name__}"
        )
    check_choice("method", method, ("best_response", "root"))
    c = np.atleast_1d(np.asarray(costs, dtype=np.float64))
    a = np.broadcast_to(np.asarray(intercepts, dtype=np.float64), c.shape).copy()
    if c.ndim != 1 or not (np.all(np.isfinite(c)) and np.all(np.isfinite(a))):
        raise ValueError("parameters 'intercepts' and 'costs' must be finite 1-D arrays")
    check_int("max_iter", max_iter, minimum=1)
    check_positive("tol", tol)
    lower, upper = (np.asarray(b, dtype=np.float64) for b in market.action_bounds(a, c))
    closed = getattr(market, "equilibrium_actions", None)
    x: NDArray[np.float64] | None = None
    if callable(closed):
        x = closed(a, c)
    converged, n_iter, used = True, 0, "closed_form"
    if x is None:
        used = method
        x = (lower + upper) / 2 if x0 is None else np.clip(np.asarray(x0, float), lower, upper)

        def sweep(z: NDArray[np.float64], count: int) -> tuple[NDArray[np.float64], bool, int]:
            for k in range(1, count + 1):
                previous = z.copy()
                for i in range(c.size):
                    z[i], _ = _best_response(market, z, i, lower[i], upper[i], a, c, n_grid)
                if np.max(np.abs(z - previous)) <= tol * (1 + np.max(np.abs(z))):
                    return z, True, k
            return z, False, count

        if method == "best_response":
            x, converged, n_iter = sweep(x, max_iter)
        else:
            x, converged, n_iter = sweep(x, min(5, max_iter))
            if not converged:
                x, converged, n_iter = _root_equilibrium(
                    market, x, a, c, lower, upper, tol, max_iter
                )
                if converged and verify:
                    gain = deviation_gain(market, x, a, c)
                    converged = gain <= verify_tol * max(1.0, float(np.max(np.abs(x))))
                if not converged:  # e.g. a corner (a firm exits): fall back to best responses
                    used = "root+best_response"
                    x, converged, extra = sweep(x, max_iter)
                    n_iter += extra
    x = np.asarray(x, dtype=np.float64)
    profits = np.asarray(market.profits(x, a, c), dtype=np.float64)
    gain = deviation_gain(market, x, a, c) if verify else float("nan")
    if verify:
        converged = converged and gain <= verify_tol * max(1.0, float(np.max(np.abs(profits))))
    return NumericalEquilibrium(
        actions=x, profits=profits, intercepts=a, costs=c, method=used, n_iter=n_iter,
        max_deviation_gain=gain, converged=converged,
    )  # fmt: skip


def _root_equilibrium(
    market: MarketModel,
    x: NDArray[np.float64],
    a: NDArray[np.float64],
    c: NDArray[np.float64],
    lower: NDArray[np.float64],
    upper: NDArray[np.float64],
    tol: float,
    max_iter: int,
) -> tuple[NDArray[np.float64], bool, int]:
    """Solve the first-order conditions with scipy's hybrid Powell method."""
    h = 1e-6 * np.maximum(1.0, upper - lower)
    eye = np.eye(x.size)

    def foc(z: NDArray[np.float64]) -> NDArray[np.float64]:
        up = np.asarray(market.profits(z + eye * h, a, c), dtype=np.float64)
        down = np.asarray(market.profits(z - eye * h, a, c), dtype=np.float64)
        return np.asarray(np.diag(up - down) / (2 * h))

    res = root(foc, x, method="hybr", options={"xtol": tol, "maxfev": max_iter})
    inside = bool(np.all(res.x >= lower - 1e-12) and np.all(res.x <= upper + 1e-12))
    # hybr may stop with "no progress" at machine precision: accept a vanishing gradient
    solved = bool(res.success) or float(np.max(np.abs(res.fun))) <= 1e-7
    return np.clip(res.x, lower, upper), solved and inside, int(res.nfev)
