"""Which parties' agents are connected, on the dashboard and in ``coopml client``
(parties custody; issue 17 item 1)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN, SECRET
from typer.testing import CliRunner

from coopml.service import Settings

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A deployment that takes agents' check-ins (superlink ``auto``), with the
    SuperLink itself not started: these tests need only the check-ins."""
    from coopml.service.custody import SuperLinkSupervisor

    monkeypatch.setattr(SuperLinkSupervisor, "check", lambda self: None)
    return Settings(
        tmp_path / "data",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        superlink="auto",
    )


@pytest.fixture
def market(client: TestClient) -> Iterator[dict[str, str]]:
    """A parties-custody market with alice and bob; only alice's agent has checked in.
    Yields the market's id and the parties' tokens."""
    r = client.post(
        f"{API}/markets",
        json={"name": "hospitals", "task": "classification", "custody": "parties"},
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    market_id = r.json()["id"]
    tokens = {}
    for name in ("alice", "bob"):
        r = client.post(f"{API}/markets/{market_id}/parties", json={"name": name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
    r = client.post(
        f"{API}/markets/{market_id}/agent",
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert r.status_code == 200, r.text
    yield {"id": market_id, **tokens}


def _agent_cells(html: str) -> dict[str, str]:
    """Party name -> its Agent cell, from the market page's parties table."""
    table = html.split('id="parties"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td><span[^>]*>([^<]+)</span></td>", table)
    return dict(rows)


def test_dashboard_shows_which_agents_are_connected(
    client: TestClient, market: dict[str, str]
) -> None:
    r = client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/ui/markets/{market['id']}").text
    assert "<th>Agent</th>" in page
    assert _agent_cells(page) == {"alice": "agent connected", "bob": "no agent"}
    assert 'class="custody-banner" id="custody"' in page and "custody-parties" in page
    assert re.search(r'id="agents-connected">\s*1 of 2\s*<', page)

    # bob sees only his own row: no agent
    client.post("/logout")
    client.cookies.clear()
    r = client.post("/login", data={"token": market["bob"]}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/ui/markets/{market['id']}").text
    assert _agent_cells(page) == {"bob": "no agent"}
    assert "alice" not in page  # never which other parties' agents are connected
    bob = {"Authorization": f"Bearer {market['bob']}"}
    assert client.get(f"{API}/markets/{market['id']}", headers=bob).json()["agents_connected"] == []
    alice = {"Authorization": f"Bearer {market['alice']}"}
    seen = client.get(f"{API}/markets/{market['id']}", headers=alice).json()["agents_connected"]
    assert seen == ["alice"]


def test_operator_custody_market_page_has_no_agent_column(client: TestClient) -> None:
    r = client.post(
        f"{API}/markets", json={"name": "plain", "task": "classification"}, headers=OPERATOR
    )
    market_id = r.json()["id"]
    client.post(f"{API}/markets/{market_id}/parties", json={"name": "carol"}, headers=OPERATOR)
    client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    page = client.get(f"/ui/markets/{market_id}").text
    assert "<th>Agent</th>" not in page and "carol" in page
    assert "agents-connected" not in page


def test_client_shows_which_agents_are_connected(
    client: TestClient, market: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from coopml.cli import app
    from coopml.cli import client as cli_client
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": OPERATOR_TOKEN, "COLUMNS": "250"}
    runner = CliRunner()

    detail = runner.invoke(app, ["client", "market", market["id"]], env=env)
    assert detail.exit_code == 0, detail.output
    assert "custody: parties" in detail.output
    assert "agents connected: 1 of 2" in detail.output
    lines = {line.split()[0]: line for line in detail.output.splitlines() if line.strip()}
    assert "agent connected" in lines["alice"]
    assert "no agent" in lines["bob"] and "agent connected" not in lines["bob"]

    listed = runner.invoke(app, ["client", "markets"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "agents_connected" in listed.output
    (row,) = [line for line in listed.output.splitlines() if market["id"] in line]
    assert "alice" in row and "bob" not in row

    as_json = runner.invoke(app, ["client", "market", market["id"], "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert '"agents_connected": [\n    "alice"\n  ]' in as_json.output
