"""Flower's fixed polling sleeps, shortened (flwr 1.32; extra ``flower``).

Flower's deployment runtime waits on sleeps that no option sets, and a parties-custody
round pays them at every round trip (a federated Newton round makes about 16):

* an idle SuperNode asks the SuperLink for a message every 3 s, and waits for its
  ClientApp's reply in steps of 0.5 s (``flwr/supernode/start_client_internal.py``);
* a SuperExec, which starts a ``flwr-clientapp`` (or ``flwr-serverapp``) process for
  each message (or run), looks for one every 1 s
  (``flwr/supercore/superexec/run_superexec.py``);
* whoever pulls a message's objects (a SuperNode, a ClientApp, the ServerApp) asks
  again for one not there yet after 1 s, then 2, 4, up to 10 s
  (``flwr/supercore/inflatable/inflatable_utils.py``, :data:`BACKOFF`).

``python -m coopml.custody.polling supernode ARGS...`` runs ``flower-supernode ARGS...``
and ``python -m coopml.custody.polling superexec ARGS...`` runs ``flower-superexec
ARGS...``, each with every sleep of those two modules capped at :data:`POLL` seconds
and the object pulls' backoff starting at :data:`POLL` (:func:`shorten`; the ClientApp
and ServerApp processes, forked by :mod:`coopml.custody.prefork`, inherit it). A
SuperNode and a SuperLink start their SuperExec by the name ``flower-superexec``:
:func:`shim` writes one that runs the shortened SuperExec, for the front of their
``PATH``. Nothing else of Flower changes (messages, their order, retries, TLS and node
authentication are Flower's own); a module that no longer holds ``time`` as expected is
left as it is, and its sleeps are Flower's.

Measured in docs/benchmarks.md ("Parties custody"): the sleeps were about 3 s of a
round trip.
"""

from __future__ import annotations

import importlib
import os
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["BACKOFF", "POLL", "main", "shim", "shorten"]

#: The longest sleep left in the patched modules, in seconds (a SuperNode then asks its
#: SuperLink for messages up to 10 times a second while idle).
POLL = 0.1

#: Flower's modules whose fixed sleeps are capped.
MODULES = ("flwr.supernode.start_client_internal", "flwr.supercore.superexec.run_superexec")

#: Flower's functions that pull a message's objects (module, functions): an object not
#: there yet is asked for again after a backoff that starts at 1 s and doubles up to 10 s
#: (``initial_backoff``, ``backoff_cap``); it starts at :data:`POLL` instead.
BACKOFF = (
    "flwr.supercore.inflatable.inflatable_utils",
    ("pull_objects", "pull_and_inflate_object_from_tree"),
)


class ShortSleeps(ModuleType):
    """The ``time`` module as one Flower module sees it: every ``sleep`` at most
    ``longest`` seconds, everything else the real module's.

    Examples
    --------
    >>> clock = ShortSleeps(0.01)
    >>> start = time.monotonic(); clock.sleep(3); time.monotonic() - start < 1
    True
    >>> clock.monotonic is time.monotonic
    True
    """

    def __init__(self, longest: float) -> None:
        super().__init__("time")
        self.longest = float(longest)

    def sleep(self, seconds: float) -> None:
        time.sleep(min(float(seconds), self.longest))

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


def shorten(longest: float = POLL) -> list[str]:
    """Cap the sleeps of :data:`MODULES` at ``longest`` seconds and start the backoff of
    :data:`BACKOFF` there; the modules and functions patched (one that cannot be
    imported, or whose ``time`` is not the ``time`` module, is left alone)."""
    patched = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "time", None) is time:
            module.time = ShortSleeps(longest)  # type: ignore[attr-defined]
            patched.append(name)
    return patched + _shorten_backoff(longest)


def _shorten_backoff(longest: float) -> list[str]:
    """Start the object pulls' backoff of :data:`BACKOFF` at ``longest`` seconds (it
    doubles up to Flower's cap, so a pull gives up no sooner than Flower's); the
    functions patched (one whose defaults differ is left alone)."""
    try:
        module = importlib.import_module(BACKOFF[0])
    except ImportError:
        return []
    patched = []
    for name in BACKOFF[1]:
        defaults = getattr(getattr(module, name, None), "__kwdefaults__", None) or {}
        if defaults.get("initial_backoff") == 1 and defaults.get("backoff_cap") == 10:
            defaults["initial_backoff"] = longest
            patched.append(f"{BACKOFF[0]}.{name}")
    return patched


def shim(directory: str | os.PathLike[str]) -> Path:
    """Write ``flower-superexec`` into ``directory`` (created if missing): it runs the
    shortened SuperExec with this Python. Put ``directory`` first on the ``PATH`` of a
    SuperNode or SuperLink."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    script = path / "flower-superexec"
    script.write_text(
        f"#!{sys.executable}\nfrom coopml.custody.polling import main\n\n"
        'main(["superexec", *__import__("sys").argv[1:]])\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def command(which: str) -> list[str]:
    """The command line that runs Flower's ``flower-<which>`` with shortened sleeps."""
    # -P: the working directory is not on sys.path (as for Flower's own programs)
    return [sys.executable, "-P", "-m", "coopml.custody.polling", which]


def _option(args: Sequence[str], name: str) -> str | None:
    """The value of ``name`` in ``args`` (``--name VALUE`` or ``--name=VALUE``)."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """``supernode ARGS...`` or ``superexec ARGS...``: Flower's command, shortened."""
    which, *args = list(sys.argv[1:] if argv is None else argv) or [""]
    if which == "supernode":
        from flwr.supernode.cli import flower_supernode as entry
    elif which == "superexec":
        from flwr.supercore.cli import flower_superexec as entry
    else:
        raise SystemExit(
            f"usage: python -m coopml.custody.polling supernode|superexec ARGS; got {which!r}"
        )
    shorten()
    if which == "superexec":  # app processes forked warm (coopml.custody.prefork)
        from coopml.custody.prefork import install

        install(_option(args, "--plugin-type"))
    sys.argv = [f"flower-{which}", *args]
    entry()


if __name__ == "__main__":
    main()
