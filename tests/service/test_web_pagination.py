"""The dashboard's market list comes a page at a time."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN


def test_markets_page_is_paginated(client: TestClient, operator_headers) -> None:
    for k in range(5):
        client.post(
            f"{API}/markets", json={"name": f"m{k}", "task": "regression"}, headers=operator_headers
        )
    client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    seen = []
    for offset in (0, 2, 4):
        page = client.get(f"/ui/markets?limit=2&offset={offset}")
        assert page.status_code == 200
        names = re.findall(r'<a href="/ui/markets/[0-9a-f]+">(m\d)</a>', page.text)
        seen += names
        assert f"{offset + 1}–{min(offset + 2, 5)} of 5" in page.text
        assert ("older →" in page.text) == (offset + 2 < 5)
    assert seen == [f"m{k}" for k in (4, 3, 2, 1, 0)]  # newest first, each once
    assert client.get("/ui/markets?limit=0").status_code == 422
