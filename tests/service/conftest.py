"""Shared fixtures of the service tests.

* ``settings`` — a fresh deployment: temporary data directory, SQLite, operator token
  ``OPERATOR_TOKEN``, no embedded worker (tests run jobs with :func:`run_jobs`).
* ``app``, ``client`` (``fastapi.testclient.TestClient``), ``operator_headers``.
* ``pg_settings`` — the same on a fresh PostgreSQL database (skips when unreachable).
* helpers :func:`make_market_with_parties`, :func:`run_round_to_completion`,
  :func:`assert_ledger_balanced`, :func:`breast_cancer_csvs`.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

for _extra in ("fastapi", "sqlalchemy", "alembic", "cryptography", "skops", "multipart"):
    pytest.importorskip(_extra, reason="the service tests need the 'service' extra")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from coopml.service import Settings, create_app  # noqa: E402
from coopml.service.jobs import run_worker  # noqa: E402

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

OPERATOR_TOKEN = "operator-test-token"
API = "/api/v1"
PG_ADMIN_URL = os.environ.get(
    "COOPML_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SECRET = bytes(range(32))


# ----------------------------------------------------------------------------- data
def breast_cancer_csvs(n: int = 3, *, random_state: int = 0) -> list[dict[str, bytes]]:
    """``n`` parties' ``{"train": csv, "validation": csv}`` from the breast-cancer data
    (columns ``f0..f29`` and target ``label``)."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(y))
    out = []
    for chunk in np.array_split(order, n):
        cut = int(len(chunk) * 0.7)
        files = {}
        for role, rows in (("train", chunk[:cut]), ("validation", chunk[cut:])):
            frame = pd.DataFrame(X[rows], columns=[f"f{j}" for j in range(X.shape[1])])
            frame["label"] = y[rows]
            buf = io.StringIO()
            frame.to_csv(buf, index=False)
            files[role] = buf.getvalue().encode()
        out.append(files)
    return out


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A fresh SQLite deployment without an embedded worker."""
    return Settings(
        tmp_path / "data",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        lease_seconds=5.0,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.service.db.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


@pytest.fixture
def operator_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database (URL), dropped afterwards; skips when unreachable."""
    try:
        import psycopg  # noqa: F401
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover
        pytest.skip("psycopg is not installed")
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"coopml_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {str(exc).splitlines()[0]}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database (skips when PostgreSQL is unreachable)."""
    yield from postgres_database()


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    """A fresh PostgreSQL deployment without an embedded worker."""
    return Settings(
        tmp_path / "pgdata",
        database_url=pg_url,
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        lease_seconds=5.0,
    )


# ----------------------------------------------------------------------------- helpers
@dataclass
class PartyHandle:
    """A registered party: id, name, token and ready-made auth headers."""

    id: str
    name: str
    token: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class MarketHandle:
    """A market with its parties (``parties[i]``) and uploaded dataset ids."""

    id: str
    parties: list[PartyHandle]
    datasets: dict[str, list[str]]

    @property
    def tokens(self) -> dict[str, str]:
        return {p.name: p.token for p in self.parties}


def make_market_with_parties(
    client: TestClient,
    n: int = 3,
    *,
    headers: dict[str, str] | None = None,
    task: str = "classification",
    validation: bool = True,
    names: list[str] | None = None,
    release_policy: str | None = None,
) -> MarketHandle:
    """Create a market with ``n`` parties that each upload breast-cancer training (and,
    with ``validation``, validation) CSVs (``release_policy``: the market's; None: the
    service's default, ``query_only``)."""
    headers = headers or {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    body = {"name": "hospitals", "task": task}
    if release_policy is not None:
        body["release_policy"] = release_policy
    r = client.post(f"{API}/markets", json=body, headers=headers)
    assert r.status_code == 201, r.text
    market_id = r.json()["id"]
    parties, datasets = [], {}
    for i, files in enumerate(breast_cancer_csvs(n)):
        name = names[i] if names else f"party_{i}"
        r = client.post(f"{API}/markets/{market_id}/parties", json={"name": name}, headers=headers)
        assert r.status_code == 201, r.text
        body = r.json()
        handle = PartyHandle(
            body["id"], name, body["token"], {"Authorization": f"Bearer {body['token']}"}
        )
        parties.append(handle)
        datasets[handle.id] = []
        for role in ("train", "validation") if validation else ("train",):
            r = client.post(
                f"{API}/markets/{market_id}/datasets",
                files={"file": (f"{name}_{role}.csv", files[role], "text/csv")},
                data={"role": role, "target": "label"},
                headers=handle.headers,
            )
            assert r.status_code == 201, r.text
            datasets[handle.id].append(r.json()["id"])
    return MarketHandle(market_id, parties, datasets)


def run_round_to_completion(
    client: TestClient,
    market_id: str,
    headers: dict[str, str] | None = None,
    **round_params: Any,
) -> dict[str, Any]:
    """Open a round (defaults: gaussian_nb, shapley, price 1, single task), run the
    queued jobs in this process and return the finished round (asserts it completed)."""
    headers = headers or {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    body = {
        "learner": {"name": "gaussian_nb", "params": {}},
        "payment_rule": "shapley",
        "fee_price": 1.0,
        "tasks": "single",
        **round_params,
    }
    r = client.post(f"{API}/markets/{market_id}/rounds", json=body, headers=headers)
    assert r.status_code == 202, r.text
    round_id = r.json()["id"]
    run_jobs(client)
    r = client.get(f"{API}/rounds/{round_id}", headers=headers)
    assert r.status_code == 200, r.text
    rnd: dict[str, Any] = r.json()
    assert rnd["status"] == "completed", rnd
    return rnd


def run_jobs(client: TestClient) -> int:
    """Process every queued job synchronously with the app's own context."""
    return run_worker(client.app.state.service, once=True)  # type: ignore[attr-defined]


def assert_ledger_balanced(
    client: TestClient, round_id: str, headers: dict[str, str] | None = None
) -> None:
    """The round's ledger: Σ fee_collected − Σ fee_returned − Σ payout = 0, three entries
    per party, and the settlement verifies."""
    headers = headers or {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    r = client.get(f"{API}/rounds/{round_id}/ledger", params={"limit": 500}, headers=headers)
    assert r.status_code == 200, r.text
    entries = r.json()["items"]
    assert entries, "no ledger entries"
    sums = {"fee_collected": 0.0, "fee_returned": 0.0, "payout": 0.0}
    for e in entries:
        sums[e["kind"]] += e["amount"]
    scale = max(1.0, sum(abs(e["amount"]) for e in entries))
    residual = sums["fee_collected"] - sums["fee_returned"] - sums["payout"]
    assert abs(residual) <= 1e-9 * scale, (residual, sums)
    r = client.get(f"{API}/rounds/{round_id}/settlement", headers=headers)
    assert r.status_code == 200, r.text
    settlement = r.json()
    assert settlement["verified"] is True
    assert len(entries) == 3 * len(settlement["lines"])


@pytest.fixture
def market(client: TestClient) -> MarketHandle:
    """A three-party classification market with training and validation data."""
    return make_market_with_parties(client, 3)
