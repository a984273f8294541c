"""Round liveness: is the worker running a round still alive?

A worker holding a round's job renews its lease every ``heartbeat_seconds``; each
renewal stamps the job's ``updated_at``. When the lease has expired while the job is
still ``running``, the worker has died (or lost the database): the round is
**stalled** until another worker claims the job (a claim takes over an expired lease,
see :mod:`coopml.service.jobs.queue`). The round's stored status stays ``running``
(the job is not finished); what parties see is the derived state ``stalled`` with the
time since the last heartbeat.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.service.storage.models import Job, utc, utcnow

__all__ = ["Liveness", "liveness"]


@dataclass(frozen=True)
class Liveness:
    """What the job queue says of one round's worker."""

    #: The last heartbeat (or claim) of the worker holding the job; None when no
    #: worker has held it yet.
    heartbeat_at: datetime.datetime | None
    #: True when the job is ``running`` but its lease expired (its worker is gone).
    stalled: bool
    #: Seconds from the last heartbeat to ``now`` (None without a heartbeat).
    seconds_since_heartbeat: float | None
    #: Attempts so far (claims of the job).
    attempts: int

    def describe(self) -> str:
        """One line for a party: ``stalled: no heartbeat for 2 min 5 s (attempt 1) ...``."""
        seconds = self.seconds_since_heartbeat or 0.0
        minutes, secs = divmod(round(seconds), 60)
        ago = f"{minutes} min {secs} s" if minutes else f"{secs} s"
        return (
            f"stalled: no heartbeat from its worker for {ago} (attempt {self.attempts}); "
            "it resumes when a worker takes the job over"
        )


def liveness(
    s: Session, round_ids: Iterable[str], now: datetime.datetime | None = None
) -> dict[str, Liveness]:
    """The liveness of each round's job, by round id (rounds without a job are absent)."""
    ids = list(round_ids)
    if not ids:
        return {}
    now = now or utcnow()
    out: dict[str, Liveness] = {}
    for job in s.scalars(select(Job).where(Job.round_id.in_(ids))):
        beat = utc(job.updated_at) if job.attempts else None
        expires = utc(job.lease_expires_at)
        stalled = job.status == "running" and expires is not None and expires < now
        out[job.round_id] = Liveness(
            heartbeat_at=beat,
            stalled=stalled,
            seconds_since_heartbeat=None if beat is None else (now - beat).total_seconds(),
            attempts=int(job.attempts),
        )
    return out
