"""Dashboard pages over a fake data layer: rendering, escaping, visibility, login flow.

These tests include only the dashboard's router in a bare FastAPI app and replace the
data-access functions with an in-memory market, so they pin the page logic (and the
second line of defence in the view-models) independently of the backend.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coopml.service.web import COOKIE, data, router, svg
from coopml.service.web.render import render
from coopml.service.web.views import Viewer, round_row, settlement_charts, settlement_view

EVIL = '<script>alert("pwn")</script>'

MARKET = {
    "id": "m1",
    "name": "hospitals <&>",
    "task": "classification",
    "description": EVIL,
    "created_at": "2026-01-01T00:00:00+00:00",
    "n_parties": 3,
}
PARTIES = [
    {"id": "pa", "name": "alice", "market_id": "m1", "created_at": None},
    {"id": "pb", "name": "bob", "market_id": "m1", "created_at": None},
    {"id": "pc", "name": "carol_secret", "market_id": "m1", "created_at": None},
]
DATASETS = [
    {
        "id": f"d{p['id']}",
        "party_id": p["id"],
        "name": f"{p['name']}_train.csv",
        "role": "train",
        "n_rows": 100,
        "n_features": 4,
        "target": "y",
        "sha256": "ab" * 32,
        "created_at": None,
    }
    for p in PARTIES
]
ROUND = {
    "id": "r" * 32,
    "market_id": "m1",
    "status": "completed",
    "progress": 1.0,
    "message": "",
    "created_at": "2026-01-01T00:00:00+00:00",
    "started_at": None,
    "finished_at": None,
    "config": {
        "learner": {"name": "ridge", "params": {"alpha": 1.0}},
        "payment_rule": "shapley",
        "fee_price": 1.0,
        "tasks": "single",
    },
}
LINES = [
    {
        "party_id": "pa",
        "name": "alice",
        "fee": 0.1,
        "payout": 0.3,
        "net_gain": 0.2,
        "own_gain": 0.9,
        "model_gain": 0.95,
    },
    {
        "party_id": "pb",
        "name": "bob",
        "fee": 0.2,
        "payout": 0.05,
        "net_gain": -0.15,
        "own_gain": 0.8,
        "model_gain": 0.94,
    },
    {
        "party_id": "pc",
        "name": "carol_secret",
        "fee": 0.3,
        "payout": 0.25,
        "net_gain": -0.05,
        "own_gain": 0.7,
        "model_gain": 0.93,
    },
]
AUDIT = {
    "balance": {"balanced": True, "balance_error": 0.0},
    "verification": {"ok": True, "problems": []},
    "duplicates": {"pairs": []},
    "replication": {"findings": [EVIL]},
}
TOKENS = {
    "op": Viewer(role="operator", name="operator", party_id=None, market_id=None),
    "ta": Viewer(role="party", name="alice", party_id="pa", market_id="m1"),
    "tb": Viewer(role="party", name="bob", party_id="pb", market_id="m1"),
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """A bare app with the dashboard router over a fake data layer that, on purpose,
    returns *everything* to everyone: the pages must still filter."""
    monkeypatch.setattr(data, "authenticate", lambda request, token: TOKENS.get(token))
    sessions: dict[str, Viewer] = {}  # session id -> viewer, like the real session table

    def open_session(request: object, token: str) -> tuple[str, Viewer] | None:
        if token not in TOKENS:
            return None
        session_id = f"session-{len(sessions)}"
        sessions[session_id] = TOKENS[token]
        return session_id, TOKENS[token]

    monkeypatch.setattr(data, "open_session", open_session)
    monkeypatch.setattr(data, "session_viewer", lambda request, sid: sessions.get(sid))
    monkeypatch.setattr(data, "close_session", lambda request, sid: sessions.pop(sid, None))
    monkeypatch.setattr(data, "list_markets", lambda request, viewer, **page: ([MARKET], 1))
    monkeypatch.setattr(
        data, "get_market", lambda request, viewer, mid: MARKET if mid == "m1" else None
    )
    monkeypatch.setattr(data, "list_parties", lambda request, viewer, mid: PARTIES)
    monkeypatch.setattr(data, "list_datasets", lambda request, viewer, mid: DATASETS)
    monkeypatch.setattr(data, "list_rounds", lambda request, viewer, mid: [ROUND])
    monkeypatch.setattr(
        data, "get_round", lambda request, viewer, rid: ROUND if rid == ROUND["id"] else None
    )
    monkeypatch.setattr(
        data, "get_settlement", lambda request, viewer, rid: {"lines": LINES, "verified": True}
    )
    monkeypatch.setattr(data, "get_audit", lambda request, viewer, rid: AUDIT)
    entries = [
        {
            "id": "e1",
            "at": None,
            "actor": EVIL,
            "action": "dataset.read",
            "item_type": "dataset",
            "item_id": "dpa",
            "request_id": "q1",
        }
    ]
    monkeypatch.setattr(
        data, "audit_log", lambda request, viewer, limit, offset: (entries, len(entries))
    )
    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def login(client: TestClient, token: str) -> None:
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/ui/markets"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_login_page_and_bad_token(fake: TestClient) -> None:
    r = fake.get("/")
    assert r.status_code == 200 and 'action="/login"' in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "<script" not in r.text.lower()
    r = fake.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert r.status_code == 401 and "Invalid token" in r.text
    assert COOKIE not in r.headers.get("set-cookie", "")


def test_pages_require_login(fake: TestClient) -> None:
    for path in ("/ui/markets", "/ui/markets/m1", f"/ui/rounds/{ROUND['id']}", "/ui/audit-log"):
        r = fake.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/?next=/ui/")


def test_login_redirects_only_to_dashboard_paths(fake: TestClient) -> None:
    for target, expected in [
        ("/ui/rounds/x", "/ui/rounds/x"),
        ("https://evil.example/ui/", "/ui/markets"),
        ("//evil.example/ui/", "/ui/markets"),
        ("/api/v1/me", "/ui/markets"),
    ]:
        r = fake.post("/login", data={"token": "op", "next": target}, follow_redirects=False)
        assert r.headers["location"] == expected


def test_cross_origin_login_and_logout_refused(fake: TestClient) -> None:
    r = fake.post(
        "/login",
        data={"token": "op"},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    login(fake, "op")
    r = fake.post("/logout", headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403
    r = fake.post("/logout", headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"]
    assert fake.get("/ui/markets", follow_redirects=False).status_code == 303


def test_operator_sees_everything_escaped(fake: TestClient) -> None:
    login(fake, "op")
    page = fake.get("/ui/markets/m1").text
    for name in ("alice", "bob", "carol_secret", "carol_secret_train.csv"):
        assert name in page
    assert EVIL not in page and "&lt;script&gt;" in page
    assert "hospitals &lt;&amp;&gt;" in page
    r = fake.get(f"/ui/rounds/{ROUND['id']}")
    assert r.status_code == 200
    page = r.text
    assert page.count("<tr data-party=") == 3
    assert 'id="audit"' in page and "Replication findings" in page
    assert EVIL not in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 4
    assert "<tfoot>" in page
    log = fake.get("/ui/audit-log").text
    assert "dataset.read" in log and EVIL not in log


def test_party_sees_only_its_own_rows(fake: TestClient) -> None:
    login(fake, "tb")
    page = fake.get("/ui/markets/m1").text
    assert "bob_train.csv" in page
    for other in ("alice", "carol_secret"):
        assert other not in page
    page = fake.get(f"/ui/rounds/{ROUND['id']}").text
    assert page.count("<tr data-party=") == 1 and 'data-party="bob"' in page
    for other in ("alice", "carol_secret"):
        assert other not in page
    assert 'id="audit"' not in page and "<tfoot>" not in page
    assert "Replication" not in page
    # Another market's pages answer 404 like a missing one.
    assert fake.get("/ui/markets/m2").status_code == 404


def test_party_round_of_another_market_is_not_found(
    fake: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = {**ROUND, "market_id": "m2"}
    monkeypatch.setattr(data, "get_round", lambda request, viewer, rid: other)
    login(fake, "ta")
    r = fake.get(f"/ui/rounds/{ROUND['id']}")
    assert r.status_code == 404 and "carol" not in r.text and "bob" not in r.text


def test_unknown_items_are_not_found(fake: TestClient) -> None:
    login(fake, "op")
    assert fake.get("/ui/markets/zzz").status_code == 404
    assert fake.get("/ui/rounds/zzz").status_code == 404


def test_stylesheet_is_served() -> None:
    app = FastAPI()
    app.include_router(router)
    r = TestClient(app).get("/ui/static/style.css")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/css")
    assert "table.data" in r.text and "http" not in r.text  # no external resources


def test_settlement_view_filters_party_lines_and_totals() -> None:
    party = TOKENS["ta"]
    view = settlement_view({"lines": LINES, "verified": True}, party)
    assert [x["name"] for x in view["lines"]] == ["alice"] and view["totals"] is None
    op = settlement_view({"lines": LINES}, TOKENS["op"])
    assert op["totals"]["fee"] == pytest.approx(0.6)
    assert op["totals"]["net_gain"] == pytest.approx(0.0)
    assert op["verified"] is None


def test_settlement_charts_are_valid_svg() -> None:
    view = settlement_view({"lines": LINES}, TOKENS["op"])
    charts = settlement_charts(view["lines"])
    assert len(charts) == 4
    for chart in charts:
        root = ET.fromstring(str(chart))
        assert root.tag == f"{{{svg.SVG_NS}}}svg"
    net = ET.fromstring(str(charts[2]))
    negative = [
        r.get("data-label")
        for r in net.iter(f"{{{svg.SVG_NS}}}rect")
        if "negative" in r.get("class", "")
    ]
    assert negative == ["bob", "carol_secret"]


def test_round_row_running_refreshes_and_shows_progress() -> None:
    running = round_row({**ROUND, "status": "running", "progress": 0.4})
    assert 'data-fraction="0.4000"' in str(running["progress_svg"])
    page = render(
        "round.html",
        user=TOKENS["op"],
        round=running,
        market={"id": "m1", "name": "m"},
        settlement=None,
        charts=[],
        audit=None,
    )
    assert 'http-equiv="refresh"' in page and "settlement-table" not in page


def test_round_row_tolerates_sparse_dicts() -> None:
    row = round_row({"id": "x", "status": "failed", "progress": None, "config": None})
    assert row["rule"] == "–" and row["progress"] == 0.0
