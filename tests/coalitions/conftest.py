"""Random games and brute-force references for the solution-concept tests.

The references loop over coalitions and permutations in plain Python, independently of
the vectorised bitmask code they check. They are session fixtures so that hypothesis
tests can use them.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from coopml._bitmask import coalition_sums, popcounts
from coopml.coalitions.game import CoalitionGame


@st.composite
def _games(draw: st.DrawFn, min_players: int = 1, max_players: int = 7) -> CoalitionGame:
    """Random tables: integer values (many ties, degenerate LPs) or floats."""
    n = draw(st.integers(min_players, max_players))
    if draw(st.booleans()):
        elements = st.integers(-5, 5).map(float)
    else:
        elements = st.floats(-100, 100, allow_subnormal=False)
    return CoalitionGame(draw(arrays(np.float64, 1 << n, elements=elements)))


def _members(mask: int, n: int) -> list[int]:
    return [i for i in range(n) if mask >> i & 1]


def _shapley(v: np.ndarray) -> np.ndarray:
    n = v.size.bit_length() - 1
    phi = np.zeros(n)
    for i in range(n):
        for S in range(1 << n):
            if not S >> i & 1:
                s = len(_members(S, n))
                w = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
                phi[i] += w * (v[S | 1 << i] - v[S])
    return phi


def _permutation_shapley(v: np.ndarray) -> np.ndarray:
    n = v.size.bit_length() - 1
    phi = np.zeros(n)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        S = 0
        for i in order:
            phi[i] += v[S | 1 << i] - v[S]
            S |= 1 << i
    return phi / len(orders)


def _banzhaf(v: np.ndarray) -> np.ndarray:
    n = v.size.bit_length() - 1
    return np.array(
        [np.mean([v[S | 1 << i] - v[S] for S in range(1 << n) if not S >> i & 1]) for i in range(n)]
    )


def _excesses(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Excesses v(S) - x(S) of the proper coalitions, sorted in decreasing order."""
    n = v.size.bit_length() - 1
    e = [v[S] - sum(x[i] for i in _members(S, n)) for S in range(1, (1 << n) - 1)]
    return np.sort(e)[::-1]


def _lex_leq(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    """``a <= b`` lexicographically, entries closer than ``tol`` counting as equal."""
    for a_k, b_k in zip(a, b, strict=True):
        if abs(a_k - b_k) > tol:
            return bool(a_k < b_k)
    return True


def _least_core_points(v: np.ndarray, eps: float, k: int, rng: np.random.Generator) -> list:
    """``k`` vertices of {x : x(N) = v(N), x(S) >= v(S) - eps} for random objectives (dense LP)."""
    n = v.size.bit_length() - 1
    A = np.array([[S >> i & 1 for i in range(n)] for S in range(1, (1 << n) - 1)], float)
    points = []
    for _ in range(k):
        res = linprog(
            rng.normal(size=n),
            A_ub=-A,
            b_ub=eps - v[1:-1],
            A_eq=np.ones((1, n)),
            b_eq=v[-1:],
            bounds=(None, None),
            method="highs",
        )
        assert res.status == 0, res.message
        points.append(res.x)
    return points


@pytest.fixture(scope="session")
def random_games() -> object:
    """Strategy factory: ``random_games(min_players=1, max_players=7)``."""
    return _games


@pytest.fixture(scope="session")
def brute() -> SimpleNamespace:
    """Brute-force references: shapley, permutation_shapley, banzhaf, excesses, lex_leq,
    least_core_points."""
    return SimpleNamespace(
        shapley=_shapley,
        permutation_shapley=_permutation_shapley,
        banzhaf=_banzhaf,
        excesses=_excesses,
        lex_leq=_lex_leq,
        least_core_points=_least_core_points,
    )


def seeded_game(seed: int) -> CoalitionGame:
    """Games of 3-12 players: integer ties, floats, symmetric, sparse, non-monotone,
    convex (non-empty core) and learning-curve-like (usually an empty core)."""
    rng = np.random.default_rng(seed)
    n = 3 + seed % 10
    kind = seed % 7
    if kind == 0:
        table = rng.integers(-5, 6, 1 << n).astype(float)
    elif kind == 1:
        table = rng.uniform(-100, 100, 1 << n)
    elif kind == 2:  # symmetric: value depends on size only, many equal excesses
        table = rng.integers(-3, 6, n + 1).astype(float)[popcounts(n)]
    elif kind == 3:  # sparse
        table = np.where(rng.uniform(size=1 << n) < 0.1, rng.integers(1, 10, 1 << n), 0.0)
    elif kind == 4:  # convex: the core is large, the least core a face of it
        table = coalition_sums(rng.uniform(0.5, 2.0, n)) ** 1.5
    elif kind == 5:  # learning curve of pooled data plus noise
        size = coalition_sums(rng.integers(20, 200, n).astype(float))
        table = 0.5 + 0.4 * (1 - np.exp(-size / 300)) + rng.normal(0, 0.005, size.size)
    else:  # non-monotone: a positive game minus a large random penalty on some coalitions
        table = coalition_sums(rng.uniform(0, 1, n)) - 5.0 * (rng.uniform(size=1 << n) < 0.3)
    return CoalitionGame(table)
