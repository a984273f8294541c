"""Checks on every message an agent sends: a bad message fails the round, naming the
party, before anything is settled.

A reply is a mapping of names to numbers and arrays. Whatever transport carried it,
the operator checks that every expected entry is there with the expected shape, that
every number is finite, and that the statistics are consistent: counts are
non-negative whole numbers that add up to what the party announced, a Gram matrix is
symmetric positive semi-definite, a class's sum of squares bounds its squared sum
(non-negative variances), a Hessian of a convex loss is positive semi-definite.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["AgentError", "check_counts", "check_psd", "entry"]

#: Relative tolerance of the positive semi-definiteness and variance checks (rounding).
PSD_TOL = 1e-9


class AgentError(ValueError):
    """An agent's message failed a check, or the agent did not answer; nothing is settled.

    Attributes
    ----------
    party : str
        The agent that sent the message.
    """

    def __init__(self, party: str, message: str) -> None:
        self.party = party
        super().__init__(f"party {party!r}: {message}; the round is not settled")


def entry(party: str, reply: Mapping[str, Any], name: str, shape: tuple[int, ...]) -> Any:
    """The finite float64 array ``reply[name]`` of shape ``shape``, or an :class:`AgentError`.

    Examples
    --------
    >>> entry("alice", {"n": 3}, "n", ()).item()
    3.0
    >>> entry("alice", {"n": float("nan")}, "n", ())
    Traceback (most recent call last):
    ...
    coopml.custody.checks.AgentError: party 'alice': sent 'n' with non-finite values (NaN or infinity); the round is not settled
    """  # noqa: E501
    if name not in reply:
        raise AgentError(party, f"sent no {name!r} (expected an array of shape {shape})")
    try:
        value = np.asarray(reply[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise AgentError(party, f"sent {name!r} that is not numeric") from None
    if value.shape != shape:
        raise AgentError(party, f"sent {name!r} of shape {value.shape}; expected {shape}")
    if not np.isfinite(value).all():
        raise AgentError(party, f"sent {name!r} with non-finite values (NaN or infinity)")
    return value


def check_counts(party: str, name: str, counts: NDArray[np.float64]) -> None:
    """Counts must be non-negative whole numbers."""
    if (counts < 0).any() or (counts != np.round(counts)).any():
        raise AgentError(party, f"sent {name!r} that are not non-negative whole numbers")


def check_psd(party: str, name: str, matrices: NDArray[np.float64]) -> None:
    """Every matrix of the stack ``(..., d, d)`` must be symmetric positive semi-definite.

    Examples
    --------
    >>> check_psd("bob", "gram", np.array([[1.0, 2.0], [2.0, 1.0]]))
    Traceback (most recent call last):
    ...
    coopml.custody.checks.AgentError: party 'bob': sent 'gram' that is not positive semi-definite (eigenvalue -1 of 3); the round is not settled
    """  # noqa: E501
    M = np.asarray(matrices)
    scale = np.abs(M).max(initial=0.0)
    if not np.allclose(M, np.swapaxes(M, -1, -2), rtol=0.0, atol=PSD_TOL * (1.0 + scale)):
        raise AgentError(party, f"sent {name!r} that is not symmetric")
    eig = np.linalg.eigvalsh(M)
    low, high = float(eig.min(initial=0.0)), float(np.abs(eig).max(initial=0.0))
    if low < -PSD_TOL * (1.0 + high):
        raise AgentError(
            party,
            f"sent {name!r} that is not positive semi-definite "
            f"(eigenvalue {low:.3g} of {high:.3g})",
        )
