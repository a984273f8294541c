"""A test-only ``coopml worker`` that holds each round open before settling it.

Run as a script (``python tests/service/slow_worker.py DATA_DIR DELAY``) with the
deployment's ``COOPML_*`` environment: it processes jobs like ``coopml worker``, but
each round waits ``DELAY`` seconds after valuation (heartbeating, its progress message
``settling (delayed)``), a window in which a test kills the process. The delay is a
hook injected into the worker (``before_settle``); production code has no such setting.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path


def hold(seconds: float) -> Callable[[Callable[[float, str], None], Callable[[], bool]], None]:
    """A ``before_settle`` hook that waits ``seconds`` while the lease is held."""
    from coopml.service.jobs.runner import LeaseLost

    def before_settle(report: Callable[[float, str], None], lost: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if lost():
                raise LeaseLost("lease lost")
            report(0.9, "settling (delayed)")
            time.sleep(0.05)

    return before_settle


def main(argv: list[str]) -> int:
    from coopml.service.jobs import run_worker
    from coopml.service.settings import Settings

    data_dir, delay = Path(argv[0]), float(argv[1])
    settings = Settings.from_env(data_dir, embedded_worker=False)
    print("slow worker started", flush=True)
    run_worker(settings, poll_interval=0.1, before_settle=hold(delay))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
