"""The interactive API docs work without internet: Swagger UI is served by the app."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_page_loads_its_assets_from_the_app(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets, page.text
    for url in assets:
        assert url.startswith("/"), f"/docs refers to an external asset: {url}"
        assert client.get(url).status_code == 200, url
    assert "/openapi.json" in page.text
    assert client.get("/openapi.json").json()["info"]["title"] == "coopml marketplace"
