r"""Leave-one-out values of a TU game.

.. math::

    \mathrm{LOO}_i(v) = v(N) - v(N \setminus \{i\}),

the marginal contribution of each player to the grand coalition: the classical
baseline of data valuation. It needs only :math:`n + 1` coalition values and is, in
general, neither efficient nor symmetric-fair to substitutes (two duplicated parties
both get zero).
"""

from __future__ import annotations

import numpy as np

from coopml.coalitions.result import ValuationResult
from coopml.coalitions.shapley import _check_game
from coopml.coalitions.value_table import ValueTable

__all__ = ["leave_one_out"]


def leave_one_out(game: ValueTable) -> ValuationResult:
    r"""Leave-one-out values :math:`v(N) - v(N \setminus \{i\})`.

    Parameters
    ----------
    game : CoalitionGame

    Returns
    -------
    ValuationResult
        ``method="loo"``, ``n_evaluations = n + 1`` (the coalitions it reads).

    Examples
    --------
    >>> from coopml.coalitions.games import glove_game
    >>> leave_one_out(glove_game(1, 2)).values.tolist()
    [1.0, 0.0, 0.0]
    """
    v = _check_game(game).table
    n = game.n_players
    grand = v.size - 1
    values = v[grand] - v[grand ^ (1 << np.arange(n))]
    return ValuationResult(values=values, names=game.names, method="loo", n_evaluations=n + 1)
