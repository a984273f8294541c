"""Per-organisation parameters: a number for everyone, or one entry per organisation.

The one broadcasting rule of the federated package (the game, the simulator and the
Flower adapter all take parameters this way).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def per_org(name: str, value: ArrayLike, n_orgs: int) -> FloatArray:
    """Broadcast parameter ``name`` to one finite entry per organisation.

    Examples
    --------
    >>> per_org("theta", 0.5, 3)
    array([0.5, 0.5, 0.5])
    >>> per_org("theta", [1, 2], 3)
    Traceback (most recent call last):
    ...
    ValueError: parameter 'theta' must be a number or have one entry per organisation (3); got shape (2,)
    """  # noqa: E501
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(n_orgs, float(arr))
    if arr.shape != (n_orgs,):
        raise ValueError(
            f"parameter '{name}' must be a number or have one entry per organisation "
            f"({n_orgs}); got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"parameter '{name}' must be finite; got {arr.tolist()}")
    return arr
