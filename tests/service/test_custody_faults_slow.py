"""Faults of parties-custody rounds over real processes (issue 17 item 6): a real
``coopml serve`` with its own SuperLink and three ``coopml agent`` processes on
loopback, Gaussian naive Bayes on a shared task (the set-up of
``tests/service/test_custody_rounds.py``).

* An agent killed mid-round (its whole process group) and started again gets a new
  Flower node id; the round finds it again by a proven ``hello`` and settles with the
  payouts of an undisturbed round.
* ``coopml serve`` SIGKILLed mid-round, then started again on the same data directory:
  the new service kills the SuperLink the dead one left behind, the round's job is
  claimed again once its lease expires, the agents (not restarted) see the new
  SuperLink's incarnation and restart their SuperNodes, and the round is settled
  exactly once.

Every Flower message starts a ClientApp process (about 10 s a round trip on the shared
test machine): each test takes minutes.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB
from tests.service.test_custody_rounds import BIN, COLUMNS, OPERATOR, _parties, _spawn, _stop

from coopml.data import Party
from coopml.market import run_market

pytest.importorskip("flwr")
from coopml.custody.deployment import free_port
from coopml.service.client import CoopmlClient

pytestmark = pytest.mark.slow


class Deployment:
    """``coopml serve`` and the parties' ``coopml agent`` processes, each restartable."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root, self.data_dir = root, root / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "COOPML_DATA_DIR": str(self.data_dir),
            "COOPML_OPERATOR_TOKEN": OPERATOR,
            "COOPML_FLEET_API_ADDRESS": f"127.0.0.1:{free_port()}",
            "FLWR_TELEMETRY_ENABLED": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
            **env,
        }
        self.server: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.starts = 0
        self.client = CoopmlClient(self.url, OPERATOR)

    def serve(self) -> None:
        self.starts += 1
        command = [str(BIN / "coopml"), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.server = _spawn(command, self.env, self.root / f"serve-{self.starts}.log")
        for _ in range(600):  # up to 3 minutes on a busy CI machine
            try:
                self.client.me()
                return
            except Exception:
                time.sleep(0.3)
        raise AssertionError((self.root / f"serve-{self.starts}.log").read_text()[-3000:])

    def market(self, parties: list[Party]) -> str:
        market = self.client.create_market("consortium", task="classification", custody="parties")
        for p in parties:
            token = self.client.add_party(market["id"], p.name)["token"]
            files = {}
            for kind, (Xp, yp) in {"train": (p.X, p.y), "validation": (p.X_val, p.y_val)}.items():
                frame = pd.DataFrame(Xp, columns=COLUMNS).assign(label=yp)
                files[kind] = self.root / f"{p.name}-{kind}.csv"
                frame.to_csv(files[kind], index=False)
            command = [str(BIN / "coopml"), "agent", "--url", self.url, "--token", token]
            command += ["--market", market["id"], "--train", str(files["train"])]
            command += ["--validation", str(files["validation"]), "--target", "label"]
            command += ["--log", str(self.log(p.name))]
            self.commands[p.name] = command
        return str(market["id"])

    def log(self, party: str) -> Path:
        return self.root / f"{party}.log"

    def answered(self, party: str) -> int:
        """How many requests the party's agents have answered (lines of its log)."""
        path = self.log(party)
        return len(path.read_text().splitlines()) if path.exists() else 0

    def start_agent(self, party: str) -> None:
        n = sum(1 for p in self.root.glob(f"{party}-agent-*.out"))
        out = self.root / f"{party}-agent-{n}.out"
        self.agents[party] = _spawn(self.commands[party], self.env, out)

    def kill_agent(self, party: str) -> None:
        """SIGKILL the agent's session: ``coopml agent`` and its SuperNode's process
        group (the SuperNode and the ClientApp it may be running)."""
        process = self.agents.pop(party)
        for pid in _session(process.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(15)

    def wait_connected(self, market: str, n: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while len(self.client.get_market(market).get("agents_connected", [])) < n:
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.5)

    def wait_answered(self, party: str, at_least: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while self.answered(party) < at_least:
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.2)

    def wait_round(self, round_id: str, timeout: float = 600) -> dict[str, Any]:
        """The finished round; past ``timeout``, every process's log tail."""
        try:
            return self.client.wait_round(round_id, timeout=timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None

    def tail(self) -> str:
        logs = sorted(self.root.glob("*.out")) + sorted(self.root.glob("serve-*.log"))
        logs += sorted(self.data_dir.glob("custody/*.log"))  # the SuperLink's, ServerApps
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)

    def close(self) -> None:
        _stop(*self.agents.values())
        if self.server is not None:
            _stop(self.server)
        # a SuperLink a killed service left behind (the restarted service kills it too)
        pid_file = self.data_dir / "custody" / "superlink.pid"
        if pid_file.exists():
            try:
                os.killpg(int(pid_file.read_text().split()[0]), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path, COOPML_AGENT_TIMEOUT="90", COOPML_LEASE_SECONDS="6")
    try:
        yield d
    finally:
        d.close()


def _reference(parties: list[Party]) -> dict[str, float]:
    shared = (parties[0].X_val, parties[0].y_val)
    reference = run_market(parties, GaussianNB(), shared, duplicates="ignore").settlement
    return {p.name: p.payout for p in reference.parties}


def _assert_payouts(record: dict[str, Any], expected: dict[str, float]) -> None:
    payouts = {line["name"]: line["payout"] for line in record["lines"]}
    names = sorted(expected)
    np.testing.assert_allclose([payouts[n] for n in names], [expected[n] for n in names], atol=1e-6)


def test_an_agent_killed_mid_round_and_restarted_resumes_the_round(
    deployment: Deployment,
) -> None:
    d = deployment
    parties = _parties()
    d.serve()
    market = d.market(parties)
    for p in parties:
        d.start_agent(p.name)
    d.wait_connected(market, 3)
    started = time.monotonic()
    rnd = d.client.open_round(market, "gaussian_nb", tasks="single", validation_party="party_0")
    d.wait_answered("party_1", 1)  # it has answered `moments`: kill it mid-round
    d.kill_agent("party_1")
    killed = time.monotonic()
    before = d.answered("party_1")
    time.sleep(3)
    d.start_agent("party_1")  # a new process, so a new Flower node id
    done = d.wait_round(rnd["id"])
    assert done["status"] == "completed", (done["message"], d.tail())
    print(
        f"round with party_1 killed after {killed - started:.0f} s and restarted: "
        f"{time.monotonic() - started:.0f} s"
    )
    assert d.answered("party_1") > before  # the restarted agent answered the rest
    _assert_payouts(d.client.settlement(rnd["id"]), _reference(parties))
    assert d.client.audit(rnd["id"])["verification"]["ok"]


def test_a_service_sigkilled_mid_round_settles_it_exactly_once(deployment: Deployment) -> None:
    d = deployment
    parties = _parties()
    d.serve()
    market = d.market(parties)
    for p in parties:
        d.start_agent(p.name)
    d.wait_connected(market, 3)
    rnd = d.client.open_round(market, "gaussian_nb", tasks="single", validation_party="party_0")
    d.wait_answered("party_2", 1)  # the round is under way at the agents
    assert d.server is not None
    pid_file = d.data_dir / "custody" / "superlink.pid"
    orphan = int(pid_file.read_text().split()[0])  # the SuperLink's pid, the service's
    d.server.send_signal(signal.SIGKILL)  # the service only: its SuperLink is left behind
    d.server.wait(15)
    assert Path(f"/proc/{orphan}").exists()

    d.serve()  # the same data directory and database
    deadline = time.monotonic() + 60
    while Path(f"/proc/{orphan}").exists() and _state(orphan) != "Z":
        assert time.monotonic() < deadline, "the orphaned SuperLink was not killed"
        time.sleep(0.2)
    # the agents' SuperNodes were registered with the dead SuperLink: each agent sees
    # the new SuperLink's incarnation at its next check-in and restarts its SuperNode
    # (no party restarts its agent)
    agents = dict(d.agents)
    done = d.wait_round(rnd["id"])
    assert done["status"] == "completed", (done["message"], d.tail())
    assert all(agents[p.name].poll() is None for p in parties)  # the same agents
    for p in parties:
        out = (d.root / f"{p.name}-agent-0.out").read_text(errors="replace")
        assert "the service's SuperLink restarted" in " ".join(out.split()), out[-2000:]
    _assert_payouts(d.client.settlement(rnd["id"]), _reference(parties))

    with sqlite3.connect(d.data_dir / "coopml.db") as db:
        (settlements,) = db.execute(
            "SELECT count(*) FROM settlements WHERE round_id = ?", (rnd["id"],)
        ).fetchone()
        (entries,) = db.execute(
            "SELECT count(*) FROM ledger_entries WHERE round_id = ?", (rnd["id"],)
        ).fetchone()
        (attempts,) = db.execute(
            "SELECT attempts FROM jobs WHERE round_id = ?", (rnd["id"],)
        ).fetchone()
    assert settlements == 1
    assert entries == 3 * len(parties)  # fee collected, fee returned, payout
    assert attempts == 2  # the killed service's attempt, then the restarted one's
    assert d.client.audit(rnd["id"])["verification"]["ok"]


def _session(sid: int) -> list[int]:
    """Every process of session ``sid`` (Linux's /proc)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "gone"
