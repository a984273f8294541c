"""Peak server memory of one dataset upload (tracemalloc and the process's peak RSS).

Builds a ``--mib`` MiB CSV (31 float columns, like the breast-cancer data of the
walkthrough), creates an app with a fresh data directory (SQLite, no worker), a market
and a party, then sends the multipart upload straight to the ASGI app in 64 KiB
chunks, the way a server receives it. The request body is built *before* measuring, so
the numbers are what the server allocates to receive, parse, validate, encrypt and store
the file:

* ``tracemalloc_peak_mib``: the peak of Python-traced allocations during the request
  above those before it (numpy, pandas and the ``bytes`` objects of the body and the
  ciphertext are traced; memory that native libraries allocate themselves is not);
* ``rss_growth_mib``: the peak growth of the process's resident set during the request
  (``VmRSS`` sampled every millisecond by a thread, after ``malloc_trim``; includes
  native allocations and allocator slack). Linux only.

Usage: python benchmarks/bench_upload_memory.py [--mib 39] [--no-tracemalloc]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1 << 20
OPERATOR_TOKEN = "operator-token-for-the-memory-benchmark-0123456789"
CHUNK = 64 * 1024


def make_csv(n_bytes: int, *, seed: int = 0) -> bytes:
    """A CSV of about ``n_bytes``: 30 float features (6 significant digits) and a 0/1
    label."""
    rng = np.random.default_rng(seed)
    header = ",".join(f"f{j}" for j in range(30)) + ",label\n"
    block = rng.normal(size=(2000, 30))
    labels = (block[:, 0] > 0).astype(int)
    lines = [
        ",".join(f"{v:.6g}" for v in row) + f",{t}\n" for row, t in zip(block, labels, strict=True)
    ]
    unit = "".join(lines).encode()
    reps = max(1, n_bytes // len(unit))
    body = header.encode() + unit * reps
    # distinct rows are not needed for the upload path; keep it simple and fast
    return body


def multipart(content: bytes, filename: str = "big.csv") -> tuple[bytes, str]:
    boundary = "coopmlbenchboundary7d93"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="role"\r\n\r\ntrain\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nlabel\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: text/csv\r\n\r\n",
    ]
    body = "".join(parts).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def send_upload(app: Any, path: str, body: bytes, ctype: str, token: str) -> dict[str, Any]:
    """One request to the ASGI app, its body delivered in ``CHUNK``-byte messages."""
    view = memoryview(body)
    position = 0
    response: dict[str, Any] = {"status": None, "body": b""}

    async def receive() -> dict[str, Any]:
        nonlocal position
        if position >= len(view):
            return {"type": "http.request", "body": b"", "more_body": False}
        chunk = bytes(view[position : position + CHUNK])
        position += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": position < len(view)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            response["status"] = message["status"]
        elif message["type"] == "http.response.body":
            response["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", ctype.encode()),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return response


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


class _RssPeak(threading.Thread):
    """Samples the resident set size until stopped; ``peak`` is the largest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.001)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, _rss())


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def measure(mib: float, *, use_tracemalloc: bool = True) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            Path(tmp) / "data",
            operator_token=OPERATOR_TOKEN,
            embedded_worker=False,
            max_upload_bytes=64 * MiB,
        )
        app = create_app(settings)
        op = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        with TestClient(app) as http:
            market = http.post(
                "/api/v1/markets", json={"name": "m", "task": "classification"}, headers=op
            ).json()
            party = http.post(
                f"/api/v1/markets/{market['id']}/parties", json={"name": "alice"}, headers=op
            ).json()
            # warm up the parsing code paths (imports, caches) with a small upload
            small, ctype = multipart(make_csv(64 * 1024, seed=1), "small.csv")
            path = f"/api/v1/markets/{market['id']}/datasets"
            warm = asyncio.run(send_upload(app, path, small, ctype, party["token"]))
            assert warm["status"] == 201, warm
            content = make_csv(int(mib * MiB))
            body, ctype = multipart(content)
            del content
            _trim()
            if use_tracemalloc:
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
            rss_before = _rss()
            sampler = _RssPeak()
            sampler.start()
            started = time.perf_counter()
            answer = asyncio.run(send_upload(app, path, body, ctype, party["token"]))
            seconds = time.perf_counter() - started
            rss_peak = sampler.stop()
            if use_tracemalloc:
                peak = tracemalloc.get_traced_memory()[1] - base
                tracemalloc.stop()
        app.state.service.db.dispose()
    if answer["status"] != 201:
        raise RuntimeError(f"upload failed: {answer['status']} {answer['body'][:300]!r}")
    size = len(body)
    out: dict[str, Any] = {
        "file_mib": round(size / MiB, 1),
        "rss_growth_mib": round((rss_peak - rss_before) / MiB, 1),
        "rss_growth_ratio": round((rss_peak - rss_before) / size, 2),
        "upload_seconds": round(seconds, 2),
    }
    if use_tracemalloc:
        out["tracemalloc_peak_mib"] = round(peak / MiB, 1)
        out["tracemalloc_peak_ratio"] = round(peak / size, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=39.0)
    parser.add_argument("--no-tracemalloc", action="store_true")
    args = parser.parse_args()
    print(json.dumps(measure(args.mib, use_tracemalloc=not args.no_tracemalloc)))


if __name__ == "__main__":
    main()
