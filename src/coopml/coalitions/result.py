"""Result objects shared by every solution concept.

A result is immutable and carries its own convergence information (architecture rule 4):
``values`` (one per player), ``names``, ``method``, ``stderr`` where the method is an
estimate, ``converged``, ``n_evaluations`` (utility evaluations spent) and free-form
``info``. ``to_dataframe()`` gives one row per player.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from coopml._serialization import to_jsonable

__all__ = ["LeastCoreResult", "ValuationResult"]


@dataclass(frozen=True, kw_only=True)
class ValuationResult:
    """Values of the players of a cooperative game.

    Parameters
    ----------
    values : ndarray of shape (n_players,)
        The value (payoff) of each player.
    names : tuple of str
        Player names, in the order of ``values``.
    method : str
        The solution concept, e.g. ``"shapley"``.
    stderr : ndarray of shape (n_players,) or None
        Standard errors of estimated values; ``None`` for exact methods.
    converged : bool
        Whether the method met its own convergence criterion (always true for exact
        methods that returned).
    n_evaluations : int
        Number of coalition values the method evaluated (table look-ups for exact
        methods: the table size).
    info : mapping
        Method-specific details (stopping reason, LP status, ...).

    Examples
    --------
    >>> r = ValuationResult(values=np.array([1.0, 2.0]), names=("a", "b"), method="shapley")
    >>> r.to_dataframe()
      name  value
    0    a    1.0
    1    b    2.0
    >>> r["b"]
    2.0
    """

    values: NDArray[np.float64]
    names: tuple[str, ...]
    method: str
    stderr: NDArray[np.float64] | None = None
    converged: bool = True
    n_evaluations: int = 0
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64).copy()
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "names", tuple(self.names))
        if len(self.names) != values.shape[0]:
            raise ValueError(
                f"parameter 'names' must have one entry per value ({values.shape[0]}); "
                f"got {len(self.names)}"
            )
        if self.stderr is not None:
            stderr = np.asarray(self.stderr, dtype=np.float64).copy()
            stderr.setflags(write=False)
            object.__setattr__(self, "stderr", stderr)

    @property
    def n_players(self) -> int:
        """Number of players."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n_players

    def __getitem__(self, name: str) -> float:
        try:
            return float(self.values[self.names.index(name)])
        except ValueError:
            raise KeyError(f"no player named {name!r}; players are {list(self.names)}") from None

    def to_dataframe(self) -> pd.DataFrame:
        """One row per player: ``name``, ``value`` and, for estimates, ``stderr``."""
        frame = pd.DataFrame({"name": list(self.names), "value": self.values})
        if self.stderr is not None:
            frame["stderr"] = self.stderr
        return frame

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary of the result."""
        return {
            "method": self.method,
            "names": list(self.names),
            "values": self.values.tolist(),
            "stderr": None if self.stderr is None else self.stderr.tolist(),
            "converged": bool(self.converged),
            "n_evaluations": int(self.n_evaluations),
            "info": to_jsonable(dict(self.info)),
        }


@dataclass(frozen=True, kw_only=True)
class LeastCoreResult(ValuationResult):
    """A least-core allocation; ``epsilon`` is the smallest uniform subsidy
    ``min e`` such that ``x(S) >= v(S) - e`` holds for every coalition ``S``.

    ``epsilon <= 0`` means the core is non-empty and ``values`` lies in it.
    """

    epsilon: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["epsilon"] = float(self.epsilon)
        return out
