"""Least-rent rewards: the cheapest rewards that make a menu of contributions work.

For contributions ``m`` the objective of the first-moment program does not depend on
the rewards ``t``, so rewards are not unique; the principal pays the least ``t`` that
keeps every served type individually rational and incentive compatible (Wang, Wu, Liu &
Low, *Paid with Models*, AAAI 2025). The constraints ``t_i >= f_i + c_i m_i`` and
``t_i >= t_j + c_i (m_i - m_j)`` form a difference-constraint system, solved as longest
paths.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["least_rent_rewards"]

FloatArray = NDArray[np.float64]


def least_rent_rewards(
    contributions: ArrayLike,
    costs: ArrayLike,
    reservation: ArrayLike,
    served: ArrayLike | None = None,
) -> FloatArray:
    """The least rewards ``t`` that make ``m`` individually rational and incentive
    compatible: ``t_i >= f_i + c_i m_i`` and ``t_i >= t_j + c_i (m_i - m_j)`` (served
    ``i, j``), solved as longest paths (Bellman-Ford). Excluded types get 0.

    Examples
    --------
    >>> least_rent_rewards([100.0, 200.0], [0.2, 0.1], [5.0, 10.0]).tolist()
    [25.0, 35.0]
    """
    m = np.asarray(contributions, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    f = np.asarray(reservation, dtype=np.float64)
    s = np.ones(c.size, dtype=bool) if served is None else np.asarray(served, dtype=bool)
    idx = np.flatnonzero(s)
    ms, cs = m[idx], c[idx]
    t = f[idx] + cs * ms
    gain = cs[:, None] * (ms[:, None] - ms[None, :])  # gain[i, j] = c_i (m_i - m_j)
    for _ in range(idx.size):
        new = np.maximum(t, np.max(t[None, :] + gain, axis=1))
        if np.array_equal(new, t):
            break
        t = new
    out = np.zeros(c.size)
    out[idx] = t
    return out
