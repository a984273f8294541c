"""The dashboard end to end in headless Chromium (Playwright driving /usr/bin/chromium).

A uvicorn server on a free loopback port serves an app with a settled three-party
round. The operator logs in, opens the round and sees the settlement table, the SVG
charts and the audit; a party logs in and sees only its own line.

``COOPML_DASHBOARD_SCREENSHOT=1`` also saves the operator's round page to
``docs/img/service_dashboard.png`` (the screenshot in ``docs/service.md``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.service.conftest import (
    OPERATOR_TOKEN,
    SECRET,
    make_market_with_parties,
    run_round_to_completion,
)

from coopml.service import Settings, create_app

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium (run `make setup`, which installs "
    "the Debian packages chromium and chromium-driver)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

SHOOT = bool(os.environ.get("COOPML_DASHBOARD_SCREENSHOT"))
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "service_dashboard.png"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server (uvicorn in a thread) with a settled three-party round."""
    import uvicorn
    from fastapi.testclient import TestClient

    settings = Settings(
        tmp_path_factory.mktemp("e2e") / "data",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
    )
    app = create_app(settings)
    setup = TestClient(app)
    market = make_market_with_parties(setup, 3, names=["alice", "bob", "carol"])
    if SHOOT:  # a round worth showing: pooling helps, and the replication audit (~30 s)
        extra = {"learner": {"name": "logistic_regression"}, "replication_party": "alice"}
    else:
        extra = {}
    rnd = run_round_to_completion(setup, market.id, **extra)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield {"url": f"http://127.0.0.1:{port}", "market": market, "round_id": rnd["id"]}
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        app.state.service.db.dispose()


@pytest.fixture(scope="module")
def browser(served: dict[str, Any]) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def _login(page: Any, url: str, token: str) -> None:
    page.goto(url + "/")
    page.fill("#token", token)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(url + "/ui/markets")


def test_operator_sees_settlement_charts_and_audit(served: dict[str, Any], browser: Any) -> None:
    url, round_id = served["url"], served["round_id"]
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        _login(page, url, OPERATOR_TOKEN)
        assert page.evaluate("document.cookie") == ""  # HttpOnly: invisible to scripts
        page.click("text=hospitals")
        page.wait_for_url(f"{url}/ui/markets/{served['market'].id}")
        assert page.locator("#datasets tbody tr").count() == 6
        page.click(f"a[href='/ui/rounds/{round_id}']")
        page.wait_for_url(f"{url}/ui/rounds/{round_id}")
        assert page.inner_text("#round-status") == "completed"
        rows = page.locator("#settlement-table tbody tr")
        assert rows.count() == 3
        assert [rows.nth(i).get_attribute("data-party") for i in range(3)] == [
            "alice",
            "bob",
            "carol",
        ]
        charts = page.locator("svg.chart")
        assert charts.count() == 4
        for i in range(4):
            box = charts.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 150
        bars = page.locator("svg.chart rect.bar")
        assert bars.count() == 3 * 3 + 6
        assert any(bars.nth(i).bounding_box()["height"] > 1 for i in range(3))  # type: ignore[index]
        assert page.locator("#audit").is_visible()
        assert page.locator(".audit-balance").is_visible()
        # The stylesheet came from the app itself (no CDN): the table is styled.
        assert (
            page.evaluate("getComputedStyle(document.querySelector('table.data')).borderCollapse")
            == "collapse"
        )
        if SHOOT:
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        page.click("text=Log out")
        page.wait_for_url(url + "/")
        assert page.locator("#token").is_visible()
    finally:
        context.close()


def test_party_sees_only_its_own_line(served: dict[str, Any], browser: Any) -> None:
    url, round_id = served["url"], served["round_id"]
    bob = served["market"].parties[1]
    context = browser.new_context()
    page = context.new_page()
    try:
        _login(page, url, bob.token)
        page.goto(f"{url}/ui/rounds/{round_id}")
        rows = page.locator("#settlement-table tbody tr")
        assert rows.count() == 1 and rows.first.get_attribute("data-party") == "bob"
        text = page.content()
        assert "alice" not in text and "carol" not in text
        assert page.locator("#audit").count() == 0
        assert page.locator("svg.chart rect.bar").count() == 3 + 2
        page.goto(f"{url}/ui/markets/{served['market'].id}")
        assert page.locator("#datasets tbody tr").count() == 2
        assert "alice" not in page.content()
    finally:
        context.close()
