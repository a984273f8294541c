"""The same service on PostgreSQL (skipped when PostgreSQL is unreachable): a
three-party round, append-only triggers, and workers that never share a job (row locks
with SKIP LOCKED)."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from tests.service.conftest import (
    API,
    assert_ledger_balanced,
    make_market_with_parties,
    run_round_to_completion,
)
from tests.service.test_jobs import _assert_exclusive_claims

from coopml.service import create_app
from coopml.service.context import ServiceContext
from coopml.service.jobs import Worker
from coopml.service.storage.models import Job, SettlementRow


@pytest.fixture
def pg_client(pg_settings):
    app = create_app(pg_settings)
    with TestClient(app) as client:
        yield client
    app.state.service.db.dispose()


def test_three_party_round_on_postgresql(pg_client, operator_headers):
    assert pg_client.get(f"{API}/health").json() == {"status": "ok", "database": "postgresql"}
    market = make_market_with_parties(pg_client, 3)
    rnd = run_round_to_completion(pg_client, market.id, operator_headers, tasks="per_party")
    assert_ledger_balanced(pg_client, rnd["id"], operator_headers)
    alice = market.parties[0]
    r = pg_client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=alice.headers)
    assert [line["party_id"] for line in r.json()["lines"]] == [alice.id]
    db = pg_client.app.state.service.db
    with db.engine.connect() as conn:
        for table in ("ledger_entries", "audit_log"):
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(f"DELETE FROM {table}"))
            conn.rollback()


def test_claims_are_exclusive_on_postgresql(pg_settings):
    ctx = ServiceContext.open(pg_settings)
    try:
        _assert_exclusive_claims(ctx, n_jobs=40, n_workers=4)
    finally:
        ctx.db.dispose()


def test_two_workers_settle_each_round_once(pg_client, operator_headers):
    ctx = pg_client.app.state.service
    market = make_market_with_parties(pg_client, 3)
    body = {"learner": {"name": "gaussian_nb"}, "payment_rule": "banzhaf", "fee_price": 1.0}
    ids = []
    for _ in range(4):
        r = pg_client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=operator_headers)
        ids.append(r.json()["id"])
    processed: dict[str, int] = {}

    def drain(name: str) -> None:
        worker, n = Worker(ctx, worker_id=name), 0
        while worker.run_once():
            n += 1
        processed[name] = n

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sum(processed.values()) == 4
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(SettlementRow)) == 4
        assert set(s.scalars(select(Job.attempts))) == {1}
    for round_id in ids:
        assert_ledger_balanced(pg_client, round_id, operator_headers)


@pytest.mark.slow
def test_two_worker_processes_share_the_queue(pg_client, pg_settings, operator_headers):
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from tests.service.conftest import OPERATOR_TOKEN, SECRET

    market = make_market_with_parties(pg_client, 3)
    body = {"learner": {"name": "gaussian_nb"}, "payment_rule": "shapley", "fee_price": 1.0}
    ids = [
        pg_client.post(
            f"{API}/markets/{market.id}/rounds", json=body, headers=operator_headers
        ).json()["id"]
        for _ in range(6)
    ]
    env = {
        **os.environ,
        "COOPML_DATABASE_URL": pg_settings.database_url or "",
        "COOPML_SECRET_KEY": SECRET.hex(),
        "COOPML_OPERATOR_TOKEN": OPERATOR_TOKEN,
    }
    exe = shutil.which("coopml", path=str(Path(sys.executable).parent)) or "coopml"
    args = [exe, "worker", "--once", "--data-dir", str(pg_settings.data_dir)]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=180)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    counts = [int(re.search(r"processed (\d+) job", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(counts) == 6, outputs
    print("jobs per worker process:", counts)
    ctx = pg_client.app.state.service
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(SettlementRow)) == 6
        assert set(s.scalars(select(Job.attempts))) == {1}
    for round_id in ids:
        assert_ledger_balanced(pg_client, round_id, operator_headers)
