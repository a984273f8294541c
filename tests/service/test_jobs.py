"""The durable job queue: leases, heartbeats, re-claiming, exactly-once settlement."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    assert_ledger_balanced,
    make_market_with_parties,
    run_jobs,
)

from coopml.service.jobs import Worker, claim_job, renew_lease
from coopml.service.jobs.queue import Heartbeat
from coopml.service.jobs.runner import compute_round, settle_round
from coopml.service.storage.models import Job, Round, SettlementRow, new_id

ROUND = {"learner": {"name": "gaussian_nb"}, "payment_rule": "shapley", "fee_price": 2.0}


def _open_round(client, headers, market_id, **extra):
    r = client.post(f"{API}/markets/{market_id}/rounds", json={**ROUND, **extra}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def _no_progress(progress: float, message: str) -> None:
    pass


def test_expired_lease_is_reclaimed_and_the_old_worker_cannot_settle(client, operator_headers):
    ctx = client.app.state.service
    market = make_market_with_parties(client, 3)
    round_id = _open_round(client, operator_headers, market.id)
    a = claim_job(ctx.db, "worker-a", lease_seconds=0.3)
    assert a is not None and a.round_id == round_id and a.attempts == 1
    assert claim_job(ctx.db, "worker-b", lease_seconds=0.3) is None  # lease held
    outcome_a = compute_round(ctx, a, _no_progress, lambda: False)
    time.sleep(0.4)  # worker a stalls past its lease
    b = claim_job(ctx.db, "worker-b", lease_seconds=30)
    assert b is not None and b.job_id == a.job_id and b.attempts == 2
    assert not renew_lease(ctx.db, a, "worker-a", 30)  # a learns it lost the job
    assert settle_round(ctx, a, "worker-a", outcome_a) is False
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(SettlementRow)) == 0
    outcome_b = compute_round(ctx, b, _no_progress, lambda: False)
    assert settle_round(ctx, b, "worker-b", outcome_b) is True
    assert settle_round(ctx, b, "worker-b", outcome_b) is False  # never twice
    with ctx.db.session() as s:
        assert s.scalar(select(func.count()).select_from(SettlementRow)) == 1
        job = s.get(Job, b.job_id)
        assert job is not None and job.status == "done"
    assert_ledger_balanced(client, round_id, operator_headers)


def test_settlement_is_unique_per_round(client, operator_headers):
    ctx = client.app.state.service
    market = make_market_with_parties(client, 2)
    round_id = _open_round(client, operator_headers, market.id)
    run_jobs(client)
    assert_ledger_balanced(client, round_id, operator_headers)
    with pytest.raises(IntegrityError), ctx.db.session() as s:
        s.add(SettlementRow(round_id=round_id, record={}, audit={}, verified=True, worker="x"))


def test_heartbeat_keeps_the_lease_and_detects_loss(client, operator_headers):
    ctx = client.app.state.service
    market = make_market_with_parties(client, 2)
    _open_round(client, operator_headers, market.id)
    claim = claim_job(ctx.db, "w1", lease_seconds=0.3)
    assert claim is not None
    beat = Heartbeat(ctx.db, claim, "w1", 0.3, 0.05)
    beat.start()
    time.sleep(0.6)  # twice the lease: still held thanks to the heartbeat
    assert claim_job(ctx.db, "w2", lease_seconds=0.3) is None
    with ctx.db.session() as s:  # someone else takes the job over
        s.execute(update(Job).where(Job.id == claim.job_id).values(lease_owner="w2"))
    assert beat.lost.wait(2)
    beat.stop()


def test_concurrent_claims_never_share_a_job(client):
    _assert_exclusive_claims(client.app.state.service)


def _assert_exclusive_claims(ctx, n_jobs: int = 30, n_workers: int = 4) -> None:
    with ctx.db.session() as s:
        from coopml.service.storage.models import Market

        market = Market(name="m", task="classification")
        s.add(market)
        s.flush()
        for _ in range(n_jobs):
            rnd = Round(id=new_id(), market_id=market.id, config={})
            s.add(rnd)
            s.flush()
            s.add(Job(round_id=rnd.id))
    claimed: dict[str, list[str]] = {}
    barrier = threading.Barrier(n_workers)

    def work(name: str) -> None:
        barrier.wait()
        mine = claimed.setdefault(name, [])
        while (claim := claim_job(ctx.db, name, lease_seconds=60)) is not None:
            mine.append(claim.job_id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = [j for jobs in claimed.values() for j in jobs]
    assert len(everything) == len(set(everything)) == n_jobs


def test_failed_round_reports_the_error(client, operator_headers, monkeypatch):
    import coopml.service.jobs.runner as runner

    def broken(*args, **kwargs):
        raise ValueError("learner exploded on coalition {0, 2}")

    monkeypatch.setattr(runner, "run_market", broken)
    market = make_market_with_parties(client, 2)
    round_id = _open_round(client, operator_headers, market.id)
    run_jobs(client)
    rnd = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert rnd["status"] == "failed" and "learner exploded" in rnd["message"]
    r = client.get(f"{API}/rounds/{round_id}/settlement", headers=operator_headers)
    assert r.status_code == 409


def test_a_job_that_keeps_killing_workers_is_given_up(client, operator_headers):
    ctx = client.app.state.service
    market = make_market_with_parties(client, 2)
    round_id = _open_round(client, operator_headers, market.id)
    with ctx.db.session() as s:
        s.execute(update(Job).values(attempts=5))
    assert Worker(ctx).run_once()
    rnd = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert rnd["status"] == "failed" and "attempts" in rnd["message"]


def test_embedded_worker_runs_rounds(settings, operator_headers):
    from fastapi.testclient import TestClient

    from coopml.service import create_app

    app = create_app(settings.with_(embedded_worker=True))
    with TestClient(app) as client:
        market = make_market_with_parties(client, 3)
        round_id = _open_round(client, operator_headers, market.id, tasks="per_party")
        deadline = time.monotonic() + 60
        seen_progress = set()
        while time.monotonic() < deadline:
            rnd = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
            seen_progress.add(rnd["progress"])
            if rnd["status"] in ("completed", "failed"):
                break
            time.sleep(0.05)
        assert rnd["status"] == "completed", rnd
        assert_ledger_balanced(client, round_id, operator_headers)
    app.state.service.db.dispose()


@pytest.mark.slow
def test_round_on_the_ray_executor(tmp_path, operator_headers):
    ray = pytest.importorskip("ray")
    from fastapi.testclient import TestClient
    from tests.service.conftest import OPERATOR_TOKEN, SECRET, run_round_to_completion

    from coopml.service import Settings, create_app

    settings = Settings(
        tmp_path / "d",
        secret_key=SECRET,
        operator_token=OPERATOR_TOKEN,
        executor="ray",
        n_jobs=1,
        embedded_worker=False,
    )
    app = create_app(settings)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with TestClient(app) as client:
            market = make_market_with_parties(client, 3)
            # knn has no fast exact path: every coalition is evaluated on the executor
            rnd = run_round_to_completion(
                client, market.id, operator_headers, learner={"name": "knn", "params": {}}
            )
            assert_ledger_balanced(client, rnd["id"], operator_headers)
    finally:
        ray.shutdown()
        app.state.service.db.dispose()


def test_a_round_whose_worker_died_shows_stalled_with_the_time_since_its_heartbeat(
    client, operator_headers
):
    """A worker that stops heartbeating (killed) leaves its round ``stalled``, with the
    time since the last heartbeat, until another worker takes the job over."""
    ctx = client.app.state.service
    market = make_market_with_parties(client, 2)
    round_id = _open_round(client, operator_headers, market.id)
    before = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert before["status"] == "queued" and before["heartbeat_at"] is None
    claim = claim_job(ctx.db, "doomed", lease_seconds=0.3)
    assert claim is not None
    alive = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert alive["status"] == "running" and alive["heartbeat_at"] is not None
    time.sleep(0.5)  # the worker is gone: no heartbeat renews the lease
    for path in (f"/rounds/{round_id}", f"/markets/{market.id}/rounds"):
        body = client.get(f"{API}{path}", headers=market.parties[0].headers).json()
        shown = body if "status" in body else body["items"][0]
        assert shown["status"] == "stalled", shown
        assert shown["seconds_since_heartbeat"] >= 0.5
        assert "no heartbeat" in shown["message"] and "attempt 1" in shown["message"]
    r = client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(f"/ui/rounds/{round_id}").text  # the dashboard shows the same state
    assert 'id="round-status">stalled<' in page and "no heartbeat" in page
    client.cookies.clear()
    # another worker takes the job over: running again, with a fresh heartbeat
    assert claim_job(ctx.db, "rescuer", lease_seconds=30) is not None
    again = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert again["status"] == "running" and again["seconds_since_heartbeat"] < 0.5
