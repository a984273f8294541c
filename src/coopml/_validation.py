"""Input validation and the one randomness convention of coopml.

Every public function validates its arguments here, once, at the boundary. Messages
name the parameter, what is allowed and what was received, e.g.::

    parameter 'alpha' must be > 0; got -1.0

Randomness: every public function that draws random numbers takes
``random_state: int | numpy.random.Generator | None``, normalised once with
:func:`check_random_state`. Parallel workers receive independent streams from
:func:`spawn_generators`, which splits the seed with :class:`numpy.random.SeedSequence`
so results do not depend on how work is scheduled.
"""

from __future__ import annotations

import numbers
from collections.abc import Collection, Sequence
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

RandomState: TypeAlias = int | np.random.Generator | None

__all__ = [
    "RandomState",
    "check_2d_features",
    "check_choice",
    "check_fraction",
    "check_int",
    "check_names",
    "check_positive",
    "check_random_state",
    "check_seed",
    "spawn_generators",
]


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """Normalise ``random_state`` to a :class:`numpy.random.Generator`.

    Parameters
    ----------
    random_state : int, numpy.random.Generator or None
        An integer seed (reproducible), an existing generator (used as is, so the
        caller's stream advances) or ``None`` (fresh OS entropy).

    Returns
    -------
    numpy.random.Generator

    Examples
    --------
    >>> rng = check_random_state(0)
    >>> bool(rng.integers(100) == check_random_state(0).integers(100))
    True
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if int(random_state) < 0:
            raise ValueError(
                f"parameter 'random_state' must be a non-negative integer; got {random_state}"
            )
        return np.random.default_rng(int(random_state))
    raise TypeError(
        "parameter 'random_state' must be an int, a numpy.random.Generator or None; "
        f"got {type(random_state).__name__}"
    )


def check_seed(random_state: RandomState) -> int:
    """Draw one integer seed (for estimators that take an ``int`` random_state).

    An integer is returned unchanged, so ``random_state=0`` means seed 0 everywhere.

    Examples
    --------
    >>> check_seed(7)
    7
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(random_state)  # validates the sign
        return int(random_state)
    return int(check_random_state(random_state).integers(2**31 - 1))


def spawn_generators(random_state: RandomState, n: int) -> list[np.random.Generator]:
    """Return ``n`` statistically independent generators derived from ``random_state``.

    Stream ``k`` depends only on the seed and ``k``, never on which worker runs it.

    Examples
    --------
    >>> a = [g.random() for g in spawn_generators(3, 2)]
    >>> b = [g.random() for g in spawn_generators(3, 2)]
    >>> a == b and a[0] != a[1]
    True
    """
    return list(check_random_state(random_state).spawn(n))


def check_int(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Check that ``value`` is an integer within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"parameter '{name}' must be an integer; got {_describe(value)}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"parameter '{name}' must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"parameter '{name}' must be <= {maximum}; got {value}")
    return value


def check_positive(name: str, value: Any, *, strict: bool = True) -> float:
    """Check that ``value`` is a finite real number, > 0 (``strict``) or >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"parameter '{name}' must be a real number; got {_describe(value)}")
    value = float(value)
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        bound = "> 0" if strict else ">= 0"
        raise ValueError(f"parameter '{name}' must be finite and {bound}; got {value}")
    return value


def check_fraction(
    name: str, value: Any, *, open_low: bool = False, open_high: bool = False
) -> float:
    """Check that ``value`` lies in the unit interval (ends open or closed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"parameter '{name}' must be a real number; got {_describe(value)}")
    value = float(value)
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (np.isfinite(value) and low_ok and high_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ValueError(f"parameter '{name}' must lie in {interval}; got {value}")
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in sorted(choices))
        raise ValueError(f"parameter '{name}' must be one of {allowed}; got {_describe(value)}")
    return str(value)


def check_2d_features(
    name: str, X: Any, *, allow_empty: bool = False, allow_nan: bool = False
) -> NDArray[np.float64]:
    """Convert ``X`` to a finite 2-D float64 array, with a clear error otherwise.

    ``allow_nan`` accepts NaN (missing values, for learners that handle them) but never
    infinities.
    """
    try:
        array = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"parameter '{name}' must contain numeric features only (encode categorical "
            f"columns first); could not convert to float: {exc}"
        ) from None
    if array.ndim == 1:
        raise ValueError(
            f"parameter '{name}' must be 2-D (n_samples, n_features); got a 1-D array of "
            f"shape {array.shape}; reshape with X.reshape(-1, 1) for a single feature"
        )
    if array.ndim != 2:
        raise ValueError(
            f"parameter '{name}' must be 2-D (n_samples, n_features); got shape {array.shape}"
        )
    if not allow_empty and (array.shape[0] == 0 or array.shape[1] == 0):
        raise ValueError(f"parameter '{name}' must be non-empty; got shape {array.shape}")
    bad_values = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad_values.any():
        bad = np.argwhere(bad_values)[0]
        raise ValueError(
            f"parameter '{name}' must be finite (no NaN or inf); found {array[tuple(bad)]} "
            f"at row {bad[0]}, column {bad[1]}"
        )
    return array


def check_names(name: str, names: Sequence[Any], n: int) -> tuple[str, ...]:
    """Check a sequence of ``n`` distinct, non-empty string names."""
    names = tuple(names)
    if len(names) != n:
        raise ValueError(f"parameter '{name}' must have {n} entries; got {len(names)}")
    for item in names:
        if not isinstance(item, str) or not item:
            raise TypeError(
                f"parameter '{name}' must hold non-empty strings; got {_describe(item)}"
            )
    if len(set(names)) != n:
        dupes = sorted({x for x in names if names.count(x) > 1})
        raise ValueError(f"parameter '{name}' must hold distinct names; duplicated: {dupes}")
    return names
