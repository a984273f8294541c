"""Parties custody in the service: a supervised SuperLink, agents' check-ins, rounds.

* :class:`SuperLinkSupervisor` -- ``coopml serve`` starts Flower's SuperLink
  (:class:`~coopml.custody.deployment.Deployment`, extra ``flower``) when the settings
  say so (``superlink``: ``on``, or ``auto`` once a parties-custody market exists),
  restarts it when it dies and stops it, with every process it started (their process
  groups), on shutdown. Its state is in memory only: no message is written to disk.
  Its pid is kept in :data:`PID_FILE`, so that a service restarted after a SIGKILL
  kills the SuperLink left behind (:func:`reap_orphaned_superlink`) before it starts
  its own. Each (re)start draws a new random *incarnation* id, kept in
  :data:`INCARNATION_FILE` (:func:`superlink_incarnation`): every check-in returns it,
  and an agent restarts its SuperNode when it changes (a SuperNode registers with one
  SuperLink only).
* :func:`check_in` / :func:`connected_agents` -- each party's ``coopml agent`` checks in
  (``POST /markets/{id}/agent``) when it starts and every :data:`CHECK_IN_SECONDS`
  while it runs; a party is shown as connected for :data:`CONNECTED_SECONDS` after its
  last check-in. Check-ins are rows of the database (``agent_checkins``), so every
  process of the deployment sees the same agents.
* :func:`run_custody_round` -- a round of a parties-custody market: ``flwr run`` of
  coopml's ServerApp against the supervised SuperLink, with each party's accepted
  :func:`~coopml.custody.flower.agent_key` values (from the hashes of its live tokens),
  so a SuperNode is taken for a party only when it proves it holds the party's token.
  A failure names the party (:class:`CustodyFault`); nothing is settled then.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from coopml.service.context import ServiceContext
from coopml.service.settings import Settings
from coopml.service.storage.models import AgentCheckIn, ApiToken, Market, utcnow

__all__ = [
    "CHECK_IN_SECONDS",
    "CONNECTED_SECONDS",
    "INCARNATION_FILE",
    "CustodyFault",
    "SuperLinkSupervisor",
    "check_in",
    "connected_agents",
    "custody_dir",
    "reap_orphaned_superlink",
    "run_custody_round",
    "superlink_incarnation",
]

log = logging.getLogger("coopml.service.custody")

#: Seconds between two check-ins of a running ``coopml agent``.
CHECK_IN_SECONDS = 20.0
#: A party's agent counts as connected this long after its last check-in.
CONNECTED_SECONDS = 3 * CHECK_IN_SECONDS
#: The file, in :func:`custody_dir`, naming the pid of the service's SuperLink.
PID_FILE = "superlink.pid"
#: The file, in :func:`custody_dir`, naming the running SuperLink's incarnation id.
INCARNATION_FILE = "superlink.incarnation"


def check_in(s: Session, market_id: str, party: str, now: datetime | None = None) -> None:
    """Record that ``party``'s agent of ``market_id`` is running now (one row per
    market and party, written in place: concurrent check-ins cannot collide)."""
    seen = now or utcnow()
    values = {"market_id": market_id, "party": party, "seen_at": seen}
    insert = postgresql_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    s.execute(
        insert(AgentCheckIn)
        .values(**values)
        .on_conflict_do_update(index_elements=["market_id", "party"], set_={"seen_at": seen})
    )


def connected_agents(s: Session, market_id: str, now: datetime | None = None) -> list[str]:
    """The parties of ``market_id`` whose agents checked in within
    :data:`CONNECTED_SECONDS`, sorted (every process of the deployment sees the same,
    from the database).

    Examples
    --------
    >>> from sqlalchemy import create_engine
    >>> from sqlalchemy.orm import Session
    >>> from coopml.service.storage.models import Base, Market
    >>> engine = create_engine("sqlite://")
    >>> Base.metadata.create_all(engine)
    >>> with Session(engine) as s:
    ...     s.add(Market(id="m1", name="x", task="classification", custody="parties"))
    ...     check_in(s, "m1", "alice", now=utcnow() - timedelta(minutes=5))
    ...     check_in(s, "m1", "bob")
    ...     connected_agents(s, "m1")
    ['bob']
    """
    since = (now or utcnow()) - timedelta(seconds=CONNECTED_SECONDS)
    query = (
        select(AgentCheckIn.party)
        .where(AgentCheckIn.market_id == market_id, AgentCheckIn.seen_at >= since)
        .order_by(AgentCheckIn.party)
    )
    return list(s.scalars(query))


def custody_dir(settings: Settings) -> Path:
    """Where the Flower app, Flower's home and the SuperLink's log live."""
    return settings.data_dir / "custody"


def superlink_incarnation(settings: Settings) -> str | None:
    """The id of the service's SuperLink's current incarnation (a random id drawn at
    each start or restart, so that a party's agent sees that its SuperNode's
    registration is gone), or None while none has run (read from a file, so that every
    server process on the data directory answers the same).

    Examples
    --------
    >>> import tempfile
    >>> settings = Settings(Path(tempfile.mkdtemp()))
    >>> superlink_incarnation(settings) is None
    True
    >>> _write_incarnation(custody_dir(settings), "4f2a")
    >>> superlink_incarnation(settings)
    '4f2a'
    """
    try:
        return (custody_dir(settings) / INCARNATION_FILE).read_text().strip() or None
    except OSError:
        return None


def _write_incarnation(root: Path, incarnation: str) -> None:
    """Write ``root``'s :data:`INCARNATION_FILE` atomically (readers never see half)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{INCARNATION_FILE}.{os.getpid()}.tmp"
    tmp.write_text(incarnation)
    tmp.replace(root / INCARNATION_FILE)


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
        self.incarnation: str | None = None
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
            reap_orphaned_superlink(custody_dir(settings))
            # a killed service's incarnation is stale: none until ours has started
            (custody_dir(settings) / INCARNATION_FILE).unlink(missing_ok=True)
        elif self.starts:
            log.warning("the SuperLink died; restarting it")
        self.deployment.start()
        self.starts += 1
        pid = self.deployment.processes["superlink"].pid
        (custody_dir(self.ctx.settings) / PID_FILE).write_text(f"{pid} {os.getpid()}")
        self.incarnation = secrets.token_hex(8)  # the agents restart their SuperNodes
        _write_incarnation(custody_dir(self.ctx.settings), self.incarnation)

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
            (custody_dir(self.ctx.settings) / PID_FILE).unlink(missing_ok=True)
            (custody_dir(self.ctx.settings) / INCARNATION_FILE).unlink(missing_ok=True)


def reap_orphaned_superlink(root: Path) -> bool:
    """Kill the SuperLink (and its process group: the ServerApps of the rounds it ran)
    that a service killed with SIGKILL left behind: it would hold the Fleet API's port
    and run a round no worker waits for. Only the process named in ``root``'s
    :data:`PID_FILE` is touched, only when the service that started it is gone (a
    second server on the same data directory leaves the first one's alone), and only
    while its command line is Flower's SuperLink's (a pid the system reused is left
    alone). True when one was killed."""
    path = root / PID_FILE
    try:
        pid, owner = (int(word) for word in path.read_text().split())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        path.unlink(missing_ok=True)
        return False
    if owner != os.getpid() and _is_service(owner):  # its service is alive: not ours
        return False
    path.unlink(missing_ok=True)
    if b"flower-superlink" not in command:
        return False
    log.warning("killing the SuperLink (pid %d) left behind by a previous service", pid)
    try:
        os.killpg(pid, signal.SIGKILL)  # it leads its own session (Deployment)
    except ProcessLookupError:
        return False
    for _ in range(100):  # until it is gone and its ports are free
        if not Path(f"/proc/{pid}").exists() or _zombie(pid):
            break
        time.sleep(0.05)
    return True


def _is_service(pid: int) -> bool:
    """Whether process ``pid`` is alive and a coopml process (not a reused pid)."""
    try:
        return not _zombie(pid) and b"coopml" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _zombie(pid: int) -> bool:
    """Whether process ``pid`` is gone or a zombie (Linux's /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


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


def _run_on_live_superlink(
    settings: Settings, job: dict[str, Any], app: Path, home: Path, wait: float, tries: int = 3
) -> dict[str, Any]:
    """``flwr run`` the round on the SuperLink this service runs now, and run it again
    (with a fresh output file) if that SuperLink is replaced before the result comes: a
    restarted service reaps the SuperLink a killed one left behind, and a round sent to
    that one would otherwise wait for a result that never comes; so is a round whose
    ServerApp died without a result (:class:`~coopml.custody.flower.RunLost`)."""
    from coopml.custody.flower import RunLost, run_job

    for attempt in range(tries):
        deadline = time.monotonic() + 60.0
        while (incarnation := superlink_incarnation(settings)) is None:
            if time.monotonic() > deadline:
                raise CustodyFault("the service's SuperLink did not start within 60 s")
            time.sleep(0.5)
        output = Path(job["output"]).with_name(
            f"{Path(job['output']).stem.rsplit('-', 1)[0]}-{secrets.token_hex(4)}.json"
        )
        try:
            return run_job(
                {**job, "output": str(output)},
                app,
                home,
                wait=wait,
                alive=lambda: superlink_incarnation(settings) == incarnation,
            )
        except RunLost as exc:
            log.warning("%s; running the round again", exc)
            if attempt == tries - 1:
                raise
        finally:
            for path in (output, output.with_suffix(".job.json")):
                path.unlink(missing_ok=True)
    raise AssertionError("unreachable")


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

    settings = ctx.settings
    root = custody_dir(settings)
    home, app = root / "flwr-home", root / "app"
    if settings.superlink == "off" or not (home / "config.toml").exists():
        raise CustodyFault(
            "parties-custody rounds need the service's SuperLink: start `coopml serve` "
            f"with superlink 'auto' or 'on' (COOPML_SUPERLINK); it is {settings.superlink!r}"
        )
    # one output per attempt: a round re-run after its worker died never reads what a
    # ServerApp of an earlier attempt may still write
    output = root / f"round-{round_id}-{secrets.token_hex(4)}.json"
    timeout = settings.agent_timeout
    full = {
        **job,
        "keys": agent_keys(ctx, party_ids),
        "timeout": timeout,
        "connect": timeout,
        "output": str(output),
    }
    result = _run_on_live_superlink(settings, full, app, home, wait=max(600.0, 50 * timeout))
    if not result.get("ok"):
        party = result.get("party")
        raise CustodyFault(str(result.get("error")), None if party is None else str(party))
    return result
