"""The parties-custody protocol on Flower's deployment runtime (extra ``flower``).

coopml writes no transport of its own: the operator's requests and the agents' replies
travel as Flower ``Message`` objects between a ``ServerApp`` and the ``ClientApp`` of
each party's SuperNode, through a SuperLink (https://flower.ai, ``flwr`` >= 1.20).

* :func:`encode` / :func:`decode` -- a protocol message as a ``RecordDict``: its numpy
  arrays in an ``ArrayRecord``, everything else as one JSON string in a
  ``ConfigRecord``.
* :func:`client_app` -- the agent as a ``ClientApp`` (``coopml.custody.agent:app``):
  on a ``query`` message it answers with :meth:`~coopml.custody.agent.Agent.handle`
  on the files named in its SuperNode's node config
  (:func:`~coopml.custody.agent.agent_from_config`).
* :class:`FlowerTransport` -- a :class:`~coopml.custody.transport.Transport` over a
  ``Grid``: finds each party's node (a ``hello`` query; with ``keys``, a node is taken
  for a party only when its reply proves it holds the party's token,
  :func:`agent_proof`), sends requests, waits up to ``timeout`` seconds for the
  replies, waits as long for an agent that disconnected to return on a new node (and
  sends it the request again), and names a party that did not answer or return.
* :func:`server_app` -- the operator as a ``ServerApp``
  (``coopml.custody.flower:app``): reads a job file named in the run config
  (``job``), runs :func:`~coopml.custody.run_custody_market` over the grid, and writes
  the settlement and value tables as JSON to the job's ``output`` path.
* :func:`write_app` / :func:`run_job` -- the Flower app directory (a ``pyproject.toml``
  naming the two components) and ``flwr run`` against a SuperLink connection; the
  caller reads the result from the job's output path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from coopml.custody.checks import AgentError

__all__ = [
    "FlowerTransport",
    "agent_key",
    "agent_proof",
    "answer",
    "client_app",
    "decode",
    "encode",
    "encoded_bytes",
    "run_job",
    "server_app",
    "write_app",
]

#: The message type of every protocol message (Flower's ``query``).
MESSAGE_TYPE = "query"
#: Seconds between two pulls of pending replies.
POLL = 0.05
#: Seconds between two looks for a disconnected agent's new node while replies wait.
LOOK = 2.0
#: How many times one exchange sends a party's request again (each time its agent came
#: back); past that the party is named, so a node that keeps dropping it ends the round.
RESENDS = 5


def encode(message: Mapping[str, Any]) -> Any:
    """A protocol message as a Flower ``RecordDict`` (arrays apart, the rest as JSON).

    Examples
    --------
    >>> m = decode(encode({"kind": "x", "a": np.eye(2), "b": {"c": np.ones(1), "d": [1]}}))
    >>> m["kind"], m["a"].tolist(), m["b"]["c"].tolist(), m["b"]["d"]
    ('x', [[1.0, 0.0], [0.0, 1.0]], [1.0], [1])
    """
    from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

    arrays: dict[str, Any] = {}

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, np.ndarray):
            # np.require keeps a 0-d array 0-d (ascontiguousarray makes it 1-d)
            arrays[path] = Array(np.require(value, requirements="C"))
            return {"__array__": path}
        if isinstance(value, Mapping):
            return {str(k): walk(v, f"{path}/{k}") for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, np.generic):
            return value.item()
        return value

    tree = walk(dict(message), "")
    return RecordDict(
        {"arrays": ArrayRecord(arrays), "config": ConfigRecord({"json": json.dumps(tree)})}
    )


def encoded_bytes(content: Any) -> int:
    """Bytes of a ``RecordDict`` made by :func:`encode` as Flower carries it: each
    ``Array``'s serialised data plus the UTF-8 length of the JSON string (Flower's
    per-object framing, a few dozen bytes each, is not counted).

    Examples
    --------
    >>> encoded_bytes(encode({"kind": "x"}))  # no array: the JSON alone
    13
    """
    arrays = content["arrays"] if "arrays" in content else {}
    total = sum(len(array.data) for array in arrays.values())
    return total + len(str(content["config"]["json"]).encode())


def decode(content: Any) -> dict[str, Any]:
    """The protocol message of a ``RecordDict`` made by :func:`encode`."""
    arrays = content["arrays"]
    tree = json.loads(str(content["config"]["json"]))

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return arrays[value["__array__"]].numpy()
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    result = walk(tree)
    assert isinstance(result, dict)
    return result


def agent_key(token_hash: str) -> str:
    """The key an agent proves its party with: derived from the SHA-256 of the party's
    token (:func:`coopml.service.security.hash_token`, which is all the service stores),
    so the service can check a proof and the agent need not hand its token to Flower.

    Examples
    --------
    >>> len(agent_key("ab" * 32))
    64
    """
    return hmac.new(token_hash.encode(), b"coopml-custody-agent", hashlib.sha256).hexdigest()


def agent_proof(key: str, nonce: str, party: str) -> str:
    """The agent's answer to a ``hello``'s ``nonce``: an HMAC of the nonce and the
    party's name under :func:`agent_key` (fresh per hello: a replayed proof fails).

    Examples
    --------
    >>> agent_proof("k", "n1", "alice") == agent_proof("k", "n2", "alice")
    False
    """
    message = f"{nonce}:{party}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def answer(agent: Any, content: Any, key: str | None = None) -> Any:
    """The agent's reply (a ``RecordDict``) to a request's content: ``hello`` names the
    party (and, with ``key``, proves it: :func:`agent_proof` of the hello's ``nonce``);
    a request it cannot answer becomes ``{"error": ...}``, which the operator turns
    into an :class:`~coopml.custody.checks.AgentError` naming the party."""
    from flwr.app import ConfigRecord, RecordDict

    request = decode(content)
    try:
        if request.get("kind") == "hello":
            # its feature columns, in the order its statistics use: every party's must agree
            reply: dict[str, Any] = {
                "party": agent.name,
                "features": list(agent.party.feature_names or []),
            }
            if key and request.get("nonce"):
                reply["proof"] = agent_proof(key, str(request["nonce"]), agent.name)
        else:
            reply = agent.handle(request)
    except Exception as exc:
        error = {"error": f"{type(exc).__name__}: {exc}"}
        return RecordDict({"config": ConfigRecord({"json": json.dumps(error)})})
    return encode(reply)


def client_app() -> Any:
    """The agent's ``ClientApp``: answers every ``query`` from its node's files."""
    from flwr.app import Context, Message
    from flwr.clientapp import ClientApp

    from coopml.custody.agent import Agent, agent_from_config

    app = ClientApp()
    agents: dict[str, Agent] = {}

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        # the round (Flower's run id) keys a private agent's state across processes
        config = {**context.node_config, "round": str(msg.metadata.run_id)}
        key = json.dumps(config, sort_keys=True, default=str)
        if key not in agents:
            agents[key] = agent_from_config(config)
        agent = agents[key]
        n_logged = len(agent.log)
        key_file = config.get("key_file")  # the party's agent key (coopml agent writes it)
        proof_key = Path(str(key_file)).read_text().strip() if key_file else None
        content = answer(agent, msg.content, proof_key)
        if len(agent.log) > n_logged:
            _append_log(config, agent)
        return Message(content, reply_to=msg)

    return app


def _append_log(config: Mapping[str, Any], agent: Any) -> None:
    """Append the agent's latest log entry to the node config's ``log`` file, if set."""
    path = config.get("log")
    if path and agent.log:
        with open(str(path), "a", encoding="utf-8") as f:
            f.write(json.dumps({"party": agent.name, **agent.log[-1]}) + "\n")


class FlowerTransport:
    """Protocol messages over a Flower ``Grid`` (inside a ``ServerApp``).

    Parameters
    ----------
    grid : flwr.serverapp.Grid
    timeout : float
        Seconds to wait for each reply of an exchange, and for an agent that
        disconnected to return (its request is then sent again, see
        :meth:`exchange`); past that, an :class:`~coopml.custody.checks.AgentError`
        names the party.
    keys : mapping of str to list of str, optional
        Each party's accepted :func:`agent_key` values: a node is taken for a party only
        when its ``hello`` reply carries a valid :func:`agent_proof` (a node that claims
        a name without it is ignored). ``None``: the name a node claims is trusted
        (tests on loopback).
    """

    def __init__(
        self, grid: Any, timeout: float = 60.0, keys: Mapping[str, list[str]] | None = None
    ) -> None:
        self.grid, self.timeout = grid, float(timeout)
        self.keys = None if keys is None else {k: list(v) for k, v in keys.items()}
        #: nodes whose hello claimed a party without a valid proof: node id -> claim
        self.refused: dict[int, str] = {}
        self.nodes: dict[str, int] = {}
        self.features: dict[str, list[str]] = {}  # each party's columns, in its order
        self.bytes_in: dict[str, int] = {}
        self.bytes_out: dict[str, int] = {}
        #: encoded bytes (:func:`encoded_bytes`) sent to and received from each node,
        #: hellos included; Flower messages sent, and exchanges (round trips)
        self.wire_sent: dict[int, int] = {}
        self.wire_received: dict[int, int] = {}
        self.n_messages = self.n_exchanges = 0
        #: hellos sent to new nodes during exchanges: message id -> (node id, nonce)
        self.greetings: dict[str, tuple[int, str]] = {}

    def connect(self, names: list[str], wait: float = 30.0) -> None:
        """Find the node of every named party (each answers a ``hello``)."""
        deadline = time.monotonic() + wait
        while True:
            known = set(self.nodes.values()) | set(self.refused)
            ids = [i for i in self.grid.get_node_ids() if i not in known]
            if ids:
                nonces = {i: secrets.token_hex(16) for i in ids}
                hellos = {i: {"kind": "hello", "nonce": nonces[i]} for i in ids}
                for reply in self._send(hellos):
                    if not reply.has_error():
                        node = reply.metadata.src_node_id
                        self._greeted(node, nonces.get(node, ""), reply)
            missing = [n for n in names if n not in self.nodes]
            if not missing:
                self._check_features(names)
                return
            if time.monotonic() > deadline:
                claimed = sorted(set(self.refused.values()) & set(missing))
                why = (
                    f" (a node claimed to be {claimed[0]!r} without proof of its token)"
                    if claimed
                    else ""
                )
                raise AgentError(missing[0], f"has no agent connected after {wait:g} s{why}")
            time.sleep(0.5)

    def _check_features(self, names: list[str]) -> None:
        """Every party's statistics must use the same columns in the same order (they
        are summed): a party whose feature columns differ from the first party's is
        refused, naming it and the columns (never summed by position)."""
        named = [n for n in names if self.features.get(n)]
        if not named:
            return
        first = self.features[named[0]]
        for name in names:
            theirs = self.features.get(name) or []
            if theirs != first:
                raise AgentError(
                    name,
                    f"its feature columns {theirs} differ from {named[0]!r}'s {first} "
                    "(statistics are summed column by column: every agent must use the "
                    "market's feature order)",
                )

    def _proven(self, party: str, nonce: str, proof: Any) -> bool:
        """Whether a hello's reply proves ``party`` (always, without ``keys``)."""
        if self.keys is None:
            return True
        return isinstance(proof, str) and any(
            hmac.compare_digest(proof, agent_proof(key, nonce, party))
            for key in self.keys.get(party, [])
        )

    def exchange(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Send ``requests[name]`` to every named party's agent and return the replies.

        An agent that disconnects is waited for: while replies are pending, new nodes
        are greeted every :data:`LOOK` s; a node that proves it is a waiting party (a
        restarted ``coopml agent`` gets a new node id) with the feature columns the
        party announced before takes the party's place, and the pending request is
        sent to it again. Each request waits ``timeout`` seconds for its reply from
        when it was (re)sent, and a party whose node is known to be gone (Flower's
        ``NODE_UNAVAILABLE`` or ``MESSAGE_UNAVAILABLE``, or its node left the
        SuperLink) gets ``timeout`` seconds from then to return, on a new node or on
        the same one reconnected; past that, or once its request was sent again
        :data:`RESENDS` times, an :class:`~coopml.custody.checks.AgentError` names it.
        """
        unknown = [name for name in requests if name not in self.nodes]
        if unknown:
            self.connect(list(requests), wait=self.timeout)
        pending = self._push(requests)
        replies: dict[str, dict[str, Any]] = {}
        look = time.monotonic() + LOOK
        resent: dict[str, int] = {}

        def resend(names: list[str]) -> None:  # each party's wait ends: at most RESENDS
            for name in names:
                resent[name] = resent.get(name, 0) + 1
                if resent[name] > RESENDS:
                    raise AgentError(
                        name,
                        f"its request was sent {RESENDS} more times and never answered (its "
                        "agent keeps disconnecting)",
                    )
            pending.update(self._push({name: pending[name].request for name in names}))

        while pending:
            wanted = {p.message_id for p in pending.values() if p.lost is None}
            wanted |= set(self.greetings)
            pulled = list(self.grid.pull_messages(wanted))
            self._count_received(pulled)
            for reply in pulled:
                replied_to = reply.metadata.reply_to_message_id
                if replied_to in self.greetings:
                    party = self._greeted(*self.greetings.pop(replied_to), reply)
                    if party in pending:  # the agent is back: send it the request again
                        resend([party])
                    continue
                name = _waiting_for(pending, replied_to)
                if name is None:  # the reply to a request already sent again
                    continue
                if _undeliverable(reply):  # wait for the agent's return, then send again
                    pending[name].lose(str(reply.error.reason), self.timeout)
                    continue
                replies[name] = self._accept(name, requests[name], reply)
                del pending[name]
            if pending and time.monotonic() >= look:
                back = self._look_for_lost_agents(pending)
                if back:  # reconnected on the same node: send the request again
                    resend(back)
                look = time.monotonic() + LOOK
            self._check_deadlines(pending)
            if pending:
                time.sleep(POLL)
        return replies

    def _push(self, requests: Mapping[str, Mapping[str, Any]]) -> dict[str, _Pending]:
        """Send each party its request (to its current node); what is now awaited."""
        from flwr.app import Message

        names = list(requests)
        messages = [
            Message(encode(requests[n]), dst_node_id=self.nodes[n], message_type=MESSAGE_TYPE)
            for n in names
        ]
        self._count_sent(messages)
        ids = list(self.grid.push_messages(messages))
        deadline = time.monotonic() + self.timeout
        return {
            n: _Pending(requests[n], self.nodes[n], i, deadline)
            for n, i in zip(names, ids, strict=True)
        }

    def _accept(self, name: str, request: Mapping[str, Any], reply: Any) -> dict[str, Any]:
        """A party's reply as a protocol message; an error it reports names it."""
        from coopml.custody.transport import message_bytes

        if reply.has_error():
            raise AgentError(name, f"failed to answer: {reply.error.reason}")
        message = decode(reply.content) if "arrays" in reply.content else _json(reply)
        if "error" in message:
            raise AgentError(name, f"failed to answer {request.get('kind')!r}: {message['error']}")
        self.bytes_in[name] = self.bytes_in.get(name, 0) + message_bytes(request)
        self.bytes_out[name] = self.bytes_out.get(name, 0) + message_bytes(message)
        return message

    def _look_for_lost_agents(self, pending: Mapping[str, _Pending]) -> list[str]:
        """Greet the nodes not seen before (a returning agent's new node among them);
        a waiting party whose node has left the SuperLink is marked lost. Returns the
        lost parties whose node is online again (the same node, reconnected)."""
        online = set(self.grid.get_node_ids())
        back = [n for n, p in pending.items() if p.lost is not None and self.nodes[n] in online]
        for p in pending.values():
            if p.node not in online:
                p.lose("its node left the SuperLink", self.timeout)
        greeted = {node for node, _ in self.greetings.values()}
        known = set(self.nodes.values()) | set(self.refused) | greeted
        fresh = sorted(online - known)
        if not fresh:
            return back
        from flwr.app import Message

        nonces = {node: secrets.token_hex(16) for node in fresh}
        messages = [
            Message(
                encode({"kind": "hello", "nonce": nonces[node]}),
                dst_node_id=node,
                message_type=MESSAGE_TYPE,
            )
            for node in fresh
        ]
        self._count_sent(messages)
        ids = self.grid.push_messages(messages)
        self.greetings.update({i: (node, nonces[node]) for i, node in zip(ids, fresh, strict=True)})
        return back

    def _greeted(self, node: int, nonce: str, reply: Any) -> str | None:
        """Take a node for the party its hello reply proves (None: refused or failed).
        A party seen before must announce the same feature columns: a returning agent
        whose columns changed is an error naming it (never summed by position)."""
        if reply.has_error():
            self.refused[node] = ""
            return None
        message = decode(reply.content) if "arrays" in reply.content else _json(reply)
        party = str(message.get("party"))
        if not self._proven(party, nonce, message.get("proof")):
            self.refused[node] = party
            return None
        features = [str(f) for f in message.get("features") or []]
        if party in self.features and features != self.features[party]:
            raise AgentError(
                party,
                f"returned with feature columns {features}, not the {self.features[party]} "
                "it announced before",
            )
        self.nodes[party], self.features[party] = node, features
        return party

    def _check_deadlines(self, pending: Mapping[str, _Pending]) -> None:
        """An error naming the first party whose wait is over."""
        now = time.monotonic()
        for name, p in pending.items():
            if now <= p.deadline:
                continue
            if p.lost is not None:
                raise AgentError(
                    name,
                    f"disconnected ({p.lost}) and did not return within {self.timeout:g} s",
                )
            raise AgentError(name, f"did not answer within {self.timeout:g} s")

    def _count_sent(self, messages: list[Any]) -> None:
        """Count what one push carries to each node (one round trip)."""
        for message in messages:
            node = message.metadata.dst_node_id
            self.wire_sent[node] = self.wire_sent.get(node, 0) + encoded_bytes(message.content)
        self.n_messages, self.n_exchanges = self.n_messages + len(messages), self.n_exchanges + 1

    def _count_received(self, replies: list[Any]) -> None:
        """Count what the pulled replies carried from each node."""
        for reply in replies:
            if not reply.has_error() and "config" in reply.content:
                node = reply.metadata.src_node_id
                size = encoded_bytes(reply.content)
                self.wire_received[node] = self.wire_received.get(node, 0) + size

    def _send(self, requests: Mapping[int, Mapping[str, Any]]) -> list[Any]:
        """Push one message per node and pull the replies until all are in or the
        timeout passes (polling every :data:`POLL` s: the grid's own
        ``send_and_receive`` polls every 3 s, which a Newton method's many round trips
        would pay each time)."""
        from flwr.app import Message

        messages = [
            Message(encode(request), dst_node_id=node, message_type=MESSAGE_TYPE)
            for node, request in requests.items()
        ]
        self._count_sent(messages)
        pending = set(self.grid.push_messages(messages))
        replies: list[Any] = []
        deadline = time.monotonic() + self.timeout
        while pending and time.monotonic() < deadline:
            pulled = list(self.grid.pull_messages(pending))
            self._count_received(pulled)
            replies.extend(pulled)
            pending -= {m.metadata.reply_to_message_id for m in pulled}
            if pending:
                time.sleep(POLL)
        return replies


def _json(reply: Any) -> dict[str, Any]:
    result = json.loads(str(reply.content["config"]["json"]))
    assert isinstance(result, dict)
    return result


@dataclass
class _Pending:
    """A request awaiting its party's reply: the node and message it went to, and
    until when the round waits (``lost``: why its node is known to be gone)."""

    request: Mapping[str, Any]
    node: int
    message_id: str
    deadline: float
    lost: str | None = None

    def lose(self, why: str, timeout: float) -> None:
        """The node is gone: wait ``timeout`` seconds from now for the agent's return."""
        if self.lost is None:
            self.lost = why
            self.deadline = max(self.deadline, time.monotonic() + timeout)


def _waiting_for(pending: Mapping[str, _Pending], message_id: str) -> str | None:
    """The party whose current request is ``message_id``, if one is."""
    return next((n for n, p in pending.items() if p.message_id == message_id), None)


def _undeliverable(reply: Any) -> bool:
    """Whether a reply is the SuperLink's word that the request cannot reach its node:
    the node is gone (``NODE_UNAVAILABLE``), or the request was dropped with it
    (``MESSAGE_UNAVAILABLE``, what pulling it again returns)."""
    from flwr.common.constant import ErrorCode

    gone = (ErrorCode.NODE_UNAVAILABLE, ErrorCode.MESSAGE_UNAVAILABLE)
    return bool(reply.has_error() and reply.error.code in gone)


def server_app() -> Any:
    """The operator's ``ServerApp``: runs the job named by the run config's ``job``."""
    from flwr.app import Context
    from flwr.serverapp import Grid, ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        serve_job(grid, Path(str(context.run_config["job"])))

    return app


def serve_job(grid: Any, job_file: Path) -> None:
    """Run the job in ``job_file`` over ``grid`` and write its result (or its failure)
    to the job's ``output``, touching a heartbeat file beside it while it runs."""
    job = json.loads(job_file.read_text())
    output = Path(job["output"])
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(_beat_file(output), stop), daemon=True)
    beat.start()
    try:
        result = _run(grid, job)
    except BaseException as exc:  # the caller reads the failure, naming the party
        party = getattr(exc, "party", None)
        # Flower ends a run it no longer counts as running (RunNotRunningException)
        # or was stopped (a signal) with BaseExceptions: say so, never stay silent
        error = str(exc) or f"the ServerApp was stopped ({type(exc).__name__})"
        _write_result(output, {"ok": False, "error": error, "party": party})
        if not isinstance(exc, Exception):
            raise
    else:
        _write_result(output, result)
    finally:
        stop.set()


#: Seconds between two heartbeats of a running ServerApp (:func:`run_job` reads them).
BEAT = 5.0


def _beat_file(output: Path) -> Path:
    return output.with_suffix(".beat")


def _beat(path: Path, stop: threading.Event) -> None:
    """Touch ``path`` every :data:`BEAT` s until ``stop``: the round's ServerApp is alive."""
    tmp = path.with_name(path.name + ".tmp")
    while not stop.is_set():
        tmp.write_text(str(time.time()))
        tmp.replace(path)  # atomic: a reader never sees a half-written beat
        stop.wait(BEAT)


def _write_result(output: Path, result: Mapping[str, Any]) -> None:
    tmp = output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=_jsonable))
    tmp.replace(output)


def _stopping(job: Mapping[str, Any]) -> Any:
    """The estimate's stopping rule of ``job`` (``max_evaluations``, ``stderr_target``):
    ``None`` (the market's default) when it names none or is valued exactly.

    Examples
    --------
    >>> _stopping({"valuation": "exact", "max_evaluations": 100}) is None
    True
    >>> _stopping({"max_evaluations": 100, "stderr_target": None})
    MaxEvaluations(100)
    """
    if job.get("valuation") == "exact" or "max_evaluations" not in job:
        return None
    from coopml.market.sampled_shares import market_stopping

    return market_stopping(int(job["max_evaluations"]), job.get("stderr_target"))


def _run(grid: Any, job: dict[str, Any]) -> dict[str, Any]:
    from coopml.custody.learners import build_estimator
    from coopml.custody.market import released_models, run_custody_market

    transport = FlowerTransport(grid, timeout=float(job.get("timeout", 60.0)), keys=job.get("keys"))
    names = list(job["names"])
    validator = job.get("validator")
    parties = names + ([validator] if validator and validator not in names else [])
    started = time.monotonic()
    transport.connect(parties, wait=float(job.get("connect", 30.0)))
    connected = time.monotonic()
    result = run_custody_market(
        transport,
        names,
        build_estimator(job["learner"]),
        validator,
        rule=job.get("rule", "ohrimenko"),
        price=float(job.get("price", 1.0)),
        scorer=job.get("scorer", "accuracy"),
        empty_value=job.get("empty_value", "majority"),
        random_state=int(job.get("random_state", 0)),
        valuation=job.get("valuation", "auto"),
        stopping=_stopping(job),
    )
    return {
        "ok": True,
        "settlement": result.settlement.to_dict(),
        "tables": [g.table.tolist() for g in result.games],
        # each party's customised model (coefficients, class moments: no row), and the
        # feature order the agents' statistics used (the models' input columns)
        "models": released_models(result),
        "features": transport.features.get(names[0], []),
        "bytes_in": transport.bytes_in,
        "bytes_out": transport.bytes_out,
        # what Flower carried (benchmarks/bench_custody.py): per party, encoded bytes
        # sent to and received from its node (hello included); messages, round trips
        "wire": {
            name: {
                "sent": transport.wire_sent.get(node, 0),
                "received": transport.wire_received.get(node, 0),
            }
            for name, node in transport.nodes.items()
        },
        "messages": transport.n_messages,
        "exchanges": transport.n_exchanges,
        "seconds": {"connect": connected - started, "round": time.monotonic() - connected},
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return repr(obj)


_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "coopml-custody"
version = "1.0.0"
description = "coopml parties custody: the operator's ServerApp and the parties' agents"
license = "BSD-3-Clause"
dependencies = []

[tool.flwr.app]
publisher = "coopml"

[tool.flwr.app.components]
serverapp = "coopml.custody.flower:app"
clientapp = "coopml.custody.agent:app"

[tool.flwr.app.config]
job = ""
"""


def write_app(directory: str | os.PathLike[str]) -> Path:
    """Write the Flower app (a ``pyproject.toml`` naming coopml's two components) into
    ``directory``; coopml itself must be installed where the apps run."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / "pyproject.toml").write_text(_PYPROJECT)
    return path


class RunLost(RuntimeError):
    """The SuperLink that ran a round is gone (``run_job``'s ``alive`` said so), or the
    round's ServerApp is (its heartbeat stopped): no result will come."""


def run_job(
    job: Mapping[str, Any],
    app_dir: str | os.PathLike[str],
    flwr_home: str | os.PathLike[str],
    superlink: str = "coopml",
    wait: float = 300.0,
    alive: Callable[[], bool] | None = None,
    silence: float = 180.0,
) -> dict[str, Any]:
    """Start a parties-custody round with ``flwr run`` and wait for its result.

    ``job`` holds ``names``, ``learner`` (:func:`~coopml.custody.learners.learner_spec`),
    ``validator`` (optional), ``scorer``, ``rule``, ``price``, ``timeout`` and ``output``
    (where the ServerApp writes the result). ``flwr_home`` holds Flower's
    ``config.toml`` with the SuperLink connection ``superlink``. ``alive()``, checked
    while waiting, says whether the SuperLink the run was sent to still runs; when it
    does not, :class:`RunLost` is raised at once instead of waiting ``wait`` seconds. So
    it is when the round's ServerApp has not started after ``silence`` seconds, or its
    heartbeat (a file it touches every :data:`BEAT` s) is ``silence`` seconds old: it
    died without a result (Flower ends a run it no longer counts as running that way).
    """
    output = Path(job["output"])
    job_file = output.with_suffix(".job.json")
    job_file.write_text(json.dumps(dict(job)))
    env = {**os.environ, "FLWR_HOME": str(flwr_home), "FLWR_TELEMETRY_ENABLED": "0"}
    flwr = str(Path(sys.executable).with_name("flwr"))
    started = subprocess.run(
        [flwr, "run", str(app_dir), superlink, "--run-config", f'job="{job_file}"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=wait,
    )
    if started.returncode != 0:
        raise RuntimeError(f"flwr run failed: {(started.stdout + started.stderr)[-2000:]}")
    started_at = time.monotonic()
    deadline = started_at + wait
    beat = _beat_file(output)
    last: float | None = None  # the latest heartbeat seen (time.time())
    try:
        while not output.exists():
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"no result at {output} after {wait:g} s")
            if alive is not None and not alive():
                raise RunLost(f"the SuperLink that ran {output.name} stopped before its result")
            last = _check_beat(beat, now - started_at, silence, last)
            time.sleep(0.2)
    finally:
        beat.unlink(missing_ok=True)
        beat.with_name(beat.name + ".tmp").unlink(missing_ok=True)
    result = json.loads(output.read_text())
    assert isinstance(result, dict)
    return result


def _check_beat(beat: Path, waited: float, silence: float, last: float | None) -> float | None:
    """The latest heartbeat of the round's ServerApp (``last``: the one seen before, kept
    when the file cannot be read just now); a :class:`RunLost` once it is known to be
    gone: no heartbeat at all after ``silence`` seconds of waiting, or none for
    ``silence`` seconds since the last one."""
    try:
        seen = float(beat.read_text())
    except (OSError, ValueError):
        seen = math.nan
    if not math.isnan(seen):
        last = seen if last is None else max(last, seen)
    if last is None:
        if waited > silence:
            raise RunLost(f"the round's ServerApp did not start within {silence:g} s")
        return None
    if time.time() - last > silence:
        raise RunLost(
            f"the round's ServerApp stopped without a result (no heartbeat for {silence:g} s)"
        )
    return last


def __getattr__(name: str) -> Any:
    if name == "app":
        return server_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
