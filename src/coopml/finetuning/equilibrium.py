r"""Subgame-perfect equilibria of the fine-tuning game by backward induction.

For fixed revenue shares :math:`\delta = (\delta_1, \dots, \delta_n)` (Laufer,
Kleinberg & Heidari 2023): each specialist best-responds to every :math:`\alpha_0` --
contribute (:math:`\alpha_i > \alpha_0`, interior KKT point), free-ride
(:math:`\alpha_i = \alpha_0`, boundary) or abstain (utility 0) -- and the generalist
chooses :math:`\alpha_0` to maximise
:math:`U_G(\alpha_0) = \sum_{i \text{ in}} \delta_i r_i(\alpha_i^*(\alpha_0)) - \phi_0(\alpha_0)`,
a piecewise problem whose pieces change where specialists enter, searched globally
(grid, every jump point, local refinement) -- or abstains. Quadratic costs with linear
revenue have DERIVED closed forms (:mod:`coopml.finetuning.closed_form`), used as the
fast path with ``method="auto"``.

:func:`deviation_gains` verifies an equilibrium independently: the best gain any player
can get by deviating unilaterally (a brute-force grid for every specialist, a dense grid
of generalist investments each followed by the specialists' best responses).

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

import coopml.finetuning._solver as _solver
from coopml._validation import check_choice, check_int
from coopml.finetuning.closed_form import quadratic_vertical_integration
from coopml.finetuning.game import FineTuningGame

__all__ = [
    "REGIMES",
    "Equilibrium",
    "IntegratedOutcome",
    "deviation_gains",
    "solve_shares",
    "subgame_perfect_equilibrium",
    "vertical_integration",
]

REGIMES = _solver.REGIMES
Array = NDArray[np.float64]
Method = Literal["auto", "closed_form", "numerical"]


def _frozen(values: Any, dtype: Any = np.float64) -> NDArray[Any]:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, kw_only=True)
class Equilibrium:
    """A subgame-perfect equilibrium of the fine-tuning game for given shares.

    Parameters
    ----------
    delta : ndarray of shape (n,)
        Revenue share of each domain going to the generalist.
    alpha0 : float
        Generalist's performance level (0 when it abstains).
    alpha : ndarray of shape (n,)
        Performance in each domain; 0 for an abstaining specialist (no product there).
    regimes : tuple of str
        ``"contribute"``, ``"free-ride"`` or ``"abstain"`` per specialist.
    u_generalist : float
        ``U_G`` (0 when the generalist abstains).
    u_specialists : ndarray of shape (n,)
        ``U_i`` per specialist.
    generalist_invests : bool
        False when the generalist abstains (nothing is built; all utilities 0).
    names : tuple of str
        Specialist names.
    method : str
        ``"closed_form"`` (DERIVED formulas) or ``"numerical"``.

    Examples
    --------
    >>> eq = subgame_perfect_equilibrium(FineTuningGame.quadratic(1.0, 1.0, 1.0), 0.5)
    >>> eq.alpha0, eq.alpha.tolist(), eq.regimes
    (0.25, [0.5], ('contribute',))
    """

    delta: NDArray[np.float64]
    alpha0: float
    alpha: NDArray[np.float64]
    regimes: tuple[str, ...]
    u_generalist: float
    u_specialists: NDArray[np.float64]
    generalist_invests: bool = True
    names: tuple[str, ...] = ()
    method: str = "numerical"
    converged: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("delta", "alpha", "u_specialists"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        object.__setattr__(self, "alpha0", float(self.alpha0))
        object.__setattr__(self, "u_generalist", float(self.u_generalist))

    @property
    def welfare(self) -> float:
        """Total utility ``U_G + sum_i U_i``."""
        return self.u_generalist + float(self.u_specialists.sum())

    @property
    def performance(self) -> float:
        """Total performance ``sum_i alpha_i`` across domains."""
        return float(self.alpha.sum())

    def to_dataframe(self) -> pd.DataFrame:
        """One row per specialist: name, share, performance, regime, utility."""
        return pd.DataFrame(
            {
                "specialist": list(self.names),
                "delta": self.delta,
                "alpha": self.alpha,
                "regime": list(self.regimes),
                "utility": self.u_specialists,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "delta": self.delta.tolist(),
            "alpha0": self.alpha0,
            "alpha": self.alpha.tolist(),
            "regimes": list(self.regimes),
            "u_generalist": self.u_generalist,
            "u_specialists": self.u_specialists.tolist(),
            "generalist_invests": bool(self.generalist_invests),
            "names": list(self.names),
            "method": self.method,
            "welfare": self.welfare,
        }


@dataclass(frozen=True, kw_only=True)
class IntegratedOutcome:
    """The vertically integrated benchmark: one firm pays every cost, earns all revenue.

    Examples
    --------
    >>> vertical_integration(FineTuningGame.quadratic(1.0, 1.0, 1.0)).welfare
    0.5
    """

    alpha0: float
    alpha: NDArray[np.float64]
    served: tuple[bool, ...]
    welfare: float
    method: str = "numerical"

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _frozen(self.alpha))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "alpha0": float(self.alpha0),
            "alpha": self.alpha.tolist(),
            "served": list(self.served),
            "welfare": float(self.welfare),
            "method": self.method,
        }


def _check_game(game: Any) -> FineTuningGame:
    if not isinstance(game, FineTuningGame):
        raise TypeError(f"parameter 'game' must be a FineTuningGame; got {type(game).__name__}")
    return game


def _check_deltas(delta: ArrayLike, n: int) -> Array:
    """Shares as an (m, n) array: a float or (n,) vector is one row; (m,) with n > 1 are
    common shares; (m, n) is used as is."""
    try:
        d = np.array(delta, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"parameter 'delta' must be numeric; got {delta!r}") from None
    if d.ndim == 0:
        d = np.full((1, n), float(d))
    elif d.ndim == 1:
        d = d[None, :] if d.shape[0] == n else np.repeat(d[:, None], n, axis=1)
    if d.ndim != 2 or d.shape[1] != n:
        raise ValueError(
            f"parameter 'delta' must be a share, one share per specialist ({n}) or an (m, {n}) "
            f"array; got shape {np.shape(delta)}"
        )
    if not np.all(np.isfinite(d)) or np.any(d < 0) or np.any(d > 1):
        bad = d[~(np.isfinite(d) & (d >= 0) & (d <= 1))][0]
        raise ValueError(f"parameter 'delta' must lie in [0, 1]; got {bad}")
    return d


def _use_closed_form(game: FineTuningGame, method: str) -> bool:
    check_choice("method", method, ("auto", "closed_form", "numerical"))
    if method == "closed_form" and not game.closed_form:
        raise ValueError(
            "parameter 'method' is 'closed_form' but the game needs pure quadratic costs and "
            "linear revenue; use method='numerical' or 'auto'"
        )
    return method == "closed_form" or (method == "auto" and game.closed_form)


def solve_shares(
    game: FineTuningGame, delta: ArrayLike, *, method: Method = "auto"
) -> dict[str, Any]:
    """Equilibria for a batch of shares, as arrays (the vectorised core).

    Parameters
    ----------
    game : FineTuningGame
    delta : array_like of shape (m,) (common shares), (m, n) or (n,)
        Shares to evaluate.
    method : {"auto", "closed_form", "numerical"}

    Returns
    -------
    dict
        ``alpha0 (m,)``, ``alpha (m, n)``, ``u_generalist (m,)``, ``u_specialists (m, n)``,
        ``regimes (m, n)`` (codes into :data:`REGIMES`), ``invests (m,)``, ``method``.

    Examples
    --------
    >>> out = solve_shares(FineTuningGame.quadratic(1.0, 2.0, 1.0), [0.0, 0.5, 1.0])
    >>> out["alpha0"].tolist()
    [0.0, 0.25, 0.5]
    """
    game = _check_game(game)
    deltas = _check_deltas(delta, game.n_specialists)
    if _use_closed_form(game, method):
        out: dict[str, Any] = dict(_solver.closed_form_batch(game, deltas), method="closed_form")
    else:
        out = dict(_solver.solve_batch(game, deltas), method="numerical")
    return out


def subgame_perfect_equilibrium(
    game: FineTuningGame, delta: ArrayLike, *, method: Method = "auto"
) -> Equilibrium:
    """The subgame-perfect equilibrium for revenue shares ``delta``.

    Parameters
    ----------
    game : FineTuningGame
        The game.
    delta : float or array_like of shape (n,)
        A common share for every domain, or one share per specialist.
    method : {"auto", "closed_form", "numerical"}
        ``"auto"`` uses the DERIVED closed forms when every cost is pure quadratic and
        every revenue linear, the numerical backward induction otherwise.

    Returns
    -------
    Equilibrium

    Examples
    --------
    >>> from coopml.finetuning import PolynomialCost, LinearRevenue, Specialist
    >>> game = FineTuningGame(PolynomialCost.quadratic(1.0), [
    ...     Specialist(PolynomialCost.quadratic(1.0, linear=0.8), LinearRevenue(1.0), "a"),
    ...     Specialist(PolynomialCost.quadratic(1.0, fixed=1.0), LinearRevenue(1.0), "b")])
    >>> subgame_perfect_equilibrium(game, 0.5).regimes
    ('free-ride', 'abstain')
    """
    game = _check_game(game)
    deltas = _check_deltas(delta, game.n_specialists)
    if deltas.shape[0] != 1:
        raise ValueError(
            f"parameter 'delta' must be one share or one per specialist ({game.n_specialists}); "
            f"got shape {np.shape(delta)}"
        )
    out = solve_shares(game, deltas, method=method)
    return Equilibrium(
        delta=deltas[0],
        alpha0=float(out["alpha0"][0]),
        alpha=out["alpha"][0],
        regimes=tuple(REGIMES[k] for k in out["regimes"][0]),
        u_generalist=float(out["u_generalist"][0]),
        u_specialists=out["u_specialists"][0],
        generalist_invests=bool(out["invests"][0]),
        names=game.names,
        method=out["method"],
    )


def vertical_integration(game: FineTuningGame, *, method: Method = "auto") -> IntegratedOutcome:
    """The vertically integrated benchmark: maximise total welfare
    ``sum_i [r_i(alpha_i) - phi_i(alpha_i - alpha0)] - phi_0(alpha0)`` over all levels, a
    domain being served only when it pays for itself.

    Examples
    --------
    >>> out = vertical_integration(FineTuningGame.quadratic(1.0, 1.0, 1.0), method="numerical")
    >>> round(out.alpha0, 6), round(out.welfare, 6)
    (0.5, 0.5)
    """
    game = _check_game(game)
    if _use_closed_form(game, method):
        c0, c, r = game.quadratic_parameters
        out = quadratic_vertical_integration(c0, c, r)
        return IntegratedOutcome(
            alpha0=out["alpha0"],
            alpha=out["alpha"],
            served=(True,) * game.n_specialists,
            welfare=out["welfare"],
            method="closed_form",
        )
    res = _solver.solve_batch(game, np.zeros((1, game.n_specialists)), welfare=True)
    welfare = float(res["u_generalist"][0])  # the first mover's objective is the welfare
    return IntegratedOutcome(
        alpha0=float(res["alpha0"][0]),
        alpha=res["alpha"][0],
        served=tuple(bool(k != _solver.ABSTAIN) for k in res["regimes"][0]),
        welfare=welfare,
    )


def deviation_gains(game: FineTuningGame, equilibrium: Equilibrium, *, n_grid: int = 4001) -> Array:
    """The largest gain each player gets from a unilateral deviation (brute force).

    Specialists: every increment on a grid of ``n_grid`` points over twice the search
    range, and abstaining, at the equilibrium ``alpha0``. Generalist: every investment
    on a grid of ``n_grid`` points over twice its search range (each followed by the
    specialists' best responses, as subgame perfection requires), and abstaining. An
    equilibrium has every gain ``<= 0`` up to numerical tolerance.

    Returns
    -------
    ndarray of shape (n + 1,)
        Gain of the generalist, then of each specialist.

    Examples
    --------
    >>> game = FineTuningGame.quadratic(1.0, 2.0, 1.0)
    >>> eq = subgame_perfect_equilibrium(game, 0.4)
    >>> bool(np.all(deviation_gains(game, eq) <= 1e-12))
    True
    """
    game = _check_game(game)
    check_int("n_grid", n_grid, minimum=3)
    A0, X = game.search_bounds()
    delta = equilibrium.delta
    gains = np.zeros(game.n_specialists + 1)
    if equilibrium.generalist_invests:
        for i, s in enumerate(game.specialists):
            alpha = equilibrium.alpha0 + np.linspace(0.0, 2 * X[i], n_grid)
            u = (1 - delta[i]) * s.revenue(alpha) - s.cost(alpha - equilibrium.alpha0)
            gains[i + 1] = max(float(u.max()), 0.0) - float(equilibrium.u_specialists[i])
    a0 = np.linspace(0.0, 2 * A0, n_grid)
    u_g, _, _, _ = _solver.outcome(game, a0, np.broadcast_to(delta, (n_grid, delta.size)))
    gains[0] = max(float(u_g.max()), 0.0) - equilibrium.u_generalist
    return gains
