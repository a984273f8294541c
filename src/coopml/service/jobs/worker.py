"""The worker loop: claim a job, heartbeat while running it, settle or fail it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import update

from coopml.service.context import ServiceContext
from coopml.service.domain.datasets import DatasetFault
from coopml.service.jobs.queue import Claim, Heartbeat, claim_job, fail_job
from coopml.service.jobs.runner import BeforeSettle, LeaseLost, compute_round, settle_round
from coopml.service.settings import Settings
from coopml.service.storage.models import Round

__all__ = ["BeforeSettle", "Worker", "run_worker"]

log = logging.getLogger("coopml.service.worker")


class Worker:
    """Processes round jobs from the shared database.

    ``before_settle``: a hook run in each round after valuation, before its models are
    stored and it is settled (:data:`coopml.service.jobs.runner.BeforeSettle`); tests
    use it to kill a worker mid-round. None in production.
    """

    def __init__(
        self,
        ctx: ServiceContext,
        worker_id: str | None = None,
        *,
        before_settle: BeforeSettle | None = None,
    ) -> None:
        self.ctx = ctx
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.before_settle = before_settle

    def run_once(self) -> bool:
        """Claim and process one job; False when none was claimable."""
        settings = self.ctx.settings
        claim = claim_job(self.ctx.db, self.id, settings.lease_seconds)
        if claim is None:
            return False
        if claim.attempts > claim.max_attempts:
            fail_job(
                self.ctx.db,
                claim,
                self.id,
                f"gave up after {claim.max_attempts} attempts (workers kept dying or losing "
                "the lease)",
            )
            return True
        beat = Heartbeat(
            self.ctx.db, claim, self.id, settings.lease_seconds, settings.heartbeat_seconds
        )
        beat.start()
        try:
            self._process(claim, beat)
        finally:
            beat.stop()
        return True

    def _process(self, claim: Claim, beat: Heartbeat) -> None:
        def report(progress: float, message: str) -> None:
            try:  # progress is best effort: a failed write must not fail the round
                with self.ctx.db.session() as s:
                    s.execute(
                        update(Round)
                        .where(Round.id == claim.round_id, Round.status == "running")
                        .values(progress=progress, message=message)
                    )
            except Exception:
                log.warning("round %s: could not record progress", claim.round_id)

        try:
            outcome = compute_round(self.ctx, claim, report, beat.lost.is_set, self.before_settle)
        except LeaseLost:
            log.warning("worker %s lost the lease of job %s", self.id, claim.job_id)
            return
        except DatasetFault as exc:  # one party's data: that party is told, privately
            log.warning("round %s failed: %s", claim.round_id, exc)
            fail_job(self.ctx.db, claim, self.id, f"failed: {exc}", exc.to_record())
            return
        except Exception as exc:
            log.exception("round %s failed", claim.round_id)
            message = f"{type(exc).__name__}: {exc}"[:2000]
            fail_job(self.ctx.db, claim, self.id, message)
            return
        try:
            settled = settle_round(self.ctx, claim, self.id, outcome)
        except Exception as exc:  # a bug or a database error: report, do not retry forever
            log.exception("round %s could not be settled", claim.round_id)
            fail_job(self.ctx.db, claim, self.id, f"settling failed: {type(exc).__name__}: {exc}")
            return
        if not settled:
            log.warning("worker %s: round %s settled elsewhere", self.id, claim.round_id)

    def run(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        """Process jobs until ``stop`` is set."""
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # database unavailable, ...: keep the worker alive
                log.exception("worker %s: error while claiming a job", self.id)
                busy = False
            if not busy:
                stop.wait(poll_interval)


def run_worker(
    settings: Settings | ServiceContext,
    *,
    once: bool = False,
    poll_interval: float = 0.5,
    stop: threading.Event | None = None,
    before_settle: BeforeSettle | None = None,
) -> int:
    """Run a worker: with ``once``, process every claimable job and return; otherwise
    poll until ``stop`` is set (or forever). Returns the number of jobs processed.
    ``before_settle``: see :class:`Worker`."""
    owned = not isinstance(settings, ServiceContext)
    if isinstance(settings, ServiceContext):
        ctx = settings
    else:
        ctx = ServiceContext.open(settings, bootstrap=False)
    worker = Worker(ctx, before_settle=before_settle)
    try:
        if once:
            n = 0
            while worker.run_once():
                n += 1
            return n
        worker.run(stop or threading.Event(), poll_interval)
        return 0
    finally:
        if owned:
            ctx.db.dispose()
