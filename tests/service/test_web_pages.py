"""Dashboard pages over the real app: login by cookie, operator and party visibility,
escaping, and no leaks of other parties' rows."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    MarketHandle,
    make_market_with_parties,
    run_round_to_completion,
)

from coopml.service.web import COOKIE, svg

EVIL = "<script>alert('x')</script>"


def login(client: TestClient, token: str) -> None:
    client.cookies.clear()
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    session_id = client.cookies.get(COOKIE)
    assert session_id and session_id != token  # a session id, never the API token


@pytest.fixture
def settled(client: TestClient) -> tuple[MarketHandle, str, MarketHandle]:
    """A settled three-party round, and a second market the parties must not see."""
    market = make_market_with_parties(
        client, 3, names=["alice", "bob", "carol"], release_policy="aggregate_only"
    )
    rnd = run_round_to_completion(client, market.id)
    other = client.post(
        f"{API}/markets",
        json={"name": "rival_market", "task": "classification", "description": EVIL},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert other.status_code == 201, other.text
    other_market = MarketHandle(other.json()["id"], [], {})
    return market, rnd["id"], other_market


def svgs(page: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg .*?</svg>", page, flags=re.S)]


def test_login_logout_and_bad_token(client: TestClient) -> None:
    assert "Log in" in client.get("/").text
    r = client.post("/login", data={"token": "wrong"}, follow_redirects=False)
    assert r.status_code == 401 and COOKIE not in client.cookies
    login(client, OPERATOR_TOKEN)
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/markets"
    assert client.get("/ui/markets").status_code == 200
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303
    assert COOKIE not in client.cookies
    assert client.get("/ui/markets", follow_redirects=False).status_code == 303


def test_operator_sees_everything(
    client: TestClient, settled: tuple[MarketHandle, str, MarketHandle]
) -> None:
    market, round_id, _other = settled
    login(client, OPERATOR_TOKEN)
    page = client.get("/ui/markets").text
    assert "hospitals" in page and "rival_market" in page
    assert EVIL not in page and "&lt;script&gt;" in page
    page = client.get(f"/ui/markets/{market.id}").text
    for name in ("alice", "bob", "carol"):
        assert f"{name}_train.csv" in page and f"{name}_validation.csv" in page
    assert round_id[:8] in page and "completed" in page
    page = client.get(f"/ui/rounds/{round_id}").text
    assert page.count("<tr data-party=") == 3
    assert "<tfoot>" in page and 'id="audit"' in page
    for heading in ("Balance check", "Verification", "Duplicate data", "Replication findings"):
        assert heading in page
    charts = [c for c in svgs(page) if c.get("class") == "chart"]
    assert len(charts) == 4
    labels = {
        r.get("data-label") for r in charts[0].iter(f"{{{svg.SVG_NS}}}rect") if r.get("data-label")
    }
    assert labels == {"alice", "bob", "carol"}
    # The table agrees with the API.
    api = client.get(
        f"{API}/rounds/{round_id}/settlement",
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    ).json()
    for line in api["lines"]:
        assert f"{line['fee']:.4f}" in page and f"{line['payout']:.4f}" in page
    log = client.get("/ui/audit-log").text
    assert "round" in log and "No entries" not in log
    assert "party alice" in log and "party carol" in log  # uploads, named for the operator


def test_party_sees_only_its_own_lines(
    client: TestClient, settled: tuple[MarketHandle, str, MarketHandle]
) -> None:
    market, round_id, other = settled
    bob = market.parties[1]
    login(client, bob.token)
    page = client.get("/ui/markets").text
    assert "hospitals" in page and "rival_market" not in page
    page = client.get(f"/ui/markets/{market.id}").text
    assert "bob_train.csv" in page and "bob_validation.csv" in page
    for other_name in ("alice", "carol"):
        assert other_name not in page
    page = client.get(f"/ui/rounds/{round_id}").text
    assert page.count("<tr data-party=") == 1 and 'data-party="bob"' in page
    for other_name in ("alice", "carol"):
        assert other_name not in page
    assert 'id="audit"' not in page and "<tfoot>" not in page
    for chart in svgs(page):
        for rect in chart.iter(f"{{{svg.SVG_NS}}}rect"):
            assert rect.get("data-label") in (None, "bob")
    # Another market, and ids that do not exist, answer 404 alike.
    assert client.get(f"/ui/markets/{other.id}").status_code == 404
    assert client.get(f"/ui/markets/{'0' * 32}").status_code == 404
    assert client.get(f"/ui/rounds/{'0' * 32}").status_code == 404
    r = client.get(f"{API}/rounds/{round_id}/model", headers=bob.headers)
    assert r.status_code == 200
    log = client.get("/ui/audit-log").text
    assert "model_downloaded" in log and "party bob" in log
    for p in (market.parties[0], market.parties[2]):
        assert p.id[:8] not in log and p.name not in log
        for dataset_id in market.datasets[p.id]:
            assert dataset_id[:8] not in log


def test_party_of_another_market_cannot_open_the_round(
    client: TestClient, settled: tuple[MarketHandle, str, MarketHandle]
) -> None:
    market, round_id, other = settled
    r = client.post(
        f"{API}/markets/{other.id}/parties",
        json={"name": "mallory"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    login(client, r.json()["token"])
    for path in (f"/ui/rounds/{round_id}", f"/ui/markets/{market.id}"):
        r = client.get(path)
        assert r.status_code == 404
        assert "alice" not in r.text and "hospitals" not in r.text


def test_round_in_progress_shows_status_without_settlement(
    client: TestClient, market: MarketHandle
) -> None:
    r = client.post(
        f"{API}/markets/{market.id}/rounds",
        json={"learner": {"name": "gaussian_nb", "params": {}}, "payment_rule": "shapley"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    )
    assert r.status_code == 202, r.text
    login(client, market.parties[0].token)
    page = client.get(f"/ui/rounds/{r.json()['id']}").text
    assert "queued" in page and "settlement-table" not in page
    assert 'http-equiv="refresh"' in page


def test_pages_on_postgresql(pg_settings) -> None:  # type: ignore[no-untyped-def]
    """The same pages over PostgreSQL (skipped when it is unreachable)."""
    from coopml.service import create_app

    app = create_app(pg_settings)
    try:
        with TestClient(app) as client:
            market = make_market_with_parties(client, 3, names=["alice", "bob", "carol"])
            rnd = run_round_to_completion(client, market.id)
            login(client, OPERATOR_TOKEN)
            page = client.get(f"/ui/rounds/{rnd['id']}").text
            assert page.count("<tr data-party=") == 3 and 'id="audit"' in page
            login(client, market.parties[2].token)
            page = client.get(f"/ui/rounds/{rnd['id']}").text
            assert page.count("<tr data-party=") == 1 and "alice" not in page
            assert "party carol" in client.get("/ui/audit-log").text
    finally:
        app.state.service.db.dispose()
