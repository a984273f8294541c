r"""Per-round contribution accounting: exact Shapley values of reconstructed coalition models.

The model of every coalition :math:`S` of a round's participants is *reconstructed* as
the sample-weighted average of the members' local updates (:math:`S = \emptyset` keeps
the incoming global model): the model FedAvg would have produced had only :math:`S`
taken part. Scoring each on held-out validation data gives a coalition game
(:class:`coopml.coalitions.CoalitionGame`) whose exact Shapley values measure each
participant's contribution to the round. This follows the per-round reconstruction of
Song, Tong & Wei (*Profit allocation for federated learning*, IEEE Big Data 2019); it
costs :math:`2^N` validation scores per round and no extra training.

The non-negative, normalised Shapley values are the shares :math:`\beta` of the welfare
gain in the redistribution (``beta = "shapley"``, :mod:`coopml.federated.rounds`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml.coalitions import CoalitionGame, shapley
from coopml.federated.fedavg import FederatedModel, Params, accuracy, aggregate

__all__ = ["MAX_ACCOUNTING_PLAYERS", "coalition_values", "shapley_shares", "shapley_values"]

#: Most participants per round for exact per-round Shapley (2**N coalition models).
MAX_ACCOUNTING_PLAYERS = 14

FloatArray = NDArray[np.float64]


def coalition_values(
    model: FederatedModel,
    incoming: Params,
    updates: Sequence[Params],
    sizes: ArrayLike,
    X_val: NDArray[np.float64],
    y_val: ArrayLike,
) -> FloatArray:
    """Validation accuracy of every reconstructed coalition model (bitmask order).

    Parameters
    ----------
    model : FederatedModel
        Provides ``predict``.
    incoming : list of ndarray
        The round's incoming global parameters (the empty coalition).
    updates : sequence of parameter lists
        The participants' local updates.
    sizes : array-like of shape (len(updates),)
        Their training-set sizes (real + synthetic), the FedAvg weights.
    X_val, y_val : validation data

    Returns
    -------
    ndarray of shape (2 ** len(updates),)

    Examples
    --------
    >>> from coopml.federated.fedavg import LogisticModel
    >>> m = LogisticModel(1, 2)
    >>> X, y = np.array([[-1.0], [1.0]]), np.array([0, 1])
    >>> good = [np.array([[-1.0, 1.0]]), np.zeros(2)]
    >>> bad = [np.array([[1.0, -1.0]]), np.zeros(2)]
    >>> coalition_values(m, m.init(None), [good, bad], [3, 1], X, y)
    array([0.5, 1. , 0. , 1. ])
    """
    m = len(updates)
    if m > MAX_ACCOUNTING_PLAYERS:
        raise ValueError(
            f"contribution accounting takes at most MAX_ACCOUNTING_PLAYERS="
            f"{MAX_ACCOUNTING_PLAYERS} participants per round (2**N coalition models); "
            f"got {m}"
        )
    w = np.asarray(sizes, dtype=np.float64)
    table = np.empty(1 << m)
    table[0] = accuracy(model, incoming, X_val, y_val)
    for mask in range(1, 1 << m):
        members = [k for k in range(m) if mask >> k & 1]
        coalition = aggregate([updates[k] for k in members], w[members])
        table[mask] = accuracy(model, coalition, X_val, y_val)
    return table


def shapley_values(table: ArrayLike, names: Sequence[object]) -> FloatArray:
    """Exact Shapley values of the coalition game ``table`` (players named ``names``)."""
    game = CoalitionGame(np.asarray(table, dtype=np.float64), names=tuple(map(str, names)))
    return np.asarray(shapley(game).values, dtype=np.float64)


def shapley_shares(phi: ArrayLike) -> FloatArray:
    """Non-negative shares from Shapley values (uniform when no one adds value).

    Examples
    --------
    >>> shapley_shares([0.2, -0.1, 0.6])
    array([0.25, 0.  , 0.75])
    >>> shapley_shares([-0.1, -0.2])
    array([0.5, 0.5])
    """
    arr = np.asarray(phi, dtype=np.float64)
    pos = np.clip(arr, 0.0, None)
    total = float(pos.sum())
    return pos / total if total > 0 else np.full(arr.size, 1.0 / arr.size)
