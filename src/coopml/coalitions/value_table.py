"""The value table of a cooperative game, below every solution concept.

See :mod:`coopml.coalitions.game` for the conventions (bitmask indexing, the baseline
:math:`v(\\emptyset)`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._bitmask import mask_of
from coopml._records import dump_record
from coopml._validation import check_names
from coopml.coalitions.records import ValueTableRecord

__all__ = ["MAX_EXACT_PLAYERS", "ValueTable"]

#: Largest number of players for which a full value table is built (2**25 doubles = 256 MiB).
MAX_EXACT_PLAYERS = 25


@dataclass(frozen=True, eq=False)
class ValueTable:
    """The full value table of a TU game: validated data and look-ups, no solution concepts.

    The solution-concept modules take a ``ValueTable`` (so they need not import the
    :class:`~coopml.coalitions.game.CoalitionGame` facade, which imports them);
    :class:`~coopml.coalitions.game.CoalitionGame` adds the constructors and the
    methods that call the concepts.

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
    >>> ValueTable([0.0, 1.0, 2.0, 4.0], names=["a", "b"]).value({0, 1})
    4.0
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

        >>> ValueTable([0.5, 1.0, 1.5, 2.5]).zero_normalized().tolist()
        [0.0, 0.5, 1.0, 2.0]
        """
        return self.table - self.table[0]

    @property
    def grand_value(self) -> float:
        """``v(N)``, the value of the grand coalition."""
        return float(self.table[-1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: names and the table
        (:class:`~coopml.coalitions.records.ValueTableRecord`)."""
        return dump_record(ValueTableRecord(names=list(self.names), table=self.table.tolist()))
