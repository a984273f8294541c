"""Result objects of the bargaining toolkit.

A :class:`BargainingSolution` is one chosen outcome of a bargaining problem
``(S, d)``: its utilities ``u`` in ``S``, the gains ``u - d`` over the disagreement
point, where the outcome lies in the set's own coordinates (``parameter`` on a curve,
``index`` in a finite set, ``point`` in every case) and whether it is Pareto optimal in
``S``. A :class:`ParetoFrontier` lists the non-dominated outcomes of ``S``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

__all__ = ["BargainingSolution", "ParetoFrontier"]


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
        Curves only: the Pareto-optimal parameters as a union of closed intervals,
        endpoints refined by bisection. Empty for other sets.
    indices : ndarray of shape (n_points,) or None
        Finite sets only: row indices of the Pareto-optimal outcomes.

    Examples
    --------
    >>> f = ParetoFrontier(utilities=[[1.0, 0.0]], points=(0.5,), intervals=((0.5, 1.0),))
    >>> f.contains(0.7), f.contains(0.2), f.n_points
    (True, False, 1)
    """

    utilities: NDArray[np.float64]
    points: tuple[Any, ...]
    intervals: tuple[tuple[float, float], ...] = ()
    indices: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "utilities", _frozen(np.atleast_2d(self.utilities)))
        object.__setattr__(self, "points", tuple(self.points))
        object.__setattr__(
            self, "intervals", tuple((float(a), float(b)) for a, b in self.intervals)
        )
        if self.indices is not None:
            indices = np.array(self.indices, dtype=np.int64)
            indices.setflags(write=False)
            object.__setattr__(self, "indices", indices)

    @property
    def n_points(self) -> int:
        """Number of Pareto-optimal outcomes listed."""
        return int(self.utilities.shape[0])

    @property
    def connected(self) -> bool:
        """Curves: whether the Pareto-optimal parameters form one interval."""
        return len(self.intervals) <= 1

    def contains(self, t: float, *, tol: float = 1e-9) -> bool:
        """Curves: whether parameter ``t`` lies in one of the Pareto intervals."""
        return any(a - tol <= t <= b + tol for a, b in self.intervals)

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
            "indices": None if self.indices is None else self.indices.tolist(),
        }
