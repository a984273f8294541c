"""Flower's deployment runtime on this machine: a SuperLink, SuperNodes, runs.

:class:`Deployment` starts and supervises Flower's own processes (extra ``flower``):
``flower-superlink`` with every API bound to a free port on 127.0.0.1, one
``flower-supernode`` per party (:meth:`Deployment.add_node`: its node config names the
party's files, read by :func:`~coopml.custody.agent.agent_from_config`), and a run of
coopml's Flower app with ``flwr run`` (:meth:`Deployment.run`, which returns what the
ServerApp wrote). Telemetry is off. :meth:`Deployment.close` (or leaving the ``with``
block, also on an error) terminates every process it started, then kills what is left.

By default the runtime is insecure (no TLS, no node authentication), which is refused
unless every address is on loopback. With ``tls=(ca, certificate, key)`` the SuperLink
serves TLS. Flower's TLS (``--ssl-certfile``, ``--ssl-keyfile``, ``--ssl-ca-certfile``
on the SuperLink, ``--root-certificates`` on the SuperNodes) and SuperNode
authentication (``--enable-supernode-auth``, ``flwr supernode register``) are turned
on with Flower's own options: see docs/custody.md.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from coopml.custody.flower import run_job, write_app
from coopml.custody.polling import command as polling_command
from coopml.custody.polling import shim

__all__ = ["Deployment", "free_port", "is_loopback"]

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` names this machine's loopback interface.

    Examples
    --------
    >>> is_loopback("127.0.0.1:9092"), is_loopback("0.0.0.0:9092")
    (True, False)
    """
    return address.rpartition(":")[0] in LOOPBACK


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    """A SuperLink on loopback, the parties' SuperNodes, and coopml's Flower app.

    Parameters
    ----------
    directory : path, optional
        Where the app, Flower's home, logs and results go (default: a temporary
        directory, removed by :meth:`close`).
    fleet_address : str, optional
        ``HOST:PORT`` of the Fleet API, the one address SuperNodes connect to (default:
        a free port on 127.0.0.1). The other APIs are always on 127.0.0.1.
    tls : (ca, certificate, key), optional
        PEM files of Flower's TLS (``--ssl-ca-certfile``, ``--ssl-certfile``,
        ``--ssl-keyfile``); ``None``: insecure, allowed on loopback only.
    persist : bool, default True
        Keep the SuperLink's state (its messages too) in ``superlink.db`` in
        ``directory``; ``False``: in memory only, nothing written to disk.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        fleet_address: str | None = None,
        tls: tuple[str, str, str] | None = None,
        persist: bool = True,
    ) -> None:
        if fleet_address is not None and tls is None and not is_loopback(fleet_address):
            raise ValueError(
                "parameter 'fleet_address' must be on loopback (127.0.0.1:PORT) without TLS; "
                f"got {fleet_address!r}: pass tls=(ca, certificate, key) to serve further"
            )
        self.tls, self.persist = tls, persist
        self._tmp = None if directory is not None else tempfile.TemporaryDirectory()
        self.root = Path(directory if directory is not None else self._tmp.name)  # type: ignore[union-attr]
        self.root.mkdir(parents=True, exist_ok=True)
        self.home = self.root / "flwr-home"
        self.home.mkdir(exist_ok=True)
        self.bin = Path(sys.executable).parent
        # the SuperLink and SuperNodes start their SuperExec by name: the shortened one
        # first on PATH (coopml.custody.polling)
        shims = shim(self.root / "bin")
        self.env = {
            **os.environ,
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_HOME": str(self.home),
            "PATH": os.pathsep.join([str(shims), str(self.bin), os.environ.get("PATH", "")]),
        }
        self.ports = {k: free_port() for k in ("serverappio", "fleet", "control", "health")}
        self.fleet_address = fleet_address or f"127.0.0.1:{self.ports['fleet']}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.app = write_app(self.root / "app")
        self._runs = 0

    # ------------------------------------------------------------------ processes
    def start(self) -> Deployment:
        """Start the SuperLink (every API but the Fleet API on 127.0.0.1); again after
        it died (:meth:`alive`), on the same ports."""
        p = self.ports
        if "superlink" in self.processes:  # a dead one: what it started goes too
            self._kill(self.processes.pop("superlink"), signal.SIGKILL)
        security = ["--insecure"]
        if self.tls is not None:
            ca, certificate, key = self.tls
            security = ["--ssl-ca-certfile", ca, "--ssl-certfile", certificate]
            security += ["--ssl-keyfile", key]
        database = ["--database", str(self.root / "superlink.db")] if self.persist else []
        self._spawn(
            "superlink",
            [
                "flower-superlink",
                *security,
                "--disable-runtime-dependency-installation",
                "--serverappio-api-address",
                f"127.0.0.1:{p['serverappio']}",
                "--fleet-api-address",
                self.fleet_address,
                "--control-api-address",
                f"127.0.0.1:{p['control']}",
                "--health-server-address",
                f"127.0.0.1:{p['health']}",
                *database,
            ],
        )
        trust = "insecure = true" if self.tls is None else f"root-certificates = {self.tls[0]!r}"
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "coopml"\n\n[superlink.coopml]\n'
            f'address = "127.0.0.1:{p["control"]}"\n{trust}\n'
        )
        return self

    def alive(self) -> bool:
        """Whether the SuperLink started by :meth:`start` is still running."""
        process = self.processes.get("superlink")
        return process is not None and process.poll() is None

    def add_node(self, party: str, node_config: Mapping[str, Any]) -> None:
        """Start a SuperNode for ``party`` with ``node_config`` (``train``,
        ``validation``, ``target``, ``features``, ``log``: see
        :func:`~coopml.custody.agent.agent_from_config`)."""
        config = {"party": party, **node_config}
        text = " ".join(f"{k}={json.dumps(str(v))}" for k, v in config.items())
        self._spawn(
            f"node-{party}",
            [
                *polling_command("supernode"),  # Flower's SuperNode, shorter sleeps
                "--insecure",
                "--superlink",
                self.fleet_address,
                "--clientappio-api-address",
                f"127.0.0.1:{free_port()}",
                "--node-config",
                text,
            ],
        )

    def stop_node(self, party: str) -> None:
        """Kill ``party``'s SuperNode (and its ClientApp processes) at once."""
        self._kill(self.processes.pop(f"node-{party}"), signal.SIGKILL)

    def run(self, job: Mapping[str, Any], wait: float = 600.0) -> dict[str, Any]:
        """Run one parties-custody round (see :func:`~coopml.custody.flower.run_job`)
        and return what the ServerApp wrote."""
        self._runs += 1
        output = self.root / f"result-{self._runs}.json"
        return run_job({**job, "output": str(output)}, self.app, self.home, wait=wait)

    def log(self, name: str) -> str:
        """The output of process ``name`` (``"superlink"``, ``"node-<party>"``)."""
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, name: str, command: list[str]) -> None:
        log = open(self.root / f"{name}.log", "wb")
        if not Path(command[0]).is_absolute():
            command[0] = str(self.bin / command[0])
        self.processes[name] = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    @staticmethod
    def _kill(process: subprocess.Popen[bytes], sig: int) -> None:
        try:
            os.killpg(process.pid, sig)  # its own session: the ClientApps it started too
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Terminate every process started (SIGTERM, up to 10 s to exit), then SIGKILL
        what is left of each process group: Flower's ServerApp and ClientApp processes
        (children of the SuperLink and SuperNodes) outlive their parents otherwise."""
        for process in self.processes.values():
            self._kill(process, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for process in self.processes.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            self._kill(process, signal.SIGKILL)
            process.wait()
        self.processes.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
