"""The durable job queue: claim with a lease, heartbeat, finish.

A job is claimable when it is ``queued`` or ``running`` with an expired lease (its
worker died). Claiming is one conditional ``UPDATE`` (SQLite serialises writers) after
a ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two workers never hold the
same job. A worker keeps its lease by heartbeating; every later write of the job is
conditional on still owning it, so a worker that lost its lease cannot finish the job.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, update

from coopml.service.storage.database import Database
from coopml.service.storage.models import Job, Round, utcnow

__all__ = ["Claim", "Heartbeat", "claim_job", "fail_job", "renew_lease"]


@dataclass(frozen=True)
class Claim:
    """A job this worker holds."""

    job_id: str
    round_id: str
    attempts: int
    max_attempts: int


def _claimable(now: datetime.datetime) -> ColumnElement[bool]:
    return or_(
        Job.status == "queued",
        and_(Job.status == "running", Job.lease_expires_at < now),
    )


def claim_job(db: Database, worker: str, lease_seconds: float) -> Claim | None:
    """Claim the oldest claimable job, or return None."""
    for _ in range(5):
        with db.session() as s:
            now = utcnow()
            query = select(Job.id).where(_claimable(now)).order_by(Job.created_at).limit(1)
            if db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            job_id = s.scalar(query)
            if job_id is None:
                return None
            result = s.execute(
                update(Job)
                .where(Job.id == job_id, _claimable(now))
                .values(
                    status="running",
                    lease_owner=worker,
                    lease_expires_at=now + datetime.timedelta(seconds=lease_seconds),
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another worker won the race; try the next job
            job = s.get(Job, job_id)
            assert job is not None
            rnd = s.get(Round, job.round_id)
            assert rnd is not None
            rnd.status = "running"
            rnd.started_at = rnd.started_at or now
            rnd.message = f"running (attempt {job.attempts})"
            return Claim(job.id, job.round_id, job.attempts, job.max_attempts)
    return None


def renew_lease(db: Database, claim: Claim, worker: str, lease_seconds: float) -> bool:
    """Extend the lease; False when this worker no longer owns the job."""
    with db.session() as s:
        now = utcnow()
        result = s.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.lease_owner == worker, Job.status == "running")
            .values(
                lease_expires_at=now + datetime.timedelta(seconds=lease_seconds), updated_at=now
            )
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def fail_job(
    db: Database,
    claim: Claim,
    worker: str,
    message: str,
    failure: dict[str, Any] | None = None,
) -> bool:
    """Mark the job and its round failed (only while owning the job); ``failure``: what
    the party whose dataset caused it is told (``rounds.failure``)."""
    message = message[:2000]
    with db.session() as s:
        now = utcnow()
        result = s.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.lease_owner == worker, Job.status == "running")
            .values(status="failed", last_error=message, lease_expires_at=None, updated_at=now)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        s.execute(
            update(Round)
            .where(Round.id == claim.round_id)
            .values(status="failed", message=message, finished_at=now, failure=failure)
        )
        return True


class Heartbeat(threading.Thread):
    """Renews a lease every ``interval`` seconds until stopped; sets ``lost`` when the
    lease is gone (then the job's work must be abandoned)."""

    def __init__(
        self, db: Database, claim: Claim, worker: str, lease_seconds: float, interval: float
    ) -> None:
        super().__init__(name=f"coopml-heartbeat-{claim.job_id[:8]}", daemon=True)
        self.db, self.claim, self.worker = db, claim, worker
        self.lease_seconds, self.interval = lease_seconds, interval
        self.lost = threading.Event()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                if not renew_lease(self.db, self.claim, self.worker, self.lease_seconds):
                    self.lost.set()
                    return
            except Exception:  # a transient database error: try again next beat
                continue

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=5)
