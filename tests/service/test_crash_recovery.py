"""Crash recovery: a `coopml worker` process is SIGKILLed mid-round; after its lease
expires another worker process re-claims the job and the round completes exactly once,
with a balanced, verifiable settlement."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    SECRET,
    assert_ledger_balanced,
    make_market_with_parties,
)

from coopml.market import Settlement
from coopml.service import Settings, create_app
from coopml.service.storage.models import Job, LedgerEntry, SettlementRow

LEASE = 1.0


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "COOPML_SECRET_KEY": SECRET.hex(),
        "COOPML_OPERATOR_TOKEN": OPERATOR_TOKEN,
        "COOPML_LEASE_SECONDS": str(LEASE),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    env.pop("COOPML_DATABASE_URL", None)
    return env


def _worker(data_dir: Path, *, once: bool) -> subprocess.Popen[bytes]:
    """``coopml worker`` (the production command)."""
    exe = shutil.which("coopml", path=str(Path(sys.executable).parent)) or "coopml"
    args = [exe, "worker", "--data-dir", str(data_dir), "--poll-interval", "0.1"]
    return subprocess.Popen(
        args + (["--once"] if once else []),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _slow_worker(data_dir: Path, *, delay: float) -> subprocess.Popen[bytes]:
    """A worker whose rounds wait ``delay`` s before settling (a test-only hook)."""
    script = Path(__file__).with_name("slow_worker.py")
    return subprocess.Popen(
        [sys.executable, str(script), str(data_dir), str(delay)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_round_completes_once(tmp_path: Path) -> None:
    settings = Settings(
        tmp_path / "data",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        embedded_worker=False,
        lease_seconds=LEASE,
    )
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with TestClient(app) as client:
        market = make_market_with_parties(client, 3)
        body = {"learner": {"name": "gaussian_nb"}, "payment_rule": "shapley", "fee_price": 1.0}
        r = client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=headers)
        round_id = r.json()["id"]

        def status() -> dict:
            return client.get(f"{API}/rounds/{round_id}", headers=headers).json()

        first = _slow_worker(settings.data_dir, delay=60.0)
        try:
            seen = _wait(
                lambda: (r := status())["message"].startswith("settling") and r, 60, "worker 1"
            )
            assert seen["status"] == "running" and seen["progress"] >= 0.85  # progress shows
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert first.returncode == -signal.SIGKILL
        assert status()["status"] == "running"  # the dead worker's claim is still there

        db = app.state.service.db
        time.sleep(LEASE + 0.2)  # let the dead worker's lease expire
        second = _worker(settings.data_dir, once=True)
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 0, out.decode()
        assert b"processed 1 job" in out

        rnd = status()
        assert rnd["status"] == "completed", rnd
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(SettlementRow)) == 1
            job = s.scalars(select(Job)).one()
            assert job.status == "done" and job.attempts == 2
            record = s.scalars(select(SettlementRow)).one().record
            n_ledger = s.scalar(select(func.count()).select_from(LedgerEntry))
        assert n_ledger == 3 * 3
        assert Settlement.from_dict(record).verify().ok
        assert_ledger_balanced(client, round_id, headers)
    app.state.service.db.dispose()
