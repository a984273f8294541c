r"""Utility-possibility sets :math:`S \subset \mathbb{R}^n` of bargaining problems.

A bargaining problem (Nash 1950) is a pair :math:`(S, d)`: the utility vectors the
:math:`n` players can reach by agreement and the disagreement point :math:`d` they get
otherwise. coopml describes :math:`S` in three ways:

* :class:`UtilityCurve` -- a parametrised curve :math:`t \mapsto (u_1(t), \dots, u_n(t))`
  on an interval :math:`[a, b]` (e.g. the revenue share :math:`\delta` of a fine-tuning
  game, Laufer, Kleinberg & Heidari 2023). Searched on a grid and refined locally; known
  breakpoints (where the curve may jump or kink) are sampled exactly and on both sides.
* :class:`FiniteUtilitySet` -- finitely many outcomes (rows of utilities). Exact.
* :class:`ConvexUtilitySet` -- a convex set described to cvxpy: a decision variable
  :math:`x`, concave utilities :math:`u(x)` and convex constraints. Solved exactly by
  convex programming (e.g. Nash: :math:`\max \sum_i \log(u_i(x) - d_i)`).

References
----------
J. F. Nash, "The bargaining problem", Econometrica 18 (1950) 155-162.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_int

__all__ = ["ONE_SIDED", "ConvexUtilitySet", "FiniteUtilitySet", "UtilityCurve", "UtilitySet"]

ONE_SIDED = 1e-9
"""Offset, relative to the parameter range, of the one-sided samples next to a breakpoint."""


@dataclass(frozen=True)
class UtilityCurve:
    """A utility-possibility curve ``t -> (u_1(t), ..., u_n(t))`` for ``t`` in ``interval``.

    Parameters
    ----------
    utilities : callable
        Maps parameters of shape (m,) to utilities of shape (m, n_players); with
        ``vectorized=False`` it maps one float to shape (n_players,).
    interval : (float, float)
        The parameter range ``[a, b]``, ``a < b``.
    n_grid : int
        Grid points used for the global search (each solution is then refined locally).
    vectorized : bool
        Whether ``utilities`` accepts an array of parameters.
    breakpoints : sequence of float
        Parameters where the curve may jump or kink (it is continuous between them). Each
        breakpoint ``b`` joins the grid together with ``b - h`` and ``b + h``
        (``h`` is :data:`ONE_SIDED` times the length of ``interval``): the value at ``b``
        and the curve's one-sided values next to it are all searched, so an outcome
        attained only at a jump or at the end of a piece is not lost between grid points.

    Attributes
    ----------
    grid : ndarray of shape (m,)
        The sorted search grid: ``n_grid`` equally spaced parameters plus the breakpoint
        samples.
    values : ndarray of shape (m, n_players)
        Utilities on ``grid``.

    Examples
    --------
    >>> curve = UtilityCurve(lambda t: np.column_stack([t, 1 - t**2]))
    >>> curve.n_players, curve(0.5).tolist()
    (2, [0.5, 0.75])
    >>> jump = UtilityCurve(lambda t: np.column_stack([t, (t < 0.2) * 1.0]), n_grid=3,
    ...                     breakpoints=[0.2])
    >>> jump.breakpoints, jump.grid.size, jump.values[:, 1].tolist()
    ((0.2,), 6, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    """

    utilities: Callable[..., ArrayLike]
    interval: tuple[float, float] = (0.0, 1.0)
    n_grid: int = 2001
    vectorized: bool = True
    breakpoints: tuple[float, ...] = ()
    grid: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    values: NDArray[np.float64] = field(init=False, repr=False, compare=False)
    cache: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not callable(self.utilities):
            raise TypeError(
                f"parameter 'utilities' must be callable; got {type(self.utilities).__name__}"
            )
        try:
            lo, hi = (float(v) for v in self.interval)
        except (TypeError, ValueError):
            raise TypeError(
                f"parameter 'interval' must be a pair of numbers; got {self.interval!r}"
            ) from None
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"parameter 'interval' must be finite with low < high; got ({lo}, {hi})"
            )
        check_int("n_grid", self.n_grid, minimum=3)
        object.__setattr__(self, "interval", (lo, hi))
        try:
            breaks = np.array(self.breakpoints, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise TypeError(
                f"parameter 'breakpoints' must be a sequence of numbers; got {self.breakpoints!r}"
            ) from None
        if not np.all(np.isfinite(breaks) & (breaks >= lo) & (breaks <= hi)):
            bad = breaks[~(np.isfinite(breaks) & (breaks >= lo) & (breaks <= hi))][0]
            raise ValueError(f"parameter 'breakpoints' must lie in [{lo}, {hi}]; got {bad}")
        breaks = np.unique(breaks)
        object.__setattr__(self, "breakpoints", tuple(float(b) for b in breaks))
        h = ONE_SIDED * (hi - lo)
        samples = np.concatenate([breaks - h, breaks, breaks + h])
        grid = np.unique(np.concatenate([np.linspace(lo, hi, self.n_grid), samples]).clip(lo, hi))
        values = self.evaluate(grid)
        if values.shape[1] < 2:
            raise ValueError(
                f"parameter 'utilities' must return at least 2 players' utilities; "
                f"got {values.shape[1]}"
            )
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "values", values)

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.values.shape[1])

    def evaluate(self, t: ArrayLike) -> NDArray[np.float64]:
        """Utilities at parameters ``t`` (shape (m,)), as an array of shape (m, n_players)."""
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        if self.vectorized:
            out = np.asarray(self.utilities(t), dtype=np.float64)
        else:
            out = np.array([np.asarray(self.utilities(float(x)), dtype=np.float64) for x in t])
        if out.ndim != 2 or out.shape[0] != t.shape[0]:
            raise ValueError(
                f"parameter 'utilities' must map {t.shape[0]} parameters to an array of shape "
                f"({t.shape[0]}, n_players); got shape {out.shape}"
            )
        if not np.all(np.isfinite(out)):
            raise ValueError("parameter 'utilities' must return finite utilities; got NaN or inf")
        return out

    def __call__(self, t: float) -> NDArray[np.float64]:
        return self.evaluate([t])[0]


@dataclass(frozen=True)
class FiniteUtilitySet:
    """Finitely many outcomes, one row of utilities each.

    Parameters
    ----------
    utilities : array_like of shape (n_outcomes, n_players)
        Utility of each player under each outcome.
    outcomes : sequence of length n_outcomes, optional
        A label (or any object, e.g. a parameter vector) for each row; reported as the
        solution's ``point``. Defaults to the row index.

    Examples
    --------
    >>> s = FiniteUtilitySet([[1, 0], [0, 1], [0.4, 0.4]], outcomes=["a", "b", "c"])
    >>> s.n_players, s.n_outcomes
    (2, 3)
    """

    utilities: NDArray[np.float64]
    outcomes: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        try:
            values = np.array(self.utilities, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("parameter 'utilities' must be a numeric 2-D array") from None
        if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 2:
            raise ValueError(
                "parameter 'utilities' must have shape (n_outcomes >= 1, n_players >= 2); "
                f"got shape {values.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError("parameter 'utilities' must be finite (no NaN or inf)")
        values.setflags(write=False)
        object.__setattr__(self, "utilities", values)
        if self.outcomes is not None:
            outcomes = tuple(self.outcomes)
            if len(outcomes) != values.shape[0]:
                raise ValueError(
                    f"parameter 'outcomes' must have one entry per row ({values.shape[0]}); "
                    f"got {len(outcomes)}"
                )
            object.__setattr__(self, "outcomes", outcomes)

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.utilities.shape[1])

    @property
    def n_outcomes(self) -> int:
        """Number of outcomes."""
        return int(self.utilities.shape[0])

    def outcome(self, index: int) -> Any:
        """The label of row ``index`` (the index itself when no labels were given)."""
        return index if self.outcomes is None else self.outcomes[index]


def import_cvxpy() -> Any:
    """cvxpy, which convex utility sets need (the optional ``convex`` extra)."""
    try:
        import cvxpy
    except ImportError as exc:  # pragma: no cover - the test environment has the extra
        raise ImportError("convex utility sets need cvxpy: pip install 'coopml[convex]'") from exc
    return cvxpy


@dataclass(frozen=True)
class ConvexUtilitySet:
    """A convex utility-possibility set described to cvxpy.

    ``S = {u(x) : x satisfies constraints}`` for a decision variable ``x`` of shape
    ``(dim,)``, utilities ``u(x)`` concave in ``x`` (affine is typical) and convex
    constraints. ``build(x)`` returns ``(u_expression, constraints)``; ``u_expression``
    has shape (n_players,). With ``dim`` left out, ``x`` has one entry per player and
    ``build`` usually returns ``(x, [...])``: then ``x`` *is* the utility vector.

    Parameters
    ----------
    n_players : int
        Number of players (>= 2).
    build : callable
        ``build(x: cvxpy.Variable) -> (cvxpy.Expression, list[cvxpy.Constraint])``.
    dim : int, optional
        Length of the decision variable; defaults to ``n_players``.
    solver : str, optional
        cvxpy solver name (default: CLARABEL with tight tolerances, which handles every
        problem here -- exponential cones for Nash).

    Examples
    --------
    >>> s = ConvexUtilitySet(2, lambda u: (u, [u >= 0, u[0] + 2 * u[1] <= 2]))
    >>> s.n_players, s.dim
    (2, 2)
    """

    n_players: int
    build: Callable[[Any], tuple[Any, Sequence[Any]]]
    dim: int | None = None
    solver: str | None = None

    def __post_init__(self) -> None:
        check_int("n_players", self.n_players, minimum=2)
        if not callable(self.build):
            raise TypeError(f"parameter 'build' must be callable; got {type(self.build).__name__}")
        object.__setattr__(
            self,
            "dim",
            self.n_players if self.dim is None else check_int("dim", self.dim, minimum=1),
        )

    def instantiate(self) -> tuple[Any, Any, list[Any]]:
        """A fresh ``(x, u, constraints)`` triple of cvxpy objects."""
        cp = import_cvxpy()

        x = cp.Variable(self.n_players if self.dim is None else self.dim)
        built = self.build(x)
        if not (isinstance(built, tuple) and len(built) == 2):
            raise TypeError(
                "parameter 'build' must return a pair (utilities expression, constraints); "
                f"got {type(built).__name__}"
            )
        u, constraints = built
        u = cp.Expression.cast_to_const(u)
        if u.size != self.n_players:
            raise ValueError(
                f"parameter 'build' must return {self.n_players} utilities (one per player); "
                f"got an expression of shape {u.shape}"
            )
        if u.shape != (self.n_players,):
            u = cp.reshape(u, (self.n_players,), order="C")
        return x, u, list(constraints)


UtilitySet = UtilityCurve | FiniteUtilitySet | ConvexUtilitySet
