"""docs/service.md runs: its ```bash blocks, in order, against a real ``coopml serve``.

The block that starts the server is run in the background (on a free loopback port
instead of 8000); every other block runs in one ``bash -euo pipefail`` script, in a
temporary directory, with ``coopml`` and ``python`` being this interpreter's.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


#: The walkthrough ends where this heading begins (later blocks, e.g. the load
#: benchmark, are reference material, tested by their own tests).
END = "\n## The dashboard"


def bash_blocks(text: str) -> list[str]:
    """The ```bash blocks of the walkthrough part of the page, in order."""
    assert END in text, f"docs/service.md lost its {END.strip()!r} heading"
    walkthrough = text.split(END)[0]
    return re.findall(r"^```bash\n(.*?)^```", walkthrough, flags=re.S | re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _shims(bin_dir: Path) -> None:
    bin_dir.mkdir()
    py = shlex.quote(sys.executable)
    (bin_dir / "coopml").write_text(
        f'#!/bin/sh\nexec {py} -c "from coopml.cli import main; main()" "$@"\n'
    )
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {py} "$@"\n')
    for shim in bin_dir.iterdir():
        shim.chmod(0o755)


def test_walkthrough_blocks_are_found():
    blocks = bash_blocks(DOC.read_text())
    assert sum("coopml serve" in b for b in blocks) == 1
    assert len(blocks) >= 6
    assert "![dashboard](img/service_dashboard.png)" in DOC.read_text()


@pytest.mark.slow
def test_docs_service_walkthrough_runs(tmp_path):
    """About 25 ``coopml`` processes and one round: 1-2 minutes of CPU, hence slow."""
    blocks = bash_blocks(DOC.read_text())
    port = str(_free_port())
    serve_block = next(b for b in blocks if "coopml serve" in b)
    script = "\n".join(b for b in blocks if b is not serve_block).replace("8000", port)
    _shims(tmp_path / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPML_")}
    env.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        RAY_USAGE_STATS_ENABLED="0",
        FLWR_TELEMETRY_ENABLED="0",
        COLUMNS="160",
    )
    serve_cmd = serve_block.strip() + f" --host 127.0.0.1 --port {port}"
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        ["bash", "-c", f"exec {serve_cmd}"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "coopml serve did not start within 120 s"
            time.sleep(0.2)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    output = run.stdout + run.stderr
    print(output)
    assert run.returncode == 0, output[-4000:] + (tmp_path / "serve.log").read_text()[-3000:]
    assert "operator" in run.stdout
    assert "completed" in run.stdout
    # the audit: ledger balanced (Σ collected − Σ returned − Σ payouts = 0), verified
    assert "residual: 0.0" in run.stdout and "balanced: true" in run.stdout
    assert "ok: true" in run.stdout
    for name in ("alice", "bob", "carol"):
        assert name in run.stdout
    assert (tmp_path / "alice.skops").read_bytes()[:2] == b"PK"
    predictions = (tmp_path / "alice_predictions.csv").read_text().splitlines()
    n_validation = len((tmp_path / "alice_validation.csv").read_text().splitlines()) - 1
    assert predictions[0] == "prediction" and len(predictions) == n_validation + 1
    assert oct((tmp_path / "coopml-data" / "operator.token").stat().st_mode & 0o777) == "0o600"
    # revoked and rotated tokens are refused, the new ones work
    for refused in ("bob's old token", "carol's token", "the old operator token"):
        assert f"{refused} is refused" in run.stdout
    assert output.count("token_revoked") >= 3
    assert "party_token_rotated" in run.stdout and "party_token_revoked" in run.stdout
