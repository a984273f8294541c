"""Shared plumbing of the sampling estimators: the value source and a memoised evaluator.

A source is either ``value_fn(frozenset_of_players) -> float`` (with ``n_players``) or
an object with ``n_players``, ``names`` and ``evaluate_masks(int64 masks) -> float64``
(such as a :class:`~coopml.learning.CoalitionUtility`, which then fits whole batches at
once). Each distinct coalition is evaluated once per estimate; ``n_evaluations`` counts
distinct coalitions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from coopml._validation import check_int, check_names
from coopml.coalitions._bitmask import members
from coopml.coalitions.stopping import StoppingRule

__all__ = [
    "MAX_MASK_PLAYERS",
    "MemoEvaluator",
    "evaluate_chunk",
    "resolve_source",
    "resolve_stopping",
]

#: Most players a utility's int64 bitmasks can address.
MAX_MASK_PLAYERS = 62


def resolve_source(
    source: Any,
    n_players: int | None,
    names: Sequence[str] | None,
    *,
    max_callable_players: int | None = MAX_MASK_PLAYERS,
) -> tuple[bool, int, tuple[str, ...]]:
    """Validate a value source; returns ``(is_utility, n_players, names)``.

    Utilities address coalitions by int64 bitmask (at most 62 players); a callable may
    allow more (``max_callable_players=None``) when the estimator uses Python ints.
    """
    is_utility = hasattr(source, "evaluate_masks")
    if is_utility:
        n = check_int(
            "value_fn_or_utility.n_players",
            getattr(source, "n_players", None),
            minimum=1,
            maximum=MAX_MASK_PLAYERS,
        )
        if n_players is not None and n_players != n:
            raise ValueError(
                f"parameter 'n_players' must be None or equal the utility's n_players ({n}); "
                f"got {n_players!r}"
            )
        names = getattr(source, "names", None) if names is None else names
    elif callable(source):
        if n_players is None:
            raise TypeError(
                "parameter 'n_players' is required when 'value_fn_or_utility' is callable"
            )
        n = check_int("n_players", n_players, minimum=1, maximum=max_callable_players)
    else:
        raise TypeError(
            "parameter 'value_fn_or_utility' must be a callable (frozenset[int] -> float) or an "
            f"object with n_players, names and evaluate_masks; got {type(source).__name__}"
        )
    names = check_names("names", [str(i) for i in range(n)] if names is None else names, n)
    return is_utility, n, names


def resolve_stopping(rule: Any, n_players: int) -> StoppingRule:
    """Check that ``rule`` surely fires and return a private copy (rules are stateful)."""
    if not isinstance(rule, StoppingRule):
        raise TypeError(
            f"parameter 'stopping' must be a StoppingRule or None; got {type(rule).__name__}"
        )
    if not rule._bounded(2**n_players):
        raise ValueError(
            f"parameter 'stopping' may never fire: {rule}; combine it with a budget, e.g. "
            "'stopping | MaxPermutations(1000)' or '| MaxTime(60)' (MaxEvaluations counts "
            "distinct coalitions, so its budget must be at most 2**n_players)"
        )
    return copy.deepcopy(rule)


class MemoEvaluator:
    """Values of bitmasks, each distinct coalition evaluated once (together per call)."""

    def __init__(self, source: Any, is_utility: bool, n_players: int) -> None:
        self.source, self.is_utility, self.n = source, is_utility, n_players
        self.cache: dict[int, float] = {}

    def __call__(self, masks: NDArray[np.int64]) -> NDArray[np.float64]:
        unique, inverse = np.unique(masks, return_inverse=True)
        keys = unique.tolist()
        new = [k for k in keys if k not in self.cache]
        if new:
            values = evaluate_chunk(self.source, self.is_utility, self.n, new)
            self.cache.update(zip(new, values.tolist(), strict=True))
        out = np.array([self.cache[k] for k in keys], dtype=np.float64)
        return out[inverse.reshape(-1)].reshape(masks.shape)

    @property
    def n_evaluations(self) -> int:
        return len(self.cache)


def evaluate_chunk(source: Any, is_utility: bool, n: int, masks: list[int]) -> NDArray[np.float64]:
    """Values of coalitions ``masks`` (run in workers); validated shape and finiteness."""
    if is_utility:
        values = np.asarray(source.evaluate_masks(np.array(masks, dtype=np.int64)), dtype=float)
        if values.shape != (len(masks),):
            raise ValueError(
                f"evaluate_masks must return shape ({len(masks)},) for {len(masks)} masks; "
                f"got {values.shape}"
            )
    else:
        values = np.array([float(source(members(mask, n))) for mask in masks], dtype=float)
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(
            f"the value of coalition {sorted(members(masks[bad], n))} is {values[bad]}; "
            "coalition values must be finite"
        )
    return values
