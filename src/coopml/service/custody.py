"""Parties custody in the service: a supervised SuperLink, agents' check-ins, rounds.

* :class:`SuperLinkSupervisor` -- ``coopml serve`` starts Flower's SuperLink
  (:class:`~coopml.custody.deployment.Deployment`, extra ``flower``) when the settings
  say so (``superlink``: ``on``, or ``auto`` once a parties-custody market exists),
  restarts it when it dies and stops it, with every process it started (their process
  groups), on shutdown. Its state is in memory only: no message is written to disk.
* :func:`check_in` / :func:`connected_agents` -- each party's ``coopml agent`` checks in
  (``POST /markets/{id}/agent``) when it starts and every :data:`CHECK_IN_SECONDS`
  while it runs; a party is shown as connected for :data:`CONNECTED_SECONDS` after its
  last check-in (in this server process).
* :func:`run_custody_round` -- a round of a parties-custody market: ``flwr run`` of
  coopml's ServerApp against the supervised SuperLink, with each party's accepted
  :func:`~coopml.custody.flower.agent_key` values (from the hashes of its live tokens),
  so a SuperNode is taken for a party only when it proves it holds the party's token.
  A failure names the party (:class:`CustodyFault`); nothing is settled then.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select

from coopml.service.context import ServiceContext
from coopml.service.settings import Settings
from coopml.service.storage.models import ApiToken, Market, utcnow

__all__ = [
    "CHECK_IN_SECONDS",
    "CONNECTED_SECONDS",
    "CustodyFault",
    "SuperLinkSupervisor",
    "check_in",
    "connected_agents",
    "custody_dir",
    "run_custody_round",
]

log = logging.getLogger("coopml.service.custody")

#: Seconds between two check-ins of a running ``coopml agent``.
CHECK_IN_SECONDS = 20.0
#: A party's agent counts as connected this long after its last check-in.
CONNECTED_SECONDS = 3 * CHECK_IN_SECONDS

_check_ins: dict[tuple[str, str], float] = {}
_lock = threading.Lock()


def check_in(market_id: str, party: str) -> None:
    """Record that ``party``'s agent of ``market_id`` is running now."""
    with _lock:
        _check_ins[(market_id, party)] = time.monotonic()


def connected_agents(market_id: str) -> list[str]:
    """The parties of ``market_id`` whose agents checked in within
    :data:`CONNECTED_SECONDS`, sorted.

    Examples
    --------
    >>> check_in("m-example", "alice")
    >>> connected_agents("m-example")
    ['alice']
    """
    now = time.monotonic()
    with _lock:
        return sorted(
            party
            for (market, party), seen in _check_ins.items()
            if market == market_id and now - seen <= CONNECTED_SECONDS
        )


def custody_dir(settings: Settings) -> Path:
    """Where the Flower app, Flower's home and the SuperLink's log live."""
    return settings.data_dir / "custody"


class CustodyFault(RuntimeError):
    """A parties-custody round failed; ``party`` names the party at fault, if one is."""

    def __init__(self, message: str, party: str | None = None) -> None:
        super().__init__(message)
        self.party = party


class SuperLinkSupervisor:
    """Starts, watches and stops the service's SuperLink.

    Parameters
    ----------
    ctx : ServiceContext
    interval : float, default 1
        Seconds between two checks (is it needed, is it alive).
    """

    def __init__(self, ctx: ServiceContext, interval: float = 1.0) -> None:
        self.ctx, self.interval = ctx, interval
        self.deployment: Any = None
        self.starts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def needed(self) -> bool:
        """Whether a SuperLink should run now (the ``superlink`` setting)."""
        mode = self.ctx.settings.superlink
        if mode != "auto":
            return mode == "on"
        with self.ctx.db.session() as s:
            return (
                s.scalar(select(Market.id).where(Market.custody == "parties").limit(1)) is not None
            )

    def check(self) -> None:
        """Start the SuperLink if it is needed and not running (again, if it died)."""
        if self.deployment is not None and self.deployment.alive():
            return
        if not self.needed():
            return
        if self.deployment is None:
            from coopml.custody.deployment import Deployment

            settings = self.ctx.settings
            self.deployment = Deployment(
                custody_dir(settings),
                fleet_address=settings.fleet_api_address,
                tls=settings.superlink_tls,
                persist=False,  # the parties' statistics never touch the disk
            )
        elif self.starts:
            log.warning("the SuperLink died; restarting it")
        self.deployment.start()
        self.starts += 1

    def start(self) -> SuperLinkSupervisor:
        """Check now, then every ``interval`` seconds in a thread."""
        self.check()
        self._thread = threading.Thread(target=self._watch, name="coopml-superlink", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # keep supervising: the next check tries again
                log.exception("could not start the SuperLink")

    def stop(self) -> None:
        """Stop watching and terminate the SuperLink and every process it started."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.deployment is not None:
            self.deployment.close()


def agent_keys(ctx: ServiceContext, party_ids: dict[str, str]) -> dict[str, list[str]]:
    """Each party's accepted agent keys: one per live (unrevoked, unexpired) token."""
    from coopml.custody.flower import agent_key

    now = utcnow()
    keys: dict[str, list[str]] = {name: [] for name in party_ids}
    name_of = {pid: name for name, pid in party_ids.items()}
    with ctx.db.session() as s:
        rows = s.scalars(
            select(ApiToken).where(
                ApiToken.party_id.in_(list(name_of)),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
            )
        )
        for row in rows:
            keys[name_of[str(row.party_id)]].append(agent_key(row.token_hash))
    return keys


def run_custody_round(
    ctx: ServiceContext, round_id: str, job: dict[str, Any], party_ids: dict[str, str]
) -> dict[str, Any]:
    """Run one parties-custody round through the service's SuperLink and return the
    ServerApp's result (``settlement``, ``tables``, bytes per party).

    ``job``: ``names``, ``learner``, ``validator``, ``scorer``, ``rule``, ``price``,
    ``empty_value`` (see :func:`~coopml.custody.flower.run_job`). Raises
    :class:`CustodyFault` naming the party when an agent is absent after the settings'
    ``agent_timeout`` or its replies fail the checks.
    """
    from coopml.custody.flower import run_job

    settings = ctx.settings
    root = custody_dir(settings)
    home, app = root / "flwr-home", root / "app"
    if settings.superlink == "off" or not (home / "config.toml").exists():
        raise CustodyFault(
            "parties-custody rounds need the service's SuperLink: start `coopml serve` "
            f"with superlink 'auto' or 'on' (COOPML_SUPERLINK); it is {settings.superlink!r}"
        )
    output = root / f"round-{round_id}.json"
    timeout = settings.agent_timeout
    full = {
        **job,
        "keys": agent_keys(ctx, party_ids),
        "timeout": timeout,
        "connect": timeout,
        "output": str(output),
    }
    job_file = output.with_suffix(".job.json")
    try:
        # every exchange may wait `timeout`; a Newton method makes many
        result = run_job(full, app, home, wait=max(600.0, 50 * timeout))
    finally:
        for path in (output, job_file):
            path.unlink(missing_ok=True)
    if not result.get("ok"):
        party = result.get("party")
        raise CustodyFault(str(result.get("error")), None if party is None else str(party))
    return result
