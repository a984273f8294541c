"""Flower's app processes, forked from a warm parent (flwr 1.32; extra ``flower``).

A SuperNode's SuperExec starts one ``flwr-clientapp`` process for every message its
node receives, and a SuperLink's SuperExec one ``flwr-serverapp`` process for every
run. Each new process imports Python's site, gRPC, Flower, NumPy and coopml before it
reads its input: about 1.4 CPU seconds for the agent's ClientApp (a federated Newton
round sends each agent about 16 messages) and 6.5 for the operator's ServerApp (one
per round). This module keeps Flower's process per message and per run and removes the
import: a *prefork parent* (``python -m coopml.custody.prefork COMMAND``), started once
by the SuperExec, imports all of that and then, for each launch, forks a child that
runs Flower's own entry point with the command line Flower built (the pattern of a
prefork server, or of Android's zygote).

:func:`install`, called by the SuperExec of :mod:`coopml.custody.polling`, replaces the
``subprocess`` module that Flower's ``SubprocessExecutor`` launches with (as
:class:`Launcher`): the command of :data:`APPS` that its plugin type launches goes to the
prefork parent, one JSON line on its standard input; any other command, and every
command once the parent is gone, is Flower's own ``subprocess.Popen``. Nothing else
changes: the child talks to its SuperNode or SuperLink over Flower's AppIo API with
Flower's token, runs Flower's code and exits; it watches the SuperExec
(``--parent-pid``) as Flower's process would. The parent holds no thread and no gRPC
channel when it forks, so each child starts as a fresh process would, only with its
modules already imported. The parent exits when the SuperExec does (its standard input
closes).

Measured in docs/benchmarks.md ("Parties custody").
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import IO, Any

__all__ = ["APPS", "PLUGINS", "Launcher", "install", "serve"]

#: For each command forked: Flower's entry point (module, function) and what the
#: prefork parent imports before it forks: Flower's process, the app it loads
#: (``coopml.custody.agent:app``, ``coopml.custody.flower:app``: Flower's ``load_app``
#: takes a module already in ``sys.modules`` as it is) and what the app's handlers import.
APPS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "flwr-clientapp": (
        "flwr.supernode.cli",
        "flwr_clientapp",
        (
            "coopml.custody.agent",
            "coopml.custody.flower",
            "coopml.custody.learners",
            "coopml.custody.privacy_state",
            "coopml.learning.fast",
            "coopml.learning.fast.logistic_loss",
            "sklearn.dummy",
            "sklearn.pipeline",
            "sklearn.preprocessing",
        ),
    ),
    "flwr-serverapp": (
        "flwr.server.serverapp",
        "flwr_serverapp",
        ("coopml.custody.flower", "coopml.custody.learners", "coopml.custody.market"),
    ),
}

#: The command each SuperExec plugin type (``--plugin-type``) launches.
PLUGINS = {"clientapp": "flwr-clientapp", "serverapp": "flwr-serverapp"}


class Launcher(ModuleType):
    """The ``subprocess`` module as Flower's ``SubprocessExecutor`` sees it: ``Popen``
    of ``command`` writes the command line to the prefork parent; everything else is the
    real module's.

    Examples
    --------
    >>> launcher = Launcher("flwr-clientapp", parent=None)
    >>> launcher.DEVNULL is subprocess.DEVNULL
    True
    """

    def __init__(self, command: str, parent: subprocess.Popen[bytes] | None) -> None:
        super().__init__("subprocess")
        self.command = command
        self.parent = parent
        self._lock = threading.Lock()

    def Popen(self, args: Sequence[str], **kwargs: Any) -> Any:  # subprocess.Popen's name
        args = [str(a) for a in args]
        if args and args[0] == self.command and self._send(args, kwargs):
            return None  # Flower does not keep the Popen object
        return subprocess.Popen(args, **kwargs)

    def _send(self, args: list[str], kwargs: dict[str, Any]) -> bool:
        parent = self.parent
        if parent is None or parent.stdin is None or parent.poll() is not None:
            return False
        quiet = kwargs.get("stdout") is subprocess.DEVNULL
        line = json.dumps({"argv": args, "quiet": quiet}) + "\n"
        try:
            with self._lock:
                parent.stdin.write(line.encode())
                parent.stdin.flush()
        except OSError:
            return False
        return True

    def __getattr__(self, name: str) -> object:
        return getattr(subprocess, name)


def install(plugin: str | None) -> Launcher | None:
    """For a SuperExec of plugin type ``plugin``: start the prefork parent of the command
    it launches and give Flower's ``SubprocessExecutor`` a :class:`Launcher`; ``None``
    (Flower's launches unchanged) for another plugin type, off Linux (forking after
    gRPC and, on macOS, the Objective-C runtime are loaded is not safe there), or where
    the executor module no longer holds ``subprocess`` as expected."""
    command = PLUGINS.get(plugin or "")
    if command is None or not sys.platform.startswith("linux"):
        return None  # elsewhere (macOS: fork after gRPC and Objective-C), Flower's own way
    try:
        import flwr.supercore.superexec.executor.subprocess_executor as executor
    except ImportError:
        return None
    if getattr(executor, "subprocess", None) is not subprocess:
        return None
    parent = subprocess.Popen(
        [sys.executable, "-P", "-m", "coopml.custody.prefork", command], stdin=subprocess.PIPE
    )
    launcher = Launcher(command, parent)
    executor.subprocess = launcher
    return launcher


def _child(entry: Callable[[], object], argv: list[str], quiet: bool) -> None:
    """In a forked child: run Flower's ``entry`` with ``argv``; never returns."""
    code = 1
    try:
        try:
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            if quiet:
                os.dup2(null, 1)
                os.dup2(null, 2)
            sys.argv = argv
            result = entry()
            code = result if isinstance(result, int) else 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:  # reported, then the child ends as a process would
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    finally:
        os._exit(code)


def _reap() -> None:
    """Collect the children that have ended (no zombies; their exit codes, like those
    of Flower's own launches, are read by no one)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _launch(entry: Callable[[], object] | None, argv: list[str], quiet: bool) -> None:
    """Fork a child running ``entry``; start Flower's program where there is no entry,
    a thread runs (it would not survive a fork) or the fork fails."""
    if entry is not None and threading.active_count() == 1:
        try:
            pid = os.fork()
        except OSError:
            pid = -1
        if pid == 0:
            _child(entry, argv, quiet)
        if pid > 0:
            return
    out = subprocess.DEVNULL if quiet else None
    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def serve(command: str, requests: IO[bytes]) -> None:
    """The prefork parent of ``command`` (a key of :data:`APPS`): import what it needs,
    then fork one child per JSON line of ``requests`` (``{"argv": [...], "quiet":
    bool}``) until it closes. Where the imports fail (another Flower), or a thread runs
    (it would not survive a fork), each launch starts Flower's program instead: no
    launch handed to the parent is lost."""
    from coopml.custody.polling import shorten

    module, function, warm = APPS[command]
    entry: Callable[[], object] | None = None
    try:
        entry = getattr(importlib.import_module(module), function)
        for name in warm:
            importlib.import_module(name)
        shorten()  # the apps' object pulls: Flower's backoff from POLL (coopml.custody.polling)
    except Exception:  # reported; every launch then starts the program
        import traceback

        traceback.print_exc()
        entry = None
    for line in requests:
        _reap()
        try:
            request = json.loads(line)
            _launch(entry, [str(a) for a in request["argv"]], bool(request.get("quiet")))
        except Exception:  # reported; the parent goes on with the next launch
            import traceback

            traceback.print_exc()


if __name__ == "__main__":
    try:
        serve(sys.argv[1], sys.stdin.buffer)
    except KeyboardInterrupt:  # a terminal's Ctrl-C reaches the whole group: end quietly
        sys.exit(130)
