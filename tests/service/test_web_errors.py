"""Errors on dashboard pages are HTML pages carrying the request id; the API keeps its
JSON error body."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import OPERATOR_TOKEN

from coopml.service import create_app


def test_unknown_page_is_an_html_404_and_unknown_api_path_json(client: TestClient) -> None:
    page = client.get("/ui/no-such-page", headers={"X-Request-ID": "req-page-1"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Not Found" in page.text and "req-page-1" in page.text
    api = client.get("/api/v1/no-such-endpoint")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"


def test_a_failing_page_is_an_html_500(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from coopml.service.web import data

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(data, "list_markets", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        login = http.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
        assert login.status_code == 303
        page = http.get("/ui/markets", headers={"X-Request-ID": "req-page-2"})
        assert page.status_code == 500
        assert page.headers["content-type"].startswith("text/html")
        assert "req-page-2" in page.text and "database on fire" not in page.text
        api = http.get("/api/v1/markets", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert api.status_code == 200
