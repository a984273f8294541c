r"""The (raw, non-normalised) Banzhaf value of a TU game, computed exactly.

For a game :math:`v` on :math:`n` players (Banzhaf 1965; Penrose 1946 for voting),

.. math::

    \beta_i(v) = \frac{1}{2^{n-1}} \sum_{S \subseteq N \setminus \{i\}}
        \bigl(v(S \cup \{i\}) - v(S)\bigr),

the average marginal contribution of :math:`i` over all coalitions without it. Unlike
the Shapley value it is not efficient, so no efficiency check applies.

References
----------
J. F. Banzhaf III, "Weighted voting doesn't work: a mathematical analysis",
Rutgers Law Review 19 (1965), pp. 317-343.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml.coalitions.result import ValuationResult
from coopml.coalitions.shapley import _check_game
from coopml.coalitions.value_table import ValueTable

__all__ = ["banzhaf", "banzhaf_from_table"]


def banzhaf_from_table(table: ArrayLike) -> NDArray[np.float64]:
    """Exact raw Banzhaf values from a value table indexed by bitmask.

    Parameters
    ----------
    table : array-like of shape (2**n,)

    Returns
    -------
    beta : ndarray of shape (n,)

    Examples
    --------
    >>> banzhaf_from_table([0.0, 1.0, 2.0, 4.0]).tolist()
    [1.5, 2.5]
    """
    v = ValueTable(np.asarray(table, dtype=np.float64)).table
    n = v.size.bit_length() - 1
    beta = np.empty(n)
    for i in range(n):
        pairs = v.reshape(-1, 2, 1 << i)  # [:, 0] is S without i, [:, 1] is S + i
        beta[i] = np.mean(pairs[:, 1] - pairs[:, 0])
    return beta


def banzhaf(game: ValueTable) -> ValuationResult:
    """Exact raw Banzhaf value of a game.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    ValuationResult
        ``method="banzhaf"``, ``n_evaluations = 2**n``.

    Examples
    --------
    >>> from coopml.coalitions.games import weighted_majority_game
    >>> banzhaf(weighted_majority_game([2, 1, 1], quota=3)).values.tolist()
    [0.75, 0.25, 0.25]
    """
    v = _check_game(game).table
    return ValuationResult(
        values=banzhaf_from_table(v), names=game.names, method="banzhaf", n_evaluations=v.size
    )
