"""`coopml serve` on a fresh data directory: a working service on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_and_writes_the_operator_token(tmp_path: Path):
    port = _free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COOPML_")}
    exe = shutil.which("coopml", path=str(Path(sys.executable).parent)) or "coopml"
    proc = subprocess.Popen(
        [exe, "serve", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "coopml serve did not come up"
                time.sleep(0.2)
        assert r.json() == {"status": "ok", "database": "sqlite"}
        token_file = data / "operator.token"
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert oct(data.stat().st_mode & 0o777) == "0o700"  # the data directory is private
        token = token_file.read_text().strip()
        me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.json()["role"] == "operator"
        assert (data / "coopml.db").exists() and (data / "secret.key").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert "operator.token" in text and token not in text
