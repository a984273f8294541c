r"""Cooperative games with transferable utility, held as a full value table.

A game on players :math:`N = \{0, \dots, n-1\}` is a characteristic function
:math:`v: 2^N \to \mathbb{R}`. coopml stores it as an array ``table`` of length
:math:`2^n` indexed by bitmask (player ``i`` is bit ``i``), so every solution concept
(Shapley, Banzhaf, leave-one-out, least core, nucleolus) reads one table that was
computed once.

**Baseline.** The value of the empty coalition need not be zero (a coalition utility
scores a model trained on no data, e.g. the majority-class accuracy). Every solution
concept in coopml divides the *gain over that baseline*: allocations are efficient for
:math:`v(N) - v(\emptyset)`, and the core, least core and nucleolus are those of the
zero-normalised game :math:`v_0(S) = v(S) - v(\emptyset)`. Shapley, Banzhaf and
leave-one-out values are unchanged by the shift; for the others it makes the concepts
comparable side by side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_int, check_names
from coopml.coalitions._bitmask import mask_of, members
from coopml.coalitions._sampling import call_value_function

if TYPE_CHECKING:
    from coopml.coalitions.executors import Executor, ProgressCallback
    from coopml.coalitions.result import LeastCoreResult, ValuationResult
    from coopml.learning.utility import CoalitionUtility

__all__ = ["MAX_EXACT_PLAYERS", "CoalitionGame"]

#: Largest number of players for which a full value table is built (2**25 doubles = 256 MiB).
MAX_EXACT_PLAYERS = 25


@dataclass(frozen=True, eq=False)
class CoalitionGame:
    """A TU game given by its full value table.

    Parameters
    ----------
    table : array-like of shape (2**n_players,)
        ``table[mask]`` is the value of the coalition whose members are the set bits
        of ``mask``; ``table[0]`` is the value of the empty coalition.
    names : sequence of str, optional
        Player names; default ``"0", "1", ...``.
    info : mapping, optional
        Provenance (fingerprint, evaluation count, timings, substituted failures).

    Examples
    --------
    >>> game = CoalitionGame([0.0, 1.0, 2.0, 4.0], names=["a", "b"])
    >>> game.value({0, 1})
    4.0
    >>> game.shapley().values.tolist()
    [1.5, 2.5]
    """

    table: NDArray[np.float64]
    names: tuple[str, ...] = ()
    info: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = np.array(self.table, dtype=np.float64)
        if table.ndim != 1 or table.size < 2 or table.size & (table.size - 1):
            raise ValueError(
                "parameter 'table' must be a 1-D array whose length is a power of two "
                f"(2**n_players, n_players >= 1); got shape {table.shape}"
            )
        if not np.all(np.isfinite(table)):
            bad = int(np.flatnonzero(~np.isfinite(table))[0])
            raise ValueError(
                f"parameter 'table' must be finite; coalition mask {bad} has value {table[bad]}"
            )
        table.setflags(write=False)
        object.__setattr__(self, "table", table)
        n = table.size.bit_length() - 1
        names = self.names or tuple(str(i) for i in range(n))
        object.__setattr__(self, "names", check_names("names", names, n))
        object.__setattr__(self, "info", dict(self.info))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_function(
        cls,
        n_players: int,
        value_fn: Callable[[frozenset[int]], float],
        names: Iterable[str] | None = None,
    ) -> CoalitionGame:
        """Build the table by calling ``value_fn(frozenset_of_players)`` on every coalition.

        A value that is not a finite real number, or an exception inside ``value_fn``,
        is an error naming the coalition and the function.

        Examples
        --------
        >>> game = CoalitionGame.from_function(3, lambda s: float(len(s) >= 2))
        >>> game.shapley().values.round(4).tolist()
        [0.3333, 0.3333, 0.3333]
        """
        n = check_int("n_players", n_players, minimum=1, maximum=MAX_EXACT_PLAYERS)
        if not callable(value_fn):
            raise TypeError(
                f"parameter 'value_fn' must be callable (frozenset[int] -> float); "
                f"got {type(value_fn).__name__}"
            )
        table = np.empty(1 << n, dtype=np.float64)
        for mask in range(1 << n):
            table[mask] = call_value_function(value_fn, members(mask, n))
        return cls(table, tuple(names) if names is not None else ())

    @classmethod
    def from_utility(
        cls,
        utility: CoalitionUtility,
        executor: str | Executor = "serial",
        n_jobs: int | None = None,
        *,
        cache_dir: str | Path | None = None,
        progress: ProgressCallback | None = None,
    ) -> CoalitionGame:
        """Evaluate a :class:`~coopml.learning.CoalitionUtility` on every coalition.

        Parameters
        ----------
        utility : CoalitionUtility
            Learner, parties and validation data; ``utility.names`` become player names.
        executor : {"serial", "joblib", "ray"} or Executor
            Where the coalition evaluations run. Results do not depend on it.
        n_jobs : int, optional
            Worker count for parallel executors (default: all cores).
        cache_dir : path, optional
            If given, the table is stored there under the utility's fingerprint and
            re-used by later calls with an identical learner, data, scorer and seed.
        progress : callable, optional
            Called as ``progress(n_done, n_total)`` after each block of coalitions.
        """
        from coopml.coalitions.table import compute_table

        return compute_table(
            utility, executor=executor, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
        )

    # ------------------------------------------------------------------ access
    @property
    def n_players(self) -> int:
        """Number of players ``n``."""
        return int(self.table.size.bit_length() - 1)

    def value(self, coalition: Iterable[int] | int) -> float:
        """Value of a coalition given as player indices (or as a bitmask ``int``)."""
        mask = int(coalition) if isinstance(coalition, int | np.integer) else mask_of(coalition)
        if not 0 <= mask < self.table.size:
            raise ValueError(
                f"parameter 'coalition' must name players 0..{self.n_players - 1}; got mask {mask}"
            )
        return float(self.table[mask])

    def zero_normalized(self) -> NDArray[np.float64]:
        """The table of the zero-normalised game ``v(S) - v(empty)``.

        >>> CoalitionGame([0.5, 1.0, 1.5, 2.5]).zero_normalized().tolist()
        [0.0, 0.5, 1.0, 2.0]
        """
        return self.table - self.table[0]

    @property
    def grand_value(self) -> float:
        """``v(N)``, the value of the grand coalition."""
        return float(self.table[-1])

    # ------------------------------------------------------------------ solution concepts
    def shapley(self) -> ValuationResult:
        """Exact Shapley value; see :func:`coopml.coalitions.shapley`."""
        from coopml.coalitions.shapley import shapley

        return shapley(self)

    def banzhaf(self) -> ValuationResult:
        """Exact Banzhaf value; see :func:`coopml.coalitions.banzhaf`."""
        from coopml.coalitions.banzhaf import banzhaf

        return banzhaf(self)

    def loo(self) -> ValuationResult:
        """Leave-one-out values; see :func:`coopml.coalitions.leave_one_out`."""
        from coopml.coalitions.loo import leave_one_out

        return leave_one_out(self)

    def least_core(self) -> LeastCoreResult:
        """A least-core allocation and ``epsilon``; see :func:`coopml.coalitions.least_core`."""
        from coopml.coalitions.least_core import least_core

        return least_core(self)

    def core_contains(self, x: ArrayLike, tol: float = 1e-9) -> bool:
        """Whether allocation ``x`` is in the core; see :func:`coopml.coalitions.core_contains`."""
        from coopml.coalitions.least_core import core_contains

        return core_contains(self, x, tol=tol)

    def nucleolus(self) -> LeastCoreResult:
        """The nucleolus; see :func:`coopml.coalitions.nucleolus`."""
        from coopml.coalitions.nucleolus import nucleolus

        return nucleolus(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: names and the table."""
        return {"names": list(self.names), "table": self.table.tolist()}
