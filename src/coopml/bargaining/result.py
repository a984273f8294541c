"""Result objects of the bargaining toolkit.

A :class:`BargainingSolution` is one chosen outcome of a bargaining problem
``(S, d)``: its utilities ``u`` in ``S``, the gains ``u - d`` over the disagreement
point, where the outcome lies in the set's own coordinates (``parameter`` on a curve,
``index`` in a finite set, ``point`` in every case) and whether it is Pareto optimal in
``S``. A :class:`ParetoFrontier` lists the non-dominated outcomes of ``S``; on a curve,
its Pareto-optimal parameters form a :class:`ParetoSet`, a union of closed intervals
and isolated points.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["BargainingSolution", "ParetoFrontier", "ParetoSet"]


def _frozen(values: Any) -> NDArray[np.float64]:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars / arrays (nested in dicts, lists, tuples) to plain Python."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


@dataclass(frozen=True, kw_only=True)
class BargainingSolution:
    """One solution of a bargaining problem ``(S, d)``.

    Parameters
    ----------
    method : str
        ``"nash"``, ``"kalai_smorodinsky"``, ``"egalitarian"`` or ``"utilitarian"``.
    utilities : ndarray of shape (n_players,)
        The chosen utility vector ``u``; equals ``disagreement`` when no agreement
        improves on it.
    disagreement : ndarray of shape (n_players,)
        The disagreement point ``d``.
    point : object
        The chosen outcome in the set's own coordinates: the curve parameter ``t``
        (float), the finite set's outcome label (its index when no labels were given),
        or the value of the convex set's decision variable (ndarray). ``None`` when
        there is no agreement.
    parameter : float or None
        The curve parameter ``t`` (curves only).
    index : int or None
        The row of the chosen outcome (finite sets only).
    pareto_optimal : bool
        Whether no outcome of ``S`` weakly improves every player and strictly one
        (checked numerically with a small tolerance on curves and convex sets).
    agreement : bool
        Whether some outcome gives every player a gain (strict for Nash); when false
        the solution is the disagreement point.
    converged : bool
        Whether the numerical search or the convex solver succeeded.
    info : mapping
        Method details (solver status, ideal point, objective value, ...).

    Examples
    --------
    >>> s = BargainingSolution(method="nash", utilities=[1.0, 2.0], disagreement=[0.0, 0.0])
    >>> s.gains.tolist(), s.to_dict()["utilities"]
    ([1.0, 2.0], [1.0, 2.0])
    """

    method: str
    utilities: NDArray[np.float64]
    disagreement: NDArray[np.float64]
    point: Any = None
    parameter: float | None = None
    index: int | None = None
    pareto_optimal: bool = True
    agreement: bool = True
    converged: bool = True
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "utilities", _frozen(self.utilities))
        object.__setattr__(self, "disagreement", _frozen(self.disagreement))

    @property
    def gains(self) -> NDArray[np.float64]:
        """``utilities - disagreement``, shape (n_players,)."""
        return self.utilities - self.disagreement

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.utilities.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the solution."""
        return {
            "method": self.method,
            "utilities": self.utilities.tolist(),
            "gains": self.gains.tolist(),
            "disagreement": self.disagreement.tolist(),
            "point": jsonable(self.point),
            "parameter": self.parameter,
            "index": self.index,
            "pareto_optimal": bool(self.pareto_optimal),
            "agreement": bool(self.agreement),
            "converged": bool(self.converged),
            "info": jsonable(dict(self.info)),
        }


@dataclass(frozen=True)
class ParetoSet(Sequence[tuple[float, float]]):
    """The Pareto-optimal parameters of a utility curve: a union of closed intervals and
    isolated points.

    A curve ``t -> u(t)`` that jumps or has flat pieces (e.g. the subgame-perfect
    utilities of a fine-tuning game, where one player's utility stays at 0 while the
    other's rises and falls) can have Pareto-optimal parameters that no interval of
    positive length contains: such a parameter is an isolated point of the set.

    As a sequence, a ``ParetoSet`` holds its connected components in increasing order as
    ``(low, high)`` pairs, an isolated point ``p`` as the degenerate pair ``(p, p)``; the
    same pairs are its JSON form (:meth:`to_list`).

    Parameters
    ----------
    intervals : sequence of (float, float)
        Closed intervals ``[low, high]`` with ``low < high`` (a pair with ``low == high``
        is read as a point).
    points : sequence of float
        Isolated Pareto-optimal parameters.

    Examples
    --------
    >>> s = ParetoSet(intervals=[(1 / 3, 0.8911)], points=[0.8975])
    >>> print(s)
    [0.3333, 0.8911] ∪ {0.8975}
    >>> s.contains(0.5), s.contains(0.8975), s.contains(0.895), len(s), s.connected
    (True, True, False, 2, False)
    >>> s.to_list()
    [[0.3333333333333333, 0.8911], [0.8975, 0.8975]]
    """

    intervals: tuple[tuple[float, float], ...] = ()
    points: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        intervals: list[tuple[float, float]] = []
        points = [float(p) for p in self.points]
        for pair in self.intervals:
            try:
                low, high = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise TypeError(
                    f"parameter 'intervals' must hold (low, high) pairs; got {pair!r}"
                ) from None
            if not low <= high:
                raise ValueError(
                    f"parameter 'intervals' must hold pairs with low <= high; got ({low}, {high})"
                )
            if low == high:
                points.append(low)
            else:
                intervals.append((low, high))
        if not all(np.isfinite(v) for pair in intervals for v in pair) or not all(
            np.isfinite(p) for p in points
        ):
            raise ValueError("parameters 'intervals' and 'points' must be finite")
        object.__setattr__(self, "intervals", tuple(sorted(intervals)))
        object.__setattr__(self, "points", tuple(sorted(set(points))))

    @property
    def components(self) -> tuple[tuple[float, float], ...]:
        """Intervals and points (as ``(p, p)``) in increasing order."""
        return tuple(sorted([*self.intervals, *((p, p) for p in self.points)]))

    def __len__(self) -> int:
        return len(self.intervals) + len(self.points)

    @overload
    def __getitem__(self, index: int) -> tuple[float, float]: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[float, float], ...]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[float, float] | tuple[tuple[float, float], ...]:
        return self.components[index]

    def __iter__(self) -> Iterator[tuple[float, float]]:
        return iter(self.components)

    @property
    def connected(self) -> bool:
        """Whether the set is empty, one interval or one point."""
        return len(self) <= 1

    def contains(self, t: float, *, tol: float = 1e-9) -> bool:
        """Whether parameter ``t`` lies in an interval or within ``tol`` of a point."""
        return any(a - tol <= t <= b + tol for a, b in self.components)

    def to_list(self) -> list[list[float]]:
        """The components as ``[low, high]`` lists, an isolated point as ``[p, p]``."""
        return [[a, b] for a, b in self.components]

    def to_dict(self) -> dict[str, Any]:
        """``{"intervals": [[low, high], ...], "points": [p, ...]}``."""
        return {"intervals": [list(i) for i in self.intervals], "points": list(self.points)}

    def format(self, digits: int = 4) -> str:
        """``[a, b] ∪ {p} ∪ ...`` with ``digits`` decimals (``∅`` when empty)."""
        parts = [
            f"{{{a:.{digits}f}}}" if a == b else f"[{a:.{digits}f}, {b:.{digits}f}]"
            for a, b in self.components
        ]
        return " ∪ ".join(parts) if parts else "∅"

    def __str__(self) -> str:
        return self.format()


@dataclass(frozen=True, kw_only=True)
class ParetoFrontier:
    """The Pareto-optimal (non-dominated) part of a utility-possibility set.

    Parameters
    ----------
    utilities : ndarray of shape (n_points, n_players)
        Utility vectors of the Pareto-optimal outcomes found (grid points on a curve,
        the rows of a finite set, weighted-sum maximisers of a convex set).
    points : tuple
        The outcome of each row in the set's own coordinates (curve parameters, finite
        labels, convex decision variables).
    intervals : tuple of (float, float)
        Curves only: the intervals (of positive length) of Pareto-optimal parameters,
        endpoints refined to the last Pareto-optimal parameter. Empty for other sets.
    isolated : tuple of float
        Curves only: Pareto-optimal parameters that no interval contains (a point where
        the curve jumps, or a local maximum of one player's utility where the others'
        are flat).
    indices : ndarray of shape (n_points,) or None
        Finite sets only: row indices of the Pareto-optimal outcomes.

    Examples
    --------
    >>> f = ParetoFrontier(utilities=[[1.0, 0.0]], points=(0.5,), intervals=((0.5, 1.0),),
    ...                    isolated=(0.2,))
    >>> f.contains(0.7), f.contains(0.2), f.contains(0.3), f.n_points
    (True, True, False, 1)
    >>> print(f.pareto_set)
    {0.2000} ∪ [0.5000, 1.0000]
    """

    utilities: NDArray[np.float64]
    points: tuple[Any, ...]
    intervals: tuple[tuple[float, float], ...] = ()
    isolated: tuple[float, ...] = ()
    indices: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "utilities", _frozen(np.atleast_2d(self.utilities)))
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(
            self, "intervals", tuple((float(a), float(b)) for a, b in self.intervals)
        )
        object.__setattr__(self, "isolated", tuple(float(t) for t in self.isolated))
        if self.indices is not None:
            indices = np.array(self.indices, dtype=np.int64)
            indices.setflags(write=False)
            object.__setattr__(self, "indices", indices)

    @property
    def n_points(self) -> int:
        """Number of Pareto-optimal outcomes listed."""
        return int(self.utilities.shape[0])

    @property
    def pareto_set(self) -> ParetoSet:
        """Curves: the Pareto-optimal parameters, intervals and isolated points."""
        return ParetoSet(self.intervals, self.isolated)

    @property
    def connected(self) -> bool:
        """Curves: whether the Pareto-optimal parameters form one interval (or one point)."""
        return self.pareto_set.connected

    def contains(self, t: float, *, tol: float = 1e-9) -> bool:
        """Curves: whether parameter ``t`` lies in a Pareto interval or is (within ``tol``)
        an isolated Pareto point."""
        return self.pareto_set.contains(t, tol=tol)

    def to_dataframe(self) -> pd.DataFrame:
        """One row per Pareto-optimal outcome: ``point`` and ``u0 .. u{n-1}``."""
        frame = pd.DataFrame(
            self.utilities, columns=[f"u{i}" for i in range(self.utilities.shape[1])]
        )
        frame.insert(0, "point", [jsonable(p) for p in self.points])
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the frontier."""
        return {
            "utilities": self.utilities.tolist(),
            "points": jsonable(list(self.points)),
            "intervals": [list(i) for i in self.intervals],
            "isolated": list(self.isolated),
            "indices": None if self.indices is None else self.indices.tolist(),
        }
