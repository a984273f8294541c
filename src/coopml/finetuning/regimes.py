r"""Specialist regimes: contribute, free-ride or abstain.

Laufer, Kleinberg & Heidari (2023) observe that every domain specialist either
*contributes* (:math:`\alpha_i > \alpha_0`), *free-rides* (adopts the general model as
is, :math:`\alpha_i = \alpha_0`) or *abstains*. At the generalist's level
:math:`\alpha_0` the conditions are (spec, after the paper):

* contributor iff :math:`(1-\delta_i)\, r_i'(\alpha_0) > \partial\phi_i/\partial\alpha_i`
  at :math:`\alpha_i = \alpha_0` (the marginal revenue of a first step beats its
  marginal cost);
* free-rider iff not, but :math:`(1-\delta_i)\, r_i(\alpha_0) - \phi_i(\alpha_0;\alpha_0) \ge 0`;
* abstainer otherwise.

:func:`regime_conditions` evaluates these conditions; the equilibrium regimes
(:func:`coopml.finetuning.subgame_perfect_equilibrium`) come from the full best response,
which also lets a would-be contributor abstain when its fixed cost exceeds its whole
profit. Pure quadratic increments make every specialist contribute; linear parts create
free-riding and fixed parts abstention. :func:`regime_map` sweeps two parameters.

References
----------
B. Laufer, J. Kleinberg and H. Heidari, "Fine-tuning games: bargaining and adaptation
for general-purpose models", arXiv:2308.04399 (2023).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_positive
from coopml.finetuning.equilibrium import (
    REGIMES,
    Method,
    _check_deltas,
    _check_game,
    subgame_perfect_equilibrium,
)
from coopml.finetuning.game import FineTuningGame

__all__ = ["RegimeMap", "regime_conditions", "regime_map"]


def regime_conditions(game: FineTuningGame, alpha0: float, delta: ArrayLike) -> tuple[str, ...]:
    """Each specialist's regime by the paper's first-order conditions at ``alpha0``.

    Parameters
    ----------
    game : FineTuningGame
    alpha0 : float
        The generalist's performance level (>= 0).
    delta : float or array_like of shape (n,)
        Shares to the generalist.

    Returns
    -------
    tuple of str
        ``"contribute"``, ``"free-ride"`` or ``"abstain"`` per specialist.

    Examples
    --------
    >>> from coopml.finetuning import LinearRevenue, PolynomialCost, Specialist
    >>> quad = PolynomialCost.quadratic
    >>> game = FineTuningGame(quad(1.0), [
    ...     Specialist(quad(1.0), LinearRevenue(1.0), "a"),
    ...     Specialist(quad(1.0, linear=0.8), LinearRevenue(1.0), "b"),
    ...     Specialist(quad(1.0, linear=0.8, fixed=0.5), LinearRevenue(1.0), "c")])
    >>> regime_conditions(game, 0.25, 0.5)
    ('contribute', 'free-ride', 'abstain')
    """
    game = _check_game(game)
    alpha0 = check_positive("alpha0", alpha0, strict=False)
    d = _check_deltas(delta, game.n_specialists)[0]
    out = []
    a0 = np.array(alpha0)
    for s, di in zip(game.specialists, d, strict=True):
        if (1 - di) * float(s.revenue.marginal(a0)) > float(s.cost.marginal(np.array(0.0))):
            out.append("contribute")
        elif (1 - di) * float(s.revenue(a0)) - s.cost.fixed >= 0:
            out.append("free-ride")
        else:
            out.append("abstain")
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class RegimeMap:
    """Equilibrium regimes over a grid of two parameters.

    Parameters
    ----------
    x, y : ndarray of shape (nx,), (ny,)
        The swept parameter values.
    x_label, y_label : str
        Their names.
    names : tuple of str
        Specialist names.
    regimes : ndarray of int8, shape (ny, nx, n)
        Codes into :data:`coopml.finetuning.REGIMES` (0 contribute, 1 free-ride,
        2 abstain) for each specialist.
    generalist_invests : ndarray of bool, shape (ny, nx)
        False where the generalist abstains (then every specialist is coded abstain).
    delta : ndarray of shape (n,)
        The shares used.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    x_label: str
    y_label: str
    names: tuple[str, ...]
    regimes: NDArray[np.int8]
    generalist_invests: NDArray[np.bool_]
    delta: NDArray[np.float64]

    def counts(self) -> dict[str, dict[str, int]]:
        """How many grid cells each specialist spends in each regime."""
        return {
            name: {r: int(np.sum(self.regimes[..., i] == k)) for k, r in enumerate(REGIMES)}
            for i, name in enumerate(self.names)
        }

    def to_dataframe(self) -> pd.DataFrame:
        """Long format: one row per grid cell and specialist."""
        ny, nx, n = self.regimes.shape
        yy, xx, ii = np.meshgrid(np.arange(ny), np.arange(nx), np.arange(n), indexing="ij")
        return pd.DataFrame(
            {
                self.x_label: self.x[xx.ravel()],
                self.y_label: self.y[yy.ravel()],
                "specialist": np.array(self.names)[ii.ravel()],
                "regime": np.array(REGIMES)[self.regimes.ravel()],
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "x_label": self.x_label,
            "y_label": self.y_label,
            "names": list(self.names),
            "regimes": np.array(REGIMES)[self.regimes].tolist(),
            "generalist_invests": self.generalist_invests.tolist(),
            "delta": self.delta.tolist(),
        }


def regime_map(
    build: Callable[[float, float], FineTuningGame],
    x: ArrayLike,
    y: ArrayLike,
    *,
    delta: ArrayLike = 0.5,
    x_label: str = "x",
    y_label: str = "y",
    method: Method = "auto",
) -> RegimeMap:
    """Equilibrium regimes of every specialist over a grid of two parameters.

    Parameters
    ----------
    build : callable
        ``build(x, y) -> FineTuningGame``; every game must have the same specialists.
    x, y : array_like of shape (nx,), (ny,)
        Parameter values.
    delta : float or array_like of shape (n,)
        Shares used in every cell.
    x_label, y_label : str
        Names of the parameters.
    method : {"auto", "closed_form", "numerical"}

    Returns
    -------
    RegimeMap

    Examples
    --------
    >>> from coopml.finetuning import LinearRevenue, PolynomialCost, Specialist
    >>> def build(linear, fixed):
    ...     return FineTuningGame(PolynomialCost.quadratic(1.0), [Specialist(
    ...         PolynomialCost.quadratic(1.0, linear=linear, fixed=fixed), LinearRevenue(1.0))])
    >>> m = regime_map(build, [0.0, 0.9], [0.0, 0.4], x_label="linear", y_label="fixed")
    >>> m.to_dataframe()["regime"].tolist()
    ['contribute', 'free-ride', 'contribute', 'abstain']
    """
    if not callable(build):
        raise TypeError(f"parameter 'build' must be callable; got {type(build).__name__}")
    xs, ys = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (x, y))
    for name, v in (("x", xs), ("y", ys)):
        if v.size == 0 or not np.all(np.isfinite(v)):
            raise ValueError(
                f"parameter '{name}' must be a non-empty finite sequence; got {v.tolist()}"
            )
    names: tuple[str, ...] | None = None
    codes: list[list[list[int]]] = []
    invests: list[list[bool]] = []
    d_used = np.zeros(0)
    for yv in ys:
        row, inv = [], []
        for xv in xs:
            game = _check_game(build(float(xv), float(yv)))
            if names is None:
                names = game.names
            elif game.names != names:
                raise ValueError(
                    f"parameter 'build' must return games with the same specialists; got "
                    f"{list(game.names)} after {list(names)}"
                )
            eq = subgame_perfect_equilibrium(game, delta, method=method)
            d_used = eq.delta
            row.append([REGIMES.index(r) for r in eq.regimes])
            inv.append(eq.generalist_invests)
        codes.append(row)
        invests.append(inv)
    assert names is not None
    return RegimeMap(
        x=xs,
        y=ys,
        x_label=x_label,
        y_label=y_label,
        names=names,
        regimes=np.array(codes, dtype=np.int8),
        generalist_invests=np.array(invests, dtype=bool),
        delta=d_used,
    )
