"""``coopml agent`` supervises its SuperNode (issue 17): it restarts the SuperNode when
the service's SuperLink restarts (a new incarnation id in the check-in's answer) or
when the SuperNode exits, with a capped backoff, and stops it, with its process group,
on Ctrl-C or SIGTERM. The loop is driven here with fake processes, a fake check-in and a
fake clock; the process group and the signals with real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from coopml.cli.agent import SuperNodeProcess, supervise_node


class FakeNode:
    """A SuperNode that exits with ``code`` after ``lives`` polls (never: None)."""

    def __init__(self, lives: int | None = None, code: int = 1) -> None:
        self.lives, self.code, self.polls, self.stops = lives, code, 0, 0

    def poll(self) -> int | None:
        self.polls += 1
        return self.code if self.lives is not None and self.polls > self.lives else None

    def stop(self) -> None:
        self.stops += 1


class Harness:
    """Fake time: ``sleep`` advances the clock and records every wait; after
    ``until`` seconds of it, a KeyboardInterrupt (Ctrl-C) is raised from ``sleep``."""

    def __init__(self, nodes: list[FakeNode], until: float = 1_000.0) -> None:
        self.nodes, self.started = list(nodes), list[FakeNode]()
        self.now, self.until = 0.0, until
        self.sleeps: list[float] = []
        self.lines: list[str] = []
        self.said_at: list[float] = []

    def start(self) -> FakeNode:
        node = self.nodes.pop(0) if self.nodes else FakeNode()
        self.started.append(node)
        return node

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.now >= self.until:
            raise KeyboardInterrupt

    def say(self, line: str) -> None:
        self.lines.append(line)
        self.said_at.append(self.now)

    def run(self, check_in: Any = None, **kwargs: Any) -> None:
        options: dict[str, Any] = {"check_in_seconds": 20.0, "poll_seconds": 0.5}
        supervise_node(
            self.start,
            check_in,
            say=self.say,
            sleep=self.sleep,
            clock=lambda: self.now,
            **{**options, **kwargs},
        )

    @property
    def delays(self) -> list[float]:
        """The waits before restarts (every other wait is a poll's 0.5 s)."""
        return [s for s in self.sleeps if s != 0.5]


def test_a_new_superlink_incarnation_restarts_the_supernode() -> None:
    answers = iter(["inc-1", "inc-1", "inc-2"])
    h = Harness([FakeNode(), FakeNode()], until=100.0)
    h.run(lambda: next(answers, "inc-2"), incarnation="inc-1")
    assert len(h.started) == 2
    first, second = h.started
    assert first.stops == 1 and second.stops == 1  # the old one stopped; the new one at ^C
    assert h.lines[0] == (
        "restarting the SuperNode in 1 s: the service's SuperLink restarted "
        "(a new incarnation, inc-2)"
    )
    assert h.lines[-1] == "stopped"
    assert h.delays == [1.0]
    assert h.said_at[0] == 60.0  # the third check-in (20, 40, 60 s) saw inc-2


def test_the_same_incarnation_or_an_unknown_one_restarts_nothing() -> None:
    for answer in ("inc-1", None):
        h = Harness([FakeNode()], until=200.0)
        h.run(lambda answer=answer: answer, incarnation="inc-1")
        assert len(h.started) == 1 and h.lines == ["stopped"]


def test_a_check_in_that_fails_is_said_once_and_restarts_nothing() -> None:
    calls = []

    def check_in() -> str:
        calls.append(1)
        raise ConnectionError("connection refused")

    h = Harness([FakeNode()], until=100.0)
    h.run(check_in, incarnation="inc-1")
    assert len(calls) == 16  # at 20 s, then every 5 s: 25, 30, ..., 95
    assert h.lines == ["could not check in (connection refused); trying every 5 s", "stopped"]
    assert len(h.started) == 1


def test_a_service_back_after_an_outage_is_seen_within_the_retry_interval() -> None:
    """While the service does not answer, the agent checks in every 5 s: its new
    SuperLink is seen within 5 s of the service's return, not 20."""
    h = Harness([FakeNode(), FakeNode()], until=100.0)

    def check_in() -> str:
        if h.now < 42.0:  # down from before the first check-in until 42 s
            raise ConnectionError("connection refused")
        return "inc-2"

    h.run(check_in, incarnation="inc-1")
    assert len(h.started) == 2
    assert h.said_at[1] == 45.0  # 20, 25, ..., 40 failed; 45 saw inc-2
    assert "the service's SuperLink restarted (a new incarnation, inc-2)" in h.lines[1]


def test_an_unexpected_exit_restarts_the_supernode() -> None:
    h = Harness([FakeNode(lives=3, code=-9), FakeNode()], until=30.0)
    h.run(None)
    assert len(h.started) == 2
    assert h.lines == ["restarting the SuperNode in 1 s: it exited with code -9", "stopped"]


def test_a_node_restarted_after_an_exit_registers_with_the_current_superlink() -> None:
    """The SuperNode died because the SuperLink restarted: the restart checks in first,
    so the new node's incarnation is the new one and the next check-in restarts
    nothing."""
    h = Harness([FakeNode(lives=3), FakeNode()], until=100.0)
    h.run(lambda: "inc-2", incarnation="inc-1")
    assert len(h.started) == 2
    assert h.lines == ["restarting the SuperNode in 1 s: it exited with code 1", "stopped"]


def test_ctrl_c_stops_the_supernode_and_restarts_nothing() -> None:
    h = Harness([FakeNode(lives=None)], until=2.0)
    h.run(lambda: "inc-2", incarnation="inc-1")  # interrupted before any check-in
    assert len(h.started) == 1 and h.started[0].stops == 1
    assert h.lines == ["stopped"]


def test_ctrl_c_during_the_backoff_starts_no_new_supernode() -> None:
    h = Harness([FakeNode(lives=0)], until=1.2)  # exits at once; ^C while waiting 1 s
    h.run(None)
    assert len(h.started) == 1 and h.started[0].stops >= 1
    assert h.lines == ["restarting the SuperNode in 1 s: it exited with code 1", "stopped"]


def test_the_backoff_doubles_while_nodes_die_young_and_is_capped() -> None:
    h = Harness([FakeNode(lives=0) for _ in range(8)], until=300.0)
    h.run(None, first_delay=1.0, max_delay=10.0)
    assert h.delays[:8] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert max(h.delays) == 10.0


def test_a_node_that_ran_long_enough_resets_the_backoff() -> None:
    nodes = [FakeNode(lives=0), FakeNode(lives=0), FakeNode(lives=200), FakeNode(lives=0)]
    h = Harness(nodes, until=400.0)
    h.run(None, stable_seconds=60.0)
    # 1, 2; then the third ran 100 s (>= 60): 1 again; the fourth died young: 2
    assert h.delays[:4] == [1.0, 2.0, 1.0, 2.0]


def _descendants_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_stop_ends_the_supernodes_whole_process_group(tmp_path: Path) -> None:
    """A child the SuperNode started (as Flower's SuperExec and ClientApps are) is
    stopped with it; a child ignoring SIGTERM is killed after the grace period."""
    pids = tmp_path / "pids"
    script = f"trap '' TERM; sleep 60 & echo $! > {pids}; wait"
    node = SuperNodeProcess(["sh", "-c", script], dict(os.environ), grace=1.0)
    deadline = time.monotonic() + 10
    while not pids.exists() or not pids.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pids.read_text())
    assert os.getpgid(node.process.pid) == node.process.pid != os.getpgid(0)
    assert node.poll() is None
    node.stop()
    assert node.poll() is not None
    deadline = time.monotonic() + 5
    while _descendants_alive([child]):
        assert time.monotonic() < deadline, "the SuperNode's child outlived it"
        time.sleep(0.05)
    node.stop()  # idempotent


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_the_agent_and_its_supernode(tmp_path: Path, sig: int) -> None:
    """The agent's loop in a process of its own, with a real SuperNode stand-in: a
    SIGTERM (or SIGINT) to the agent stops the stand-in's group; nothing is orphaned."""
    pids = tmp_path / "pids"
    program = textwrap.dedent(
        f"""
        import os, sys
        from coopml.cli.agent import SuperNodeProcess, _stop_signals, supervise_node
        def start():
            node = SuperNodeProcess(["sh", "-c", "sleep 60 & echo $! > {pids}; wait"],
                                    dict(os.environ), grace=2.0)
            return node
        with _stop_signals():
            supervise_node(start, None, poll_seconds=0.1, say=print)
        print("exited", flush=True)
        """
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not pids.exists() or not pids.read_text().strip():
            assert time.monotonic() < deadline and agent.poll() is None
            time.sleep(0.05)
        child = int(pids.read_text())
        agent.send_signal(sig)
        out, _ = agent.communicate(timeout=20)
        assert agent.returncode == 0, out
        assert out.split() == ["stopped", "exited"]
        deadline = time.monotonic() + 5
        while _descendants_alive([child]):
            assert time.monotonic() < deadline, "the SuperNode's child was orphaned"
            time.sleep(0.05)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def test_the_check_in_carries_the_superlinks_incarnation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each (re)start of the SuperLink draws a new incarnation id, which every check-in
    returns; none before the SuperLink ever ran."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app
    from coopml.service.custody import SuperLinkSupervisor, custody_dir

    settings = Settings(
        tmp_path / "data",
        secret_key=bytes(range(32)),
        operator_token="operator",
        embedded_worker=False,
        superlink="auto",
    )
    operator = {"Authorization": "Bearer operator"}
    custody_dir(settings).mkdir(parents=True)  # the Deployment's, which is faked here

    class Dead:
        """A deployment whose SuperLink is never alive: every check restarts it."""

        def __init__(self) -> None:
            self.processes = {"superlink": type("P", (), {"pid": os.getpid()})()}

        def alive(self) -> bool:
            return False

        def start(self) -> None:
            pass

        def close(self) -> None:
            pass

    original = SuperLinkSupervisor.check
    monkeypatch.setattr(SuperLinkSupervisor, "check", lambda self: None)  # not the lifespan's
    app = create_app(settings)
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/markets",
            json={"name": "m", "task": "classification", "custody": "parties"},
            headers=operator,
        )
        market = r.json()["id"]
        r = client.post(
            f"/api/v1/markets/{market}/parties", json={"name": "alice"}, headers=operator
        )
        alice = {"Authorization": f"Bearer {r.json()['token']}"}

        def check_in() -> Any:
            r = client.post(f"/api/v1/markets/{market}/agent", headers=alice)
            assert r.status_code == 200, r.text
            return r.json()["superlink_incarnation"]

        assert check_in() is None  # no SuperLink has run
        supervisor = SuperLinkSupervisor(app.state.service)
        supervisor.deployment = Dead()
        seen = []
        for _ in range(2):
            original(supervisor)
            seen.append(check_in())
            assert seen[-1] == supervisor.incarnation
        assert seen[0] != seen[1] and all(len(s) == 16 for s in seen)
        supervisor.stop()
        assert check_in() is None  # stopped: no SuperLink


def test_coopml_agent_restarts_its_supernode_with_the_same_private_node_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``coopml agent --epsilon ...`` against an in-process service: its SuperNode exits
    with an error, the agent starts another on a new ClientAppIo port with the same node
    config (privacy settings and state file included); one that exits with 0 ends it."""
    pytest.importorskip("fastapi")
    pd = pytest.importorskip("pandas")
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    import coopml.cli.agent as cli_agent
    from coopml.cli import app as cli_app
    from coopml.service import Settings, create_app
    from coopml.service.client import CoopmlClient
    from coopml.service.custody import SuperLinkSupervisor

    monkeypatch.setattr(SuperLinkSupervisor, "check", lambda self: None)
    settings = Settings(
        tmp_path / "data",
        secret_key=bytes(range(32)),
        operator_token="operator",
        embedded_worker=False,
        superlink="auto",
    )
    operator = {"Authorization": "Bearer operator"}
    commands: list[list[str]] = []
    codes = iter([3, 0])  # a crash (here: Flower's SIGTERM exit), then a clean end

    class Node:
        def __init__(self, command: list[str], env: dict[str, str]) -> None:
            commands.append(command)
            self.code = next(codes)

        def poll(self) -> int:
            return self.code

        def stop(self) -> None:
            pass

    ports = iter(range(40_001, 40_010))
    monkeypatch.setattr(cli_agent, "SuperNodeProcess", Node)
    monkeypatch.setattr("coopml.custody.deployment.free_port", lambda: next(ports))
    with TestClient(create_app(settings)) as client:
        monkeypatch.setattr(
            "coopml.cli.client.make_client",
            lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
        )
        body = {"name": "m", "task": "classification", "custody": "parties"}
        market = client.post("/api/v1/markets", json=body, headers=operator).json()["id"]
        r = client.post(
            f"/api/v1/markets/{market}/parties", json={"name": "alice"}, headers=operator
        )
        token = r.json()["token"]
        train = tmp_path / "alice.csv"
        pd.DataFrame({"a": [0.1, 0.2, 0.3, 0.4], "outcome": [0, 1, 0, 1]}).to_csv(
            train, index=False
        )
        log = tmp_path / "alice.log"
        command = ["agent", "--url", "http://testserver", "--token", token, "--market", market]
        command += ["--train", str(train), "--target", "outcome", "--log", str(log)]
        command += ["--epsilon", "1", "--delta", "1e-5", "--clip", "3", "--labels", "0,1"]
        result = CliRunner().invoke(cli_app, command, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "party alice: restarting the SuperNode in 1 s: it exited with code 3" in output
    assert "party alice: the SuperNode exited (code 0); stopping" in output
    first, second = commands
    port = first.index("--clientappio-api-address") + 1
    assert (first[port], second[port]) == ("127.0.0.1:40001", "127.0.0.1:40002")
    config = first.index("--node-config") + 1
    assert second[config] == first[config]
    assert 'epsilon="1.0"' in first[config] and 'labels="[0, 1]"' in first[config]
    assert f'privacy_state="{log.with_suffix(".privacy.json")}"' in first[config]
    assert [c for i, c in enumerate(first) if i not in (port, config)] == [
        c for i, c in enumerate(second) if i not in (port, config)
    ]
