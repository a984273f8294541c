"""How the operator's requests reach the agents: one protocol, two carriers.

A transport sends each named agent one request and returns every reply
(:meth:`Transport.exchange`); requests and replies are mappings of names to numbers,
strings, lists and numpy arrays. :class:`LocalTransport` calls in-process
:class:`~coopml.custody.agent.Agent` objects (tests, simulations);
:class:`~coopml.custody.flower.FlowerTransport` carries the same messages over
Flower's deployment runtime (SuperLink and SuperNodes). An agent that fails to answer
is an :class:`~coopml.custody.checks.AgentError` naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from coopml.custody.agent import Agent
from coopml.custody.checks import AgentError

__all__ = ["LocalTransport", "Transport", "message_bytes"]


@runtime_checkable
class Transport(Protocol):
    """Carries the operator's requests to the agents and their replies back."""

    def exchange(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Send ``requests[name]`` to agent ``name``, for every name; return the replies."""
        ...


class LocalTransport:
    """Agents in this process (no network); counts the bytes of every array sent.

    Examples
    --------
    >>> from coopml.data import Party
    >>> t = LocalTransport([Agent(Party("alice", [[1.0], [3.0]], [0.5, 1.5]))])
    >>> t.exchange({"alice": {"kind": "moments", "task": "regression"}})["alice"]["sum_y"]
    2.0
    """

    def __init__(self, agents: Sequence[Agent]) -> None:
        self.agents = {a.name: a for a in agents}
        if len(self.agents) != len(agents):
            raise ValueError("parameter 'agents' must have distinct names")
        #: bytes of the arrays each agent received and sent
        self.bytes_in: dict[str, int] = dict.fromkeys(self.agents, 0)
        self.bytes_out: dict[str, int] = dict.fromkeys(self.agents, 0)

    def exchange(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        replies = {}
        for name, request in requests.items():
            if name not in self.agents:
                raise AgentError(name, "has no agent connected")
            try:
                reply = self.agents[name].handle(request)
            except Exception as exc:
                raise AgentError(name, f"failed to answer {request.get('kind')!r}: {exc}") from exc
            self.bytes_in[name] += message_bytes(request)
            self.bytes_out[name] += message_bytes(reply)
            replies[name] = reply
        return replies


def message_bytes(message: Mapping[str, Any]) -> int:
    """Bytes of the numeric arrays in a message (nested mappings included).

    Examples
    --------
    >>> message_bytes({"a": np.zeros(3), "b": {"c": np.zeros((2, 2))}, "d": "x"})
    56
    """
    total = 0
    for value in message.values():
        if isinstance(value, Mapping):
            total += message_bytes(value)
        elif isinstance(value, np.ndarray):
            total += value.nbytes
    return total
