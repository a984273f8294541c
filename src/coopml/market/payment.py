r"""Payment-division rules: how a requester's payment for improvement is shared among
the parties whose data trained its model.

Every rule maps the gain table :math:`G(V; M_S)` of one validation task (over the
parties that trained its model) to shares :math:`\psi` that are non-negative and sum to
one:

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

Conventions that are coopml's, not the paper's (each is a parameter or a documented
rule, and every settlement records it):

* **Normalisation** [coopml's reading]. The workshop paper writes
  :math:`b_i = \mathbf{a} \times \psi(v, i)` with :math:`\psi` the Shapley value and
  claims balance :math:`\sum_i b_i = \sum_i a_i`; the Shapley value sums to
  :math:`v(N) - v(\emptyset)`, not to one, so balance needs :math:`\psi` to be a share.
  coopml divides the raw values by their sum; the paper does not state this step.
* **Empty coalition** (``empty_value``). The value of the empty coalition
  :math:`G(V; M_\emptyset)` enters every Shapley (and Banzhaf) value: changing it by
  :math:`\delta` shifts each of the :math:`n` Shapley values by :math:`-\delta/n`,
  which changes the normalised shares. ``"majority"`` (the default) takes the table's
  entry as measured: :func:`~coopml.market.run_market` stores there the score of a
  constant predictor fitted on all training labels (the majority class for
  classification, the training mean for regression); ``"zero"`` sets it to 0; a
  number in [0, 1] sets it to that number.
* **Negative values** [coopml's rule]. The paper assumes monotone gains (more data
  never hurts) and so payouts :math:`b_i \ge 0`; real learners break that, and a rule
  can give a party a negative value. Negative raw values are clipped to zero and the
  others renormalised (the result lists the clipped players in ``clipped``). When no
  raw value is positive but some is negative, nothing can be shared: ``payable`` is
  False and the shares are all zero; the settlement then refunds the payment
  (:func:`~coopml.market.settle`). When every raw value is zero (no value signal at
  all, e.g. leave-one-out when every party has a replica) the shares are equal and the
  result says so (``degenerate=True``) rather than dividing by zero.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from coopml._validation import check_choice, check_positive
from coopml.coalitions.banzhaf import banzhaf_from_table
from coopml.coalitions.shapley import shapley_from_table
from coopml.market.characteristic import market_characteristic

__all__ = [
    "EMPTY_VALUES",
    "PAYMENT_RULES",
    "EmptyValue",
    "Shares",
    "check_empty_value",
    "empty_coalition_gain",
    "payment_shares",
]

PAYMENT_RULES = ("ohrimenko", "shapley", "banzhaf", "loo", "similarity_shapley")

#: The named conventions for the value of the empty coalition (a number in [0, 1] is
#: the third option).
EMPTY_VALUES = ("majority", "zero")

EmptyValue: TypeAlias = Literal["majority", "zero"] | float

#: Raw values within this fraction of the largest one are treated as zero.
_RELATIVE_ZERO = 1e-12


def check_empty_value(value: Any, name: str = "empty_value") -> EmptyValue:
    """Validate the empty-coalition convention: ``"majority"``, ``"zero"`` or a number
    in [0, 1] (returned as a float).

    Examples
    --------
    >>> check_empty_value("zero"), check_empty_value(0.25)
    ('zero', 0.25)
    >>> check_empty_value("none")
    Traceback (most recent call last):
    ...
    ValueError: parameter 'empty_value' must be 'majority', 'zero' or a number in [0, 1]; got 'none'
    """
    if isinstance(value, str) and value in EMPTY_VALUES:
        return value  # type: ignore[return-value]
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and np.isfinite(float(value))
        and 0.0 <= float(value) <= 1.0
    ):
        return float(value)
    raise ValueError(
        f"parameter '{name}' must be 'majority', 'zero' or a number in [0, 1]; got {value!r}"
    )


def empty_coalition_gain(gain_table: ArrayLike, empty_value: EmptyValue = "majority") -> float:
    """The value of the empty coalition that the payment rules use.

    ``"majority"`` keeps ``gain_table[0]`` as measured, ``"zero"`` gives 0 and a number
    gives itself.

    Examples
    --------
    >>> g = [0.5, 0.6, 0.7, 0.9]
    >>> empty_coalition_gain(g), empty_coalition_gain(g, "zero"), empty_coalition_gain(g, 0.3)
    (0.5, 0.0, 0.3)
    """
    empty_value = check_empty_value(empty_value)
    if empty_value == "majority":
        return float(np.asarray(gain_table, dtype=np.float64)[0])
    return 0.0 if empty_value == "zero" else float(empty_value)


@dataclass(frozen=True)
class Shares:
    """Shares of one validation task's payment, over the task's contributors."""

    raw: NDArray[np.float64]
    """Un-normalised values of the rule."""
    shares: NDArray[np.float64]
    """Non-negative; ``max(raw, 0)`` normalised to sum to one when ``payable``, else
    all zero."""
    degenerate: bool
    """True when every raw value was zero and equal shares were used."""
    clipped: tuple[int, ...] = ()
    """Players whose negative raw value was clipped to zero."""
    payable: bool = True
    """False when no raw value is positive and some is negative: nothing can be paid."""


def payment_shares(
    rule: str,
    gain_table: ArrayLike,
    *,
    similarity: ArrayLike | None = None,
    discount: float = 1.0,
    empty_value: EmptyValue = "majority",
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
    empty_value : "majority", "zero" or float in [0, 1], default "majority"
        Value of the empty coalition: ``gain_table[0]`` as measured, 0, or this number
        (see the module docstring).

    Returns
    -------
    Shares
        Raw values, shares (non-negative, summing to one when ``payable``), and what
        the normalisation did (``degenerate``, ``clipped``, ``payable``).

    Examples
    --------
    >>> g = [0.5, 0.6, 0.7, 0.9]
    >>> payment_shares("shapley", g).shares.round(4).tolist()
    [0.375, 0.625]
    >>> payment_shares("ohrimenko", g).shares.round(4).tolist()
    [0.4444, 0.5556]

    The empty coalition's value shifts every Shapley value by the same amount:

    >>> payment_shares("shapley", g, empty_value="zero").raw.round(4).tolist()
    [0.4, 0.5]

    A player whose data lowers every model gets a negative raw value, clipped to zero:

    >>> s = payment_shares("shapley", [0.5, 0.8, 0.4, 0.7])
    >>> s.raw.round(4).tolist(), s.shares.tolist(), s.clipped
    ([0.3, -0.1], [1.0, 0.0], (1,))
    """
    rule = check_choice("rule", rule, PAYMENT_RULES)
    empty_value = check_empty_value(empty_value)
    g = np.array(gain_table, dtype=np.float64)
    g[0] = empty_coalition_gain(g, empty_value)
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
    return _normalise(raw)


def _normalise(raw: NDArray[np.float64]) -> Shares:
    """Clip negative values to zero and normalise (the module docstring's rules)."""
    n = raw.size
    scale = max(1.0, float(np.abs(raw).max()))
    clean = np.where(np.abs(raw) <= _RELATIVE_ZERO * scale, 0.0, raw)
    clipped = tuple(int(i) for i in np.flatnonzero(clean < 0))
    positive = np.maximum(clean, 0.0)
    total = float(positive.sum())
    if total > 0:
        return Shares(raw, positive / total, False, clipped)
    if not clipped:  # every value is zero: no signal, equal shares
        return Shares(raw, np.full(n, 1.0 / n), True)
    return Shares(raw, np.zeros(n), False, clipped, payable=False)
