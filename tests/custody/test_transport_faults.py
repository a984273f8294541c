"""Disconnects on Flower's carrier, without processes: a stand-in grid whose agents can
leave mid-round and come back on a new node id, as a restarted ``coopml agent`` does
(issue 17 item 6). The round waits for a lost agent, finds it again by a proven
``hello``, checks its columns and sends it the pending request again; or it fails
naming the party, with nothing settled."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

import numpy as np
import pytest
from sklearn.naive_bayes import GaussianNB
from tests.custody._grid import InProcessGrid, breast_cancer_parties

from coopml.custody import Agent, AgentError
from coopml.custody.learners import learner_spec
from coopml.data import Party
from coopml.market import run_market

pytest.importorskip("flwr")
from flwr.app import Error, Message, RecordDict
from flwr.common.constant import ErrorCode

from coopml.custody import flower
from coopml.custody.flower import _run, answer, decode

COLUMNS = [f"c{j}" for j in range(30)]


class RestartingGrid(InProcessGrid):
    """``get_node_ids``, ``push_messages``, ``pull_messages`` of a Flower ``Grid``.

    ``crash(party, kind, ...)``: the party's node takes the first ``kind`` request it
    gets and dies with it (it leaves the node list; with ``announce`` the SuperLink
    answers the request with ``NODE_UNAVAILABLE``, as Flower does once a node misses
    its heartbeats). After ``rejoin_after`` pulls, ``returning`` (an agent, e.g. the
    restarted party) joins on a new node id.
    """

    def __init__(self, agents: list[Agent], keys: dict[str, str]) -> None:
        super().__init__([])
        self.keys = keys
        self.node_ids = itertools.count(100)
        self.pulls = 0
        self.crashed: dict[int, str] = {}  # node -> party
        self.plan: dict[str, Any] | None = None
        self.forged: set[int] = set()  # agents (by id) that prove with a wrong key
        self.dropped: dict[str, Message] = {}  # messages Flower dropped with their node
        for agent in agents:
            self.join(agent)

    def join(self, agent: Agent) -> int:
        node = next(self.node_ids)
        self.nodes[node] = agent
        return node

    def crash(
        self,
        party: str,
        kind: str,
        *,
        returning: Agent | None,
        rejoin_after: int = 5,
        announce: bool = False,
        same_node: bool = False,
    ) -> None:
        self.plan = {"party": party, "kind": kind, "returning": returning}
        self.plan |= {"after": rejoin_after, "announce": announce, "at": None}
        self.plan |= {"same_node": same_node, "node": None}

    def reply(self, node: int, message: Message) -> RecordDict | None:
        if node not in self.nodes:  # a node that died earlier
            self._unavailable(message)
            return None
        agent = self.nodes[node]
        plan = self.plan
        kind = decode(message.content).get("kind")
        if plan and plan["at"] is None and agent.name == plan["party"] and kind == plan["kind"]:
            del self.nodes[node]  # killed while answering: no reply ever comes
            plan["at"], plan["node"] = self.pulls, node
            if plan["announce"]:
                self._unavailable(message)
            return None
        key = "forged" if id(agent) in self.forged else self.keys.get(agent.name)
        return answer(agent, message.content, key)

    def _unavailable(self, message: Message) -> None:
        """Flower's reply for a dead node; pulled again, the message is gone."""
        error = Error(code=ErrorCode.NODE_UNAVAILABLE, reason="Node Unavailable")
        self.replies[message.metadata.message_id] = Message(error, reply_to=message)
        self.dropped[message.metadata.message_id] = message

    def pull_messages(self, ids: set[str]) -> list[Message]:
        self.pulls += 1
        plan = self.plan
        if plan and plan["at"] is not None and plan["returning"] is not None:
            if self.pulls >= plan["at"] + plan["after"]:
                if plan["same_node"]:  # reconnected: Flower keeps its node id
                    self.nodes[plan["node"]] = plan["returning"]
                else:
                    self.join(plan["returning"])
                plan["returning"] = None
        replies = super().pull_messages(ids)
        gone = Error(code=ErrorCode.MESSAGE_UNAVAILABLE, reason="Message Unavailable")
        for i in set(ids) & set(self.dropped) - {r.metadata.reply_to_message_id for r in replies}:
            replies.append(Message(gone, reply_to=self.dropped[i]))
        return replies


@pytest.fixture(autouse=True)
def _look_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look for returning agents every 10 ms (2 s on a real SuperLink)."""
    monkeypatch.setattr(flower, "LOOK", 0.01)
    monkeypatch.setattr(flower, "POLL", 0.001)


def _parties() -> tuple[list[Party], Any]:
    return breast_cancer_parties(COLUMNS)


def _job(parties: list[Party], timeout: float) -> dict[str, Any]:
    names = [p.name for p in parties]
    return {
        "names": names,
        "learner": learner_spec(GaussianNB()),
        "validator": "party_0",
        "timeout": timeout,
        "keys": {name: [f"key-of-{name}"] for name in names},
    }


def _grid(parties: list[Party]) -> RestartingGrid:
    return RestartingGrid(
        [Agent(p) for p in parties], {p.name: f"key-of-{p.name}" for p in parties}
    )


@pytest.mark.parametrize("announce", [False, True], ids=["node-vanishes", "node-unavailable"])
@pytest.mark.parametrize("kind", ["statistics", "score"])
def test_a_restarted_agent_is_found_again_and_the_round_settles_as_undisturbed(
    kind: str, announce: bool
) -> None:
    parties, validation = _parties()
    grid = _grid(parties)
    victim = "party_0" if kind == "score" else "party_1"  # the validator scores
    restarted = Agent(next(p for p in parties if p.name == victim))  # a fresh process
    grid.crash(victim, kind, returning=restarted, announce=announce)
    result = _run(grid, _job(parties, timeout=10))
    assert result["ok"] is True
    assert grid.plan is not None and grid.plan["at"] is not None  # it did crash
    reference = run_market(parties, GaussianNB(), validation, duplicates="ignore")
    np.testing.assert_allclose(
        [line["payout"] for line in result["settlement"]["parties"]],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )
    assert restarted.log and restarted.log[-1]["kind"] == kind  # the request sent again


def test_an_agent_that_does_not_return_fails_naming_it_after_the_timeout() -> None:
    parties, _ = _parties()
    grid = _grid(parties)
    grid.crash("party_2", "statistics", returning=None)
    started = time.monotonic()
    with pytest.raises(
        AgentError, match=r"'party_2': disconnected .* did not return within 0\.5 s"
    ):
        _run(grid, _job(parties, timeout=0.5))
    assert time.monotonic() - started >= 0.5  # it did wait


def test_an_agent_announced_unavailable_is_waited_for_from_then() -> None:
    """Flower says NODE_UNAVAILABLE only after missed heartbeats; the round then waits a
    whole timeout for the agent to return (here it does not)."""
    parties, _ = _parties()
    grid = _grid(parties)
    grid.crash("party_1", "moments", returning=None, announce=True)
    with pytest.raises(AgentError, match=r"'party_1': disconnected \(Node Unavailable\)"):
        _run(grid, _job(parties, timeout=0.3))


def test_a_returning_agent_with_other_columns_is_refused_by_name() -> None:
    parties, _ = _parties()
    grid = _grid(parties)
    p1 = parties[1]
    reordered = Party(p1.name, p1.X[:, ::-1], p1.y, feature_names=COLUMNS[::-1])
    grid.crash("party_1", "statistics", returning=Agent(reordered))
    with pytest.raises(AgentError, match=r"'party_1': returned with feature columns") as caught:
        _run(grid, _job(parties, timeout=10))
    assert caught.value.party == "party_1"


def test_a_node_that_cannot_prove_the_party_does_not_take_its_place() -> None:
    """A node claiming a lost party's name without its key is ignored: the round
    fails naming the party rather than send its request to an impostor."""
    parties, _ = _parties()
    grid = _grid(parties)
    impostor = Agent(parties[2])
    grid.crash("party_2", "statistics", returning=impostor)
    grid.forged.add(id(impostor))
    with pytest.raises(AgentError, match=r"'party_2': disconnected"):
        _run(grid, _job(parties, timeout=0.5))
    assert not impostor.log  # it was greeted (hello is not logged) and sent nothing


def test_an_agent_back_on_the_same_node_gets_the_request_again() -> None:
    """A SuperNode that lost its connection and came back keeps its node id: the
    request the SuperLink dropped is sent to it again."""
    parties, validation = _parties()
    grid = _grid(parties)
    back = Agent(parties[2])
    grid.crash("party_2", "statistics", returning=back, announce=True, same_node=True)
    result = _run(grid, _job(parties, timeout=10))
    reference = run_market(parties, GaussianNB(), validation, duplicates="ignore")
    np.testing.assert_allclose(
        [line["payout"] for line in result["settlement"]["parties"]],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )
    assert [e["kind"] for e in back.log] == ["statistics"]


class FlappingGrid(RestartingGrid):
    """``party_2``'s node stays on the node list but the SuperLink answers every request
    to it with ``NODE_UNAVAILABLE`` (a node that keeps reconnecting and dropping them)."""

    def reply(self, node: int, message: Message) -> RecordDict | None:
        agent = self.nodes[node]
        if agent.name == "party_2" and decode(message.content).get("kind") == "statistics":
            self._unavailable(message)
            return None
        return super().reply(node, message)


def test_a_node_that_keeps_dropping_its_requests_fails_the_round_naming_it() -> None:
    """Each return of a lost agent restarts its wait: without a bound, a node that
    is listed as online but drops every request would keep the round running for ever
    (the round's ``timeout`` is an hour here; the round ends within seconds)."""
    parties, _ = _parties()
    grid = FlappingGrid([Agent(p) for p in parties], {p.name: f"key-of-{p.name}" for p in parties})
    started = time.monotonic()
    with pytest.raises(AgentError, match=rf"'party_2': its request was sent {flower.RESENDS} "):
        _run(grid, _job(parties, timeout=3600))
    assert time.monotonic() - started < 60
    assert len([m for m in grid.dropped.values()]) == flower.RESENDS + 1


def test_run_job_gives_up_on_a_server_app_whose_heartbeat_stopped(tmp_path: Any) -> None:
    """A ServerApp that died without writing its result (Flower ends a run it stops
    counting as running with a BaseException) is noticed by its stale heartbeat; a beat
    file that cannot be read for a moment (or is empty) is no sign of anything."""
    beat = tmp_path / "round.beat"
    check = flower._check_beat
    now = time.time()
    assert check(beat, waited=1.0, silence=5.0, last=None) is None  # not started yet
    with pytest.raises(flower.RunLost, match="did not start within 5 s"):
        check(beat, waited=6.0, silence=5.0, last=None)
    beat.write_text(str(now - 2))
    assert check(beat, waited=60.0, silence=5.0, last=None) == now - 2  # running
    beat.write_text("")  # read mid-write: the last beat seen still counts
    assert check(beat, waited=60.0, silence=5.0, last=now - 2) == now - 2
    beat.unlink()
    assert check(beat, waited=600.0, silence=5.0, last=now - 2) == now - 2
    beat.write_text(str(now - 10))
    with pytest.raises(flower.RunLost, match="no heartbeat for 5 s"):
        check(beat, waited=60.0, silence=5.0, last=now - 10)
    # the ServerApp's side writes each beat whole (a temporary file, then a rename)
    stop = threading.Event()
    writer = threading.Thread(target=flower._beat, args=(beat, stop))
    writer.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            text = beat.read_text() if beat.exists() else str(now)
            assert float(text) > now - 60
    finally:
        stop.set()
        writer.join()


def test_a_server_app_ended_by_flower_still_writes_why(tmp_path: Any) -> None:
    """Flower ends a run it no longer counts as running with a BaseException: the
    ServerApp writes the failure (the service reads it) before it goes."""
    from flwr.supercore.run import RunNotRunningException

    class Ended(InProcessGrid):
        def get_node_ids(self) -> list[int]:
            raise RunNotRunningException

    job_file = tmp_path / "round.job.json"
    job_file.write_text(
        json.dumps({"names": ["a"], "learner": {}, "output": str(tmp_path / "round.json")})
    )
    with pytest.raises(RunNotRunningException):
        flower.serve_job(Ended([]), job_file)
    result = json.loads((tmp_path / "round.json").read_text())
    assert result["ok"] is False
    assert "RunNotRunningException" in result["error"]
