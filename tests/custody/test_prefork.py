"""Flower's app processes forked from a warm parent (coopml.custody.prefork): the
command a SuperExec launches runs Flower's own entry point in a forked child; every
other command, and every command once the parent is gone, is a real process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("flwr")
from coopml.custody import polling, prefork


def _run(code: str) -> subprocess.CompletedProcess[str]:
    # PATH without the environment's scripts: Flower's `flwr-clientapp` cannot be
    # started as a program, so its help can only come from a forked child.
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "FLWR_TELEMETRY_ENABLED": "0"},
    )


def test_the_superexecs_command_runs_flowers_entry_point_in_a_forked_child() -> None:
    out = _run(
        """
        import shutil, subprocess
        import flwr.supercore.superexec.executor.subprocess_executor as executor
        from coopml.custody import prefork
        assert shutil.which("flwr-clientapp") is None
        launcher = prefork.install("clientapp")
        assert executor.subprocess is launcher and launcher.parent.poll() is None
        assert launcher.Popen(["flwr-clientapp", "--help"]) is None  # handed to the parent
        launcher.Popen(["flwr-clientapp", "--help"], stdout=subprocess.DEVNULL)  # quiet
        real = launcher.Popen(["echo", "a real process"])  # any other command
        assert real.wait() == 0
        launcher.parent.stdin.close()  # the SuperExec ends: so does the parent
        assert launcher.parent.wait(timeout=60) == 0
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("usage: flwr-clientapp") == 1  # Flower's own help, once
    assert "a real process" in out.stdout


def test_other_plugin_types_and_a_gone_parent_launch_real_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert prefork.install(None) is None and prefork.install("simulation") is None
    with monkeypatch.context() as m:  # off Linux: Flower's own launches
        m.setattr(sys, "platform", "darwin")
        assert prefork.install("clientapp") is None
    launcher = prefork.Launcher("flwr-clientapp", parent=None)
    with pytest.raises(FileNotFoundError):  # Flower's command, started as a program
        launcher.Popen(["/nonexistent/flwr-clientapp"])
    out = _run(
        """
        from coopml.custody import prefork
        launcher = prefork.install("serverapp")
        launcher.parent.kill(); launcher.parent.wait()
        try:
            launcher.Popen(["flwr-serverapp", "--help"])
        except FileNotFoundError:
            print("started as a program")
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "started as a program" in out.stdout


def test_each_app_names_flowers_entry_point() -> None:
    import importlib

    for command, (module, function, warm) in prefork.APPS.items():
        assert command in prefork.PLUGINS.values()
        assert callable(getattr(importlib.import_module(module), function)), command
        assert all(importlib.util.find_spec(name) for name in warm), command


def test_the_plugin_type_is_read_from_the_superexecs_options() -> None:
    args = ["--insecure", "--plugin-type", "clientapp", "--parent-pid", "1"]
    assert polling._option(args, "--plugin-type") == "clientapp"
    assert polling._option(["--plugin-type=serverapp"], "--plugin-type") == "serverapp"
    assert polling._option(["--plugin-type"], "--plugin-type") is None


def test_a_parent_whose_imports_fail_starts_flowers_program_for_every_launch(
    tmp_path: Path,
) -> None:
    """Another Flower (an entry point that is gone): the launch handed to the parent
    runs the program found on PATH instead of being lost."""
    program = tmp_path / "flwr-clientapp"
    program.write_text(f'#!/bin/sh\necho started as a program "$@" > {tmp_path}/out\n')
    program.chmod(0o755)
    code = f"""
        import io, json, time
        from pathlib import Path
        from coopml.custody import prefork
        prefork.APPS["flwr-clientapp"] = ("no.such.flower.module", "main", ())
        line = json.dumps({{"argv": ["flwr-clientapp", "--token", "T"], "quiet": False}})
        prefork.serve("flwr-clientapp", io.BytesIO(line.encode() + b"\\n"))
        for _ in range(100):
            if Path("{tmp_path}/out").exists():
                break
            time.sleep(0.1)
        """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "FLWR_TELEMETRY_ENABLED": "0"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ModuleNotFoundError" in out.stderr  # the failure is reported
    assert (tmp_path / "out").read_text().strip() == "started as a program --token T"
