"""Faults of parties-custody rounds through the service (issue 17 item 6), fast: the
round runs through the job runner, ``run_custody_round`` and coopml's ServerApp logic
(:func:`coopml.custody.flower._run`), with the agents behind a stand-in grid instead of
Flower processes (``tests/custody/test_transport_faults.py``). A bad or lost agent fails
the round naming the party, with nothing settled; a restarted one is found again and
the round settles as an undisturbed one. Agents' check-ins live in the database.

The same over real processes (an agent killed and restarted, the service SIGKILLed
mid-round): ``tests/service/test_custody_faults_slow.py``.
"""

from __future__ import annotations

import datetime
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.service.conftest import API, OPERATOR_TOKEN, SECRET, assert_ledger_balanced

from coopml.custody import Agent
from coopml.market import run_market
from coopml.service import Settings, create_app
from coopml.service.jobs.worker import run_worker
from coopml.service.storage.models import AgentCheckIn, LedgerEntry, SettlementRow

pytest.importorskip("flwr")
from sklearn.naive_bayes import GaussianNB
from tests.custody._grid import serve_in_process
from tests.custody.test_protocol import (
    Tampering,
    _bad_label_counts,
    _more_counts,
    _nan_sums,
    _short_sums,
)
from tests.custody.test_transport_faults import RestartingGrid, _parties

from coopml.custody import flower
from coopml.custody.flower import agent_key
from coopml.service.custody import (
    CONNECTED_SECONDS,
    PID_FILE,
    _write_incarnation,
    check_in,
    connected_agents,
    custody_dir,
    reap_orphaned_superlink,
)
from coopml.service.security import hash_token

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A deployment whose SuperLink is not started (the grid stands in for it)."""
    from coopml.service.custody import SuperLinkSupervisor

    monkeypatch.setattr(SuperLinkSupervisor, "check", lambda self: None)
    monkeypatch.setattr(flower, "LOOK", 0.01)
    monkeypatch.setattr(flower, "POLL", 0.001)
    settings = Settings(
        tmp_path / "data",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        superlink="auto",
        agent_timeout=1.0,
    )
    home = custody_dir(settings) / "flwr-home"
    home.mkdir(parents=True)
    (home / "config.toml").write_text("# the service's SuperLink connection\n")
    _write_incarnation(custody_dir(settings), "in-process")  # a SuperLink "runs"
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.state.service.db.dispose()


@pytest.fixture
def market(client: TestClient) -> dict[str, Any]:
    """A parties-custody market of the three parties of the transport tests."""
    r = client.post(
        f"{API}/markets",
        json={"name": "hospitals", "task": "classification", "custody": "parties"},
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    market_id = r.json()["id"]
    parties, validation = _parties()
    keys = {}
    for p in parties:
        body = {"name": p.name}
        r = client.post(f"{API}/markets/{market_id}/parties", json=body, headers=OPERATOR)
        assert r.status_code == 201, r.text
        keys[p.name] = agent_key(hash_token(r.json()["token"]))
    return {"id": market_id, "parties": parties, "validation": validation, "keys": keys}


def _serve(monkeypatch: pytest.MonkeyPatch, grid: RestartingGrid) -> None:
    """``flwr run`` of the ServerApp, in process: every job over ``grid``."""
    serve_in_process(monkeypatch, lambda job: grid)


def _round(client: TestClient, market: dict[str, Any], learner: str = "gaussian_nb") -> dict:
    body = {"learner": {"name": learner}, "tasks": "single", "validation_party": "party_0"}
    r = client.post(f"{API}/markets/{market['id']}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == 202, r.text
    assert run_worker(client.app.state.service, once=True) == 1  # type: ignore[attr-defined]
    r = client.get(f"{API}/rounds/{r.json()['id']}", headers=OPERATOR)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _nothing_settled(client: TestClient, round_id: str) -> None:
    with client.app.state.service.db.session() as s:  # type: ignore[attr-defined]
        assert s.scalar(select(func.count()).select_from(SettlementRow)) == 0
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    r = client.get(f"{API}/rounds/{round_id}/settlement", headers=OPERATOR)
    assert r.status_code in (404, 409), r.text


def _negative_hessian(r: dict[str, Any]) -> None:
    if "hess" in r:
        r["hess"] = -r["hess"]


def _nan_hessian(r: dict[str, Any]) -> None:
    if "hess" in r:
        r["hess"] = r["hess"] * np.nan


BAD: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("gaussian_nb", "statistics", _nan_sums, "non-finite"),
    ("gaussian_nb", "statistics", _short_sums, "of shape"),
    ("gaussian_nb", "statistics", _more_counts, "do not match the counts"),
    ("gaussian_nb", "moments", _bad_label_counts, "adding up to"),
    ("logistic_regression", "newton", _nan_hessian, "non-finite"),
    ("logistic_regression", "newton", _negative_hessian, "not positive semi-definite"),
]


@pytest.mark.parametrize(
    ("learner", "kind", "corrupt", "message"),
    BAD,
    ids=["nan", "shape", "counts", "label-counts", "nan-hessian", "indefinite-hessian"],
)
def test_a_bad_agent_fails_the_service_round_naming_it_and_nothing_is_settled(
    client: TestClient,
    market: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    learner: str,
    kind: str,
    corrupt: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    parties = market["parties"]
    agents = [Agent(parties[0]), Tampering(parties[1], kind, corrupt), Agent(parties[2])]
    _serve(monkeypatch, RestartingGrid(agents, market["keys"]))
    rnd = _round(client, market, learner)
    assert rnd["status"] == "failed", rnd
    assert "party 'party_1'" in rnd["message"] and message in rnd["message"], rnd["message"]
    assert "not settled" in rnd["message"]
    _nothing_settled(client, rnd["id"])


def test_an_agent_that_does_not_return_fails_the_round_naming_it(
    client: TestClient, market: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = RestartingGrid([Agent(p) for p in market["parties"]], market["keys"])
    grid.crash("party_2", "statistics", returning=None)
    _serve(monkeypatch, grid)
    rnd = _round(client, market)
    assert rnd["status"] == "failed", rnd
    assert "'party_2': disconnected" in rnd["message"], rnd["message"]
    assert "did not return within 1 s" in rnd["message"]  # COOPML_AGENT_TIMEOUT
    _nothing_settled(client, rnd["id"])


def test_a_restarted_agent_resumes_the_round_which_settles_as_undisturbed(
    client: TestClient, market: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    parties = market["parties"]
    grid = RestartingGrid([Agent(p) for p in parties], market["keys"])
    restarted = Agent(parties[1])
    grid.crash("party_1", "statistics", returning=restarted)
    _serve(monkeypatch, grid)
    rnd = _round(client, market)
    assert rnd["status"] == "completed", rnd
    record = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR).json()
    payouts = {line["name"]: line["payout"] for line in record["lines"]}
    reference = run_market(parties, GaussianNB(), market["validation"], duplicates="ignore")
    np.testing.assert_allclose(
        [payouts[p.name] for p in reference.settlement.parties],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )
    assert [e["kind"] for e in restarted.log] == ["statistics"]  # sent again, answered
    assert_ledger_balanced(client, rnd["id"], OPERATOR)


def test_logistic_regression_resumes_mid_newton(
    client: TestClient, market: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The federated Newton method's pending iterate is sent again to the restarted
    agent: the round settles as the operator-custody round."""
    parties = market["parties"]
    grid = RestartingGrid([Agent(p) for p in parties], market["keys"])
    grid.crash("party_2", "newton", returning=Agent(parties[2]))
    _serve(monkeypatch, grid)
    rnd = _round(client, market, "logistic_regression")
    assert rnd["status"] == "completed", rnd
    record = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR).json()
    payouts = {line["name"]: line["payout"] for line in record["lines"]}
    from coopml.service.learners import build_learner

    learner = build_learner({"name": "logistic_regression", "params": {}}, "classification")
    reference = run_market(parties, learner, market["validation"], duplicates="ignore")
    np.testing.assert_allclose(
        [payouts[p.name] for p in reference.settlement.parties],
        [p.payout for p in reference.settlement.parties],
        atol=1e-6,
    )


# ------------------------------------------------------------------ check-ins (0008)
def test_check_ins_are_rows_every_process_sees(
    settings: Settings, client: TestClient, market: dict[str, Any]
) -> None:
    """An agent's check-in is a database row: a second service on the same database
    (a ``coopml worker`` elsewhere, the dashboard of a restarted server) sees it, and
    a party sees only its own agent."""
    tokens = {}
    for name in ("dora", "erin"):
        r = client.post(
            f"{API}/markets/{market['id']}/parties", json={"name": name}, headers=OPERATOR
        )
        tokens[name] = r.json()["token"]
    r = client.post(
        f"{API}/markets/{market['id']}/agent",
        headers={"Authorization": f"Bearer {tokens['dora']}"},
    )
    assert r.status_code == 200, r.text
    other = create_app(settings)  # another process of the deployment: same database only
    with TestClient(other) as second:
        seen = second.get(f"{API}/markets/{market['id']}", headers=OPERATOR).json()
        assert seen["agents_connected"] == ["dora"]
        erin = {"Authorization": f"Bearer {tokens['erin']}"}
        assert (
            second.get(f"{API}/markets/{market['id']}", headers=erin).json()["agents_connected"]
            == []
        )
    other.state.service.db.dispose()
    with client.app.state.service.db.session() as s:  # type: ignore[attr-defined]
        (row,) = s.scalars(select(AgentCheckIn)).all()
        assert (row.market_id, row.party) == (market["id"], "dora")
        later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(
            seconds=CONNECTED_SECONDS + 1
        )
        assert connected_agents(s, market["id"], now=later) == []  # gone quiet
        check_in(s, market["id"], "dora", now=later)  # checks in again: one row, updated
        assert connected_agents(s, market["id"], now=later) == ["dora"]
        assert s.scalar(select(func.count()).select_from(AgentCheckIn)) == 1


def test_migration_0008_creates_and_drops_the_check_ins(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from coopml.service.storage.database import alembic_config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0007")
        assert "agent_checkins" not in inspect(conn).get_table_names()
        command.upgrade(cfg, "0008")
        table = inspect(conn)
        assert "agent_checkins" in table.get_table_names()
        assert table.get_pk_constraint("agent_checkins")["constrained_columns"] == [
            "market_id",
            "party",
        ]
        command.downgrade(cfg, "0007")
        assert "agent_checkins" not in inspect(conn).get_table_names()
        conn.commit()
    engine.dispose()


# ------------------------------------------------------- a SuperLink left behind
def _sleeper(*tag: str) -> subprocess.Popen[bytes]:
    """A process whose command line carries ``tag`` (its own session, as Deployment's)."""
    code = "import time; time.sleep(120)"
    return subprocess.Popen([sys.executable, "-c", code, *tag], start_new_session=True)


def test_a_restarted_service_kills_the_superlink_its_killed_predecessor_left(
    tmp_path: Path,
) -> None:
    superlink = _sleeper("flower-superlink")
    dead_service = _sleeper("coopml", "serve")
    try:
        dead_service.kill()
        dead_service.wait(10)
        (tmp_path / PID_FILE).write_text(f"{superlink.pid} {dead_service.pid}")
        assert reap_orphaned_superlink(tmp_path)
        assert superlink.wait(10) == -signal.SIGKILL
        assert not (tmp_path / PID_FILE).exists()
    finally:
        superlink.kill()
        superlink.wait(10)


def test_a_live_service_superlink_and_a_stranger_are_left_alone(tmp_path: Path) -> None:
    superlink = _sleeper("flower-superlink")
    service = _sleeper("coopml", "serve")  # still running: a second server, say
    stranger = _sleeper("not-a-superlink")
    try:
        (tmp_path / PID_FILE).write_text(f"{superlink.pid} {service.pid}")
        assert not reap_orphaned_superlink(tmp_path)
        (tmp_path / PID_FILE).write_text(f"{stranger.pid} 999999999")  # a reused pid
        assert not reap_orphaned_superlink(tmp_path)
        assert superlink.poll() is None and stranger.poll() is None
    finally:
        for process in (superlink, service, stranger):
            process.kill()
            process.wait(10)
