"""Private agents in a parties-custody round of the service (issue 17, the privacy knob).

The service's round path runs unchanged (the runner, ``run_custody_round``, coopml's
ServerApp body ``_run``, the settlement transaction); Flower's processes are replaced
by a grid that, like the SuperNode, serves **every message with an agent built afresh**
from the party's node config and the run's id (as the ClientApp does in a fresh process),
so a private agent's budget, noise stream and cumulative spend live only in its state
file. The real SuperLink and SuperNodes run in ``test_custody_rounds.py`` (slow).
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.service.conftest import API, OPERATOR_TOKEN, run_jobs

pytest.importorskip("flwr")
from flwr.app import Message, RecordDict
from tests.custody._grid import (
    InProcessGrid,
    agent_config,
    serve_in_process,
    superlink_in_process,
)

from coopml.custody.agent import agent_from_config
from coopml.custody.flower import _append_log, agent_key, answer
from coopml.custody.privacy import gdp_mu
from coopml.service.security import hash_token
from coopml.service.storage.models import SettlementRow

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
EPSILON = {"party_0": 8.0, "party_1": 4.0}  # party_2's agent adds no noise
DELTA = 1e-5


class ProcessGrid(InProcessGrid):
    """What coopml's ServerApp reads of a Flower ``Grid``; node ``100 + i`` is party
    ``i``, whose every message is answered by a new agent from its node config."""

    def __init__(self, configs: list[tuple[dict[str, Any], str]], run_id: int) -> None:
        super().__init__(configs)
        self.run_id = run_id
        self.agents_built = 0

    def reply(self, node: int, message: Message) -> RecordDict:
        node_config, token = self.nodes[node]
        # as coopml's ClientApp does in the process Flower starts for this message
        config = {**node_config, "round": str(self.run_id)}
        agent = agent_from_config(config)
        self.agents_built += 1
        n_logged = len(agent.log)
        content = answer(agent, message.content, agent_key(hash_token(token)))
        if len(agent.log) > n_logged:
            _append_log(config, agent)
        return content


@pytest.fixture
def process_flower(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The service's SuperLink as an in-process grid of per-message agents: fill
    ``configs`` with ``(node config, token)`` pairs; each ``flwr run`` is a new run id."""
    superlink_in_process(client, monkeypatch)
    state: dict[str, Any] = {"configs": [], "grids": []}

    def grid_for(job: dict[str, Any]) -> ProcessGrid:
        grid = ProcessGrid(state["configs"], run_id=7_000_000 + len(state["grids"]))
        state["grids"].append(grid)
        return grid

    serve_in_process(monkeypatch, grid_for)
    return state


def _frames() -> list[dict[str, pd.DataFrame]]:
    """Three parties' standardised rows (a public scale), two classes."""
    rng = np.random.default_rng(5)
    out = []
    for _ in range(3):
        frames = {}
        for role, n in (("train", 80), ("validation", 60)):
            X = rng.normal(size=(n, 3))
            frame = pd.DataFrame(X, columns=["a", "b", "c"])
            frame["outcome"] = (X @ [1.5, -1.0, 0.5] + 0.5 * rng.normal(size=n) > 0).astype(int)
            frames[role] = frame
        out.append(frames)
    return out


def _settle(client: TestClient, market: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = {"learner": {"name": "gaussian_nb", "params": {}}, "tasks": "per_party"}
    r = client.post(f"{API}/markets/{market}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == 202, r.text
    run_jobs(client)
    r = client.get(f"{API}/rounds/{r.json()['id']}", headers=OPERATOR)
    rnd: dict[str, Any] = r.json()
    assert rnd["status"] == "completed", rnd
    ctx = client.app.state.service  # type: ignore[attr-defined]
    with ctx.db.session() as s:
        row = s.scalars(select(SettlementRow).where(SettlementRow.round_id == rnd["id"])).one()
        record: dict[str, Any] = dict(row.record)
    return rnd, record


def test_private_agents_settle_and_the_settlement_records_each_partys_privacy(
    client: TestClient, tmp_path: Path, process_flower: dict[str, Any]
) -> None:
    body = {"name": "private consortium", "task": "classification", "custody": "parties"}
    r = client.post(f"{API}/markets", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    market = r.json()["id"]
    for i, frames in enumerate(_frames()):
        name = f"party_{i}"
        r = client.post(f"{API}/markets/{market}/parties", json={"name": name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        log = str(tmp_path / f"{name}.log")
        config = agent_config(tmp_path, name, frames, target="outcome", features="a,b,c", log=log)
        if name in EPSILON:  # the node config `coopml agent --epsilon ...` writes
            config.update(epsilon=str(EPSILON[name]), delta=str(DELTA), clip="4.0")
            config.update(labels="[0, 1]")
        process_flower["configs"].append((config, r.json()["token"]))

    rnd, record = _settle(client, market)
    grid = process_flower["grids"][-1]
    assert grid.agents_built > 3 * 3  # every message served by an agent built afresh
    # the settlement's provenance, as stored by the service, names each party's (ε, δ)
    privacy = record["provenance"]["privacy"]
    assert sorted(privacy) == ["party_0", "party_1", "party_2"]
    assert privacy["party_2"] is None  # its agent added no noise
    for name, epsilon in EPSILON.items():
        assert privacy[name]["epsilon"] == epsilon and privacy[name]["delta"] == DELTA
        assert privacy[name]["clip"] == 4.0 and privacy[name]["mechanism"] == "gaussian"
        assert privacy[name]["mu"] == pytest.approx(gdp_mu(epsilon, DELTA), rel=1e-9)
    lines = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR).json()["lines"]
    assert {line["name"] for line in lines} == {"party_0", "party_1", "party_2"}
    assert all(np.isfinite(line["payout"]) for line in lines)

    # each private party's state file: the round under its run id, the whole budget
    for name, epsilon in EPSILON.items():
        path = tmp_path / f"{name}.privacy.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = json.loads(path.read_text())
        assert list(saved["rounds"]) == [str(grid.run_id)]
        assert saved["rounds"][str(grid.run_id)]["spent"] == 4  # a classification round
        assert saved["total"]["rounds"] == 1
        assert saved["total"]["epsilon"] == pytest.approx(epsilon, rel=1e-6)
        logged = [json.loads(x) for x in (tmp_path / f"{name}.log").read_text().splitlines()]
        assert {x["kind"] for x in logged} == {"moments", "statistics", "score"}
        assert all(x["privacy"]["round"] == str(grid.run_id) for x in logged)
    assert "privacy" not in json.loads((tmp_path / "party_2.log").read_text().splitlines()[0])

    # a second round (a new run id): a new budget, and the spend over rounds composes
    _, second = _settle(client, market)
    assert second["provenance"]["privacy"]["party_1"]["epsilon"] == EPSILON["party_1"]
    for name, epsilon in EPSILON.items():
        saved = json.loads((tmp_path / f"{name}.privacy.json").read_text())
        assert len(saved["rounds"]) == 2 and saved["total"]["rounds"] == 2
        assert epsilon < saved["total"]["epsilon"] < 2 * epsilon
        last = json.loads((tmp_path / f"{name}.log").read_text().splitlines()[-1])
        assert last["privacy"]["total"]["rounds"] == 2


def test_coopml_agent_checks_the_privacy_options_and_hands_them_to_its_supernode(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``coopml agent`` against the in-process service: the options checked against the
    market, then carried in ``--node-config`` as Flower parses it, to the agent the
    ClientApp builds."""
    from flwr.common.config import parse_config_args
    from typer.testing import CliRunner

    import coopml.cli.agent as cli_agent
    from coopml.cli import app
    from coopml.custody.privacy import GaussianMechanism
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        "coopml.cli.client.make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    started: list[list[str]] = []

    class SuperNode:  # the flower-supernode process, not started here (exits at once)
        pid = None  # nothing to signal

        def __init__(self, command: list[str], **_: Any) -> None:
            started.append(command)

        def poll(self) -> int:
            return 0

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(cli_agent.subprocess, "Popen", SuperNode)
    body = {"name": "m", "task": "classification", "custody": "parties"}
    market = client.post(f"{API}/markets", json=body, headers=OPERATOR).json()["id"]
    r = client.post(f"{API}/markets/{market}/parties", json={"name": "alice"}, headers=OPERATOR)
    token = r.json()["token"]
    train = tmp_path / "alice.csv"
    _frames()[0]["train"].to_csv(train, index=False)
    log = tmp_path / "state" / "alice.log"
    log.parent.mkdir()
    base = ["agent", "--url", "http://testserver", "--token", token, "--market", market]
    base += ["--train", str(train), "--target", "outcome", "--log", str(log)]
    private = ["--epsilon", "1", "--delta", "1e-5", "--clip", "3"]
    runner = CliRunner()
    result = runner.invoke(app, [*base, *private, "--check-only"])
    assert result.exit_code == 2, result.output
    assert "--labels is needed: the market's schema declares no classes" in " ".join(
        result.output.split()
    )
    result = runner.invoke(app, [*base, *private, "--labels", "0,1", "--target-clip", "2"])
    assert result.exit_code == 2 and "--target-clip is for regression markets" in result.output
    assert not started
    result = runner.invoke(app, [*base, *private, "--labels", "0,1", "--superlink", "127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    assert "no privacy budget spent yet" in " ".join(result.output.split())
    (command,) = started
    node_config = parse_config_args([command[command.index("--node-config") + 1]])
    assert node_config["epsilon"] == "1.0" and node_config["labels"] == "[0, 1]"
    assert node_config["privacy_state"] == str(log.with_suffix(".privacy.json"))
    agent = agent_from_config({**node_config, "round": "17"})  # as the ClientApp does
    assert agent.privacy == GaussianMechanism(1.0, 1e-5, clip=3.0, labels=[0, 1])
    agent.handle({"kind": "moments", "task": "classification"})
    saved = json.loads(log.with_suffix(".privacy.json").read_text())
    assert list(saved["rounds"]) == ["17"] and saved["total"]["rounds"] == 1
