"""Concurrent writes that race on a uniqueness rule: never a 5xx, and the rule holds.

Sixteen threads send their requests at the same moment (a barrier) through the app
in-process, on SQLite and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from tests.service.conftest import postgres_database

OPERATOR_TOKEN = "operator-token-for-concurrency-0123456789"
N = 24
#: Races are probabilistic: each test repeats its burst on fresh markets.
ATTEMPTS = 4


@pytest.fixture(params=["sqlite", "postgresql"])
def http(request, tmp_path):
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    databases = postgres_database() if request.param == "postgresql" else iter([None])
    url = next(databases)
    settings = Settings(
        tmp_path / "data", database_url=url, operator_token=OPERATOR_TOKEN, embedded_worker=False
    )
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            client.headers["Authorization"] = f"Bearer {OPERATOR_TOKEN}"
            yield client
    finally:
        app.state.service.db.dispose()
        next(databases, None)  # drop the PostgreSQL database


def _at_once(fn, n: int = N) -> list:
    barrier = threading.Barrier(n)

    def run(i: int):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _market(http) -> str:
    response = http.post("/api/v1/markets", json={"name": "race", "task": "classification"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_same_party_name_at_once_registers_one(http):
    for _ in range(ATTEMPTS):
        market = _market(http)
        responses = _at_once(
            lambda i, m=market: http.post(f"/api/v1/markets/{m}/parties", json={"name": "same"})
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] + [409] * (N - 1), codes
        errors = [r.json()["error"]["code"] for r in responses if r.is_error]
        assert set(errors) == {"duplicate_name"}
        assert http.get(f"/api/v1/markets/{market}/parties").json()["total"] == 1


def test_first_uploads_at_once_fix_one_schema(http):
    for _ in range(ATTEMPTS):
        _first_uploads_race(http)


def _first_uploads_race(http) -> None:
    market = _market(http)
    party = http.post(f"/api/v1/markets/{market}/parties", json={"name": "p"}).json()
    auth = {"Authorization": f"Bearer {party['token']}"}

    def upload(i: int):
        header = b"a,b,label\n" if i % 2 == 0 else b"x,y,label\n"
        body = header + b"1,2,0\n3,4,1\n" + f"{i},5,0\n".encode()
        return http.post(
            f"/api/v1/markets/{market}/datasets",
            files={"file": ("d.csv", body, "text/csv")},
            data={"role": "train", "target": "label"},
            headers=auth,
        )

    codes = [r.status_code for r in _at_once(upload)]
    assert set(codes) <= {201, 422}, codes
    items = http.get(f"/api/v1/markets/{market}/datasets", params={"limit": 500}).json()["items"]
    assert len({tuple(sorted(d["columns"])) for d in items}) == 1, "two schemas in one market"
