"""Flower's fixed polling sleeps, shortened (coopml.custody.polling): only the sleeps of
the two modules named, in the processes that run Flower's own entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")
from coopml.custody import polling


def test_only_sleeps_are_capped() -> None:
    clock = polling.ShortSleeps(0.05)
    started = time.monotonic()
    clock.sleep(3)
    clock.sleep(0.5)
    assert time.monotonic() - started < 1.0
    assert clock.time is time.time and clock.monotonic is time.monotonic


def test_flowers_modules_are_patched_in_a_fresh_process() -> None:
    code = (
        "import time\n"
        "from coopml.custody import polling\n"
        "print(polling.shorten())\n"
        "import flwr.supernode.start_client_internal as m\n"
        "import flwr.supercore.superexec.run_superexec as r\n"
        "assert m.time is not time and r.time is not time and m.time.time is time.time\n"
        "t = time.monotonic(); m.time.sleep(3); r.time.sleep(1)\n"
        "assert time.monotonic() - t < 0.5\n"
        "from flwr.supercore.inflatable import inflatable_utils as u\n"
        "for f in (u.pull_objects, u.pull_and_inflate_object_from_tree):\n"
        "    assert f.__kwdefaults__['initial_backoff'] == polling.POLL\n"
        "    assert f.__kwdefaults__['backoff_cap'] == 10\n"
        "print(polling.shorten())  # already patched: nothing more\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    first, second = out.stdout.splitlines()[-2:]
    pulls = [f"{polling.BACKOFF[0]}.{name}" for name in polling.BACKOFF[1]]
    assert first == str([*polling.MODULES, *pulls]) and second == "[]"


def test_the_shim_runs_flowers_superexec(tmp_path: Path) -> None:
    directory = polling.shim(tmp_path / "bin")
    script = directory / "flower-superexec"
    assert os.access(script, os.X_OK)
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--appio-api-address" in out.stdout  # Flower's own SuperExec's options


def test_an_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit, match=r"supernode\|superexec ARGS; got .superlink."):
        polling.main(["superlink"])
