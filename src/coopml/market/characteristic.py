r"""The characteristic function of the collaborative ML market [paper].

Ohrimenko, Tople & Tschiatschek (2019), *Collaborative Machine Learning Markets*, §4:
with :math:`G(V; M_S)` the validation gain of the model trained on the pooled data of
coalition :math:`S` and :math:`M_j` party :math:`j`'s own model,

.. math::

    v(S) = \underbrace{G(V; M_S)}_{\text{value of the model}}
         + \sum_{j \in S}
           \underbrace{\bigl[G(V; M_S) - G(V; M_j)\bigr]}_{\text{model value for party } j}
         = (1 + |S|)\, G(V; M_S) - \sum_{j \in S} G(V; M_j).

For a single party :math:`v(\{j\}) = G(V; M_j)`. The function only re-weights a gain
table, so it is computed from the table without training anything.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._bitmask import coalition_sums, popcounts

__all__ = ["market_characteristic"]


def market_characteristic(gain_table: ArrayLike) -> NDArray[np.float64]:
    """The market's characteristic function :math:`v` from a gain table :math:`G(V; M_S)`.

    Parameters
    ----------
    gain_table : array-like of shape (2**n,)
        ``gain_table[mask]`` is the validation gain of the model trained on coalition
        ``mask`` (player ``i`` is bit ``i``).

    Returns
    -------
    ndarray of shape (2**n,)

    Examples
    --------
    >>> g = [0.5, 0.6, 0.7, 0.9]  # G(empty), G({0}), G({1}), G({0, 1})
    >>> market_characteristic(g).round(6).tolist()  # v({0,1}) = 3 * 0.9 - 0.6 - 0.7
    [0.5, 0.6, 0.7, 1.4]
    """
    g = np.asarray(gain_table, dtype=np.float64)
    n = g.size.bit_length() - 1
    own = g[1 << np.arange(n)]  # G(V; M_j): the singleton coalitions
    return (1 + popcounts(n)) * g - coalition_sums(own)
