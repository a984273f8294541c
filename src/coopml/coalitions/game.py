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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from coopml._bitmask import members
from coopml._validation import check_int
from coopml.coalitions._sampling import call_value_function
from coopml.coalitions.banzhaf import banzhaf
from coopml.coalitions.least_core import core_contains, least_core
from coopml.coalitions.loo import leave_one_out
from coopml.coalitions.nucleolus import nucleolus
from coopml.coalitions.result import LeastCoreResult, ValuationResult
from coopml.coalitions.shapley import shapley
from coopml.coalitions.table import compute_table
from coopml.coalitions.value_table import MAX_EXACT_PLAYERS, ValueTable

if TYPE_CHECKING:
    from coopml.coalitions.executors import Executor, ProgressCallback
    from coopml.learning.utility import CoalitionUtility

__all__ = ["MAX_EXACT_PLAYERS", "CoalitionGame"]


@dataclass(frozen=True, eq=False)
class CoalitionGame(ValueTable):
    """A TU game given by its full value table, with its solution concepts as methods.

    Parameters are those of :class:`~coopml.coalitions.value_table.ValueTable`: the
    ``table`` of ``2**n_players`` values indexed by bitmask, optional ``names`` and
    provenance ``info``.

    Examples
    --------
    >>> game = CoalitionGame([0.0, 1.0, 2.0, 4.0], names=["a", "b"])
    >>> game.value({0, 1})
    4.0
    >>> game.shapley().values.tolist()
    [1.5, 2.5]
    """

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
        table, info = compute_table(
            utility, executor=executor, n_jobs=n_jobs, cache_dir=cache_dir, progress=progress
        )
        return cls(table, utility.names, info)

    # ------------------------------------------------------------------ solution concepts
    def shapley(self) -> ValuationResult:
        """Exact Shapley value; see :func:`coopml.coalitions.shapley`."""

        return shapley(self)

    def banzhaf(self) -> ValuationResult:
        """Exact Banzhaf value; see :func:`coopml.coalitions.banzhaf`."""

        return banzhaf(self)

    def loo(self) -> ValuationResult:
        """Leave-one-out values; see :func:`coopml.coalitions.leave_one_out`."""

        return leave_one_out(self)

    def least_core(self) -> LeastCoreResult:
        """A least-core allocation and ``epsilon``; see :func:`coopml.coalitions.least_core`."""

        return least_core(self)

    def core_contains(self, x: ArrayLike, tol: float = 1e-9) -> bool:
        """Whether allocation ``x`` is in the core; see :func:`coopml.coalitions.core_contains`."""

        return core_contains(self, x, tol=tol)

    def nucleolus(self) -> LeastCoreResult:
        """The nucleolus; see :func:`coopml.coalitions.nucleolus`."""

        return nucleolus(self)
