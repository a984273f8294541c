"""Durable jobs: a lease-based queue in the database and the worker that runs rounds."""

from coopml.service.jobs.queue import Claim, claim_job, renew_lease
from coopml.service.jobs.worker import Worker, run_worker

__all__ = ["Claim", "Worker", "claim_job", "renew_lease", "run_worker"]
