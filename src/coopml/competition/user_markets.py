r"""Market models given by their profit functions, solved numerically.

A user's market follows the :class:`MarketModel` protocol (profit functions and action
bounds, no inheritance); :func:`solve_equilibrium` finds its pure Nash equilibria by
best-response iteration or by root-finding on the first-order conditions, and every
equilibrium it returns carries the result of a unilateral-deviation check
(:func:`deviation_gain`). :class:`CournotMarket` and :class:`BertrandMarket` are the
closed-form models of :mod:`coopml.competition.market_models` in that form.

Part of the **reconstruction** of Tsoy & Konstantinov, "Strategic data sharing between
competitors", NeurIPS 2023 (arXiv 2305.16052): their framework takes any market model;
this module is where a user's own one plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize_scalar, root

from coopml._validation import check_choice, check_fraction, check_int, check_positive
from coopml.competition.market_models import (
    _demand_matrix,
    _frozen,
    bertrand_equilibrium,
    cournot_equilibrium,
)

__all__ = [
    "BertrandMarket",
    "CournotMarket",
    "MarketModel",
    "NumericalEquilibrium",
    "deviation_gain",
    "solve_equilibrium",
]


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
