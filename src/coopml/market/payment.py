r"""Payment-division rules: how a requester's payment for improvement is shared among
the parties whose data trained its model.

Every rule maps the gain table :math:`G(V; M_S)` of one validation task (over the
parties that trained its model) to shares :math:`\psi` that sum to one:

``"ohrimenko"`` [paper]
    Shapley value of the market's characteristic function
    (:func:`~coopml.market.characteristic.market_characteristic`), normalised — the rule
    of Ohrimenko, Tople & Tschiatschek (2019), :math:`b_i = a \cdot \psi(v, i)`.
``"shapley"``, ``"banzhaf"``, ``"loo"``
    The Shapley value (Shapley 1953), Banzhaf value (Banzhaf 1965) or leave-one-out
    value of the gain table itself, normalised.
``"similarity_shapley"``
    Replication-robust Shapley after Agarwal, Dahleh & Sarkar (EC 2019, §4):
    :math:`\psi_m \propto \hat\psi_m \exp(-\lambda \sum_{j \ne m} \mathrm{sim}(X_m, X_j))`,
    with :math:`\hat\psi` the Shapley value of the gain table and
    :math:`\mathrm{sim}(X_m, X_j) \in [0, 1]` the fraction of party :math:`m`'s rows that
    have a near-duplicate in party :math:`j`'s data
    (:func:`~coopml.market.duplicates.similarity_matrix`). Honest parties with distinct
    data are not discounted.

Normalisation divides by the sum of the raw values. When that sum is zero (no value
signal at all, e.g. leave-one-out when every party has a replica) the shares are equal
and the result says so (``degenerate=True``) rather than dividing by zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_choice, check_positive
from coopml.coalitions.banzhaf import banzhaf_from_table
from coopml.coalitions.shapley import shapley_from_table
from coopml.market.characteristic import market_characteristic

__all__ = ["PAYMENT_RULES", "Shares", "payment_shares"]

PAYMENT_RULES = ("ohrimenko", "shapley", "banzhaf", "loo", "similarity_shapley")


@dataclass(frozen=True)
class Shares:
    """Shares of one validation task's payment, over the task's contributors."""

    raw: NDArray[np.float64]
    """Un-normalised values of the rule."""
    shares: NDArray[np.float64]
    """``raw / raw.sum()``; sums to one."""
    degenerate: bool
    """True when ``raw`` summed to zero and equal shares were used."""


def payment_shares(
    rule: str,
    gain_table: ArrayLike,
    *,
    similarity: ArrayLike | None = None,
    discount: float = 1.0,
) -> Shares:
    """Shares of a payment under ``rule`` for the players of ``gain_table``.

    Parameters
    ----------
    rule : {"ohrimenko", "shapley", "banzhaf", "loo", "similarity_shapley"}
    gain_table : array-like of shape (2**n,)
        Validation gain of the model of every coalition (bitmask-indexed).
    similarity : array-like of shape (n, n), optional
        Pairwise data similarity in [0, 1]; required by ``"similarity_shapley"``.
    discount : float, default 1.0
        :math:`\\lambda` of ``"similarity_shapley"``.

    Examples
    --------
    >>> g = [0.5, 0.6, 0.7, 0.9]
    >>> payment_shares("shapley", g).shares.round(4).tolist()
    [0.4, 0.6]
    >>> payment_shares("ohrimenko", g).shares.round(4).tolist()
    [0.4444, 0.5556]
    """
    rule = check_choice("rule", rule, PAYMENT_RULES)
    g = np.asarray(gain_table, dtype=np.float64)
    n = g.size.bit_length() - 1
    if rule == "ohrimenko":
        raw = shapley_from_table(market_characteristic(g))
    elif rule == "shapley":
        raw = shapley_from_table(g)
    elif rule == "banzhaf":
        raw = banzhaf_from_table(g)
    elif rule == "loo":
        raw = g[-1] - g[(g.size - 1) ^ (1 << np.arange(n))]
    else:
        if similarity is None:
            raise ValueError("rule 'similarity_shapley' needs parameter 'similarity'; got None")
        sim = np.asarray(similarity, dtype=np.float64)
        if sim.shape != (n, n) or np.any(sim < 0) or np.any(sim > 1):
            raise ValueError(
                f"parameter 'similarity' must be an ({n}, {n}) array with entries in [0, 1]; "
                f"got shape {sim.shape}"
            )
        lam = check_positive("discount", discount, strict=False)
        off_diagonal = sim.sum(axis=1) - np.diag(sim)
        raw = shapley_from_table(g) * np.exp(-lam * off_diagonal)
    total = float(raw.sum())
    scale = max(1.0, float(np.abs(raw).max()))
    if abs(total) <= 1e-12 * scale:
        return Shares(raw, np.full(n, 1.0 / n), True)
    return Shares(raw, raw / total, False)
