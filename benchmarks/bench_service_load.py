"""Load on the marketplace service over loopback: throughput and p50/p99 latency.

Starts ``coopml serve`` on a free 127.0.0.1 port with a fresh data directory (SQLite,
embedded worker), sets up a market with three parties and one completed round, then runs
``--clients`` concurrent clients (asyncio + httpx) for ``--seconds`` seconds, each
looping over a mix of reads and writes:

====================================  =======  =========
request                               who      weight
====================================  =======  =========
GET  /me                              party    3
GET  /markets/{id}                    party    2
GET  /rounds/{id}                     party    3
GET  /rounds/{id}/settlement          party    2
GET  /markets/{id}/datasets           party    2
GET  /audit-log?limit=10              party    1
POST /rounds/{id}/predict (5 rows)    party    3
POST /markets/{id}/datasets (CSV)     party    1   (write: row + encrypted blob)
POST /markets/{id}/parties            operator 1   (write)
POST /markets                         operator 1   (write)
====================================  =======  =========

Any non-2xx answer or transport error counts as an error. Prints a table and, on its
last line, one JSON object.

Usage: python benchmarks/bench_service_load.py [--clients 50] [--seconds 30]
       [--url URL --operator-token TOKEN]   (use a running server instead of starting one)
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

OPERATOR_TOKEN = "operator-token-for-the-load-benchmark-0123456789"
MIX: list[tuple[str, int]] = [
    ("me", 3),
    ("market", 2),
    ("round", 3),
    ("settlement", 2),
    ("datasets", 2),
    ("audit_log", 1),
    ("predict", 3),
    ("upload", 1),
    ("add_party", 1),
    ("create_market", 1),
]
WRITES = {"upload", "add_party", "create_market"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(data_dir: Path, port: int, *, log: Path | None = None):
    """Run ``coopml serve`` in a subprocess until the block ends; yields the base URL."""
    env = {
        **os.environ,
        "COOPML_OPERATOR_TOKEN": OPERATOR_TOKEN,
        # 50 clients share four tokens: lift the per-token rate limit (50/s by default)
        # well above what they send, so that it is exercised but never answers 429
        "COOPML_RATE_LIMIT": "100000",
        "COOPML_RATE_BURST": "100000",
        "RAY_USAGE_STATS_ENABLED": "0",
        "FLWR_TELEMETRY_ENABLED": "0",
    }
    args = [sys.executable, "-c", "from coopml.cli import main; main()", "serve"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"coopml serve exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("coopml serve did not answer /api/v1/health within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def _csv(seed: int, n: int = 60) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).round(4)
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    buf = io.StringIO()
    buf.write("f0,f1,f2,f3,f4,label\n")
    for x, t in zip(X, y, strict=True):
        buf.write(",".join(map(str, x)) + f",{t}\n")
    return buf.getvalue().encode()


def setup_market(url: str, operator_token: str) -> dict[str, Any]:
    """A market with three parties (train + validation data) and one completed round."""
    from coopml.service.client import CoopmlClient

    with CoopmlClient(url, operator_token, timeout=60) as op:
        # the load is not an extraction attempt: lift the per-party prediction quota, and
        # the dataset quota (every party uploads hundreds of datasets during the run)
        market = op.create_market(
            "load",
            task="classification",
            predict_quota=100_000_000,
            quotas={"max_datasets_per_party": 1_000_000},
        )
        parties = []
        for i in range(3):
            party = op.add_party(market["id"], f"party{i}")
            c = op.with_token(party["token"])
            for k, role in enumerate(("train", "validation")):
                c.upload_dataset(market["id"], _csv(2 * i + k), role=role, target="label")
            parties.append(party)
        rnd = op.open_round(market["id"], "gaussian_nb", payment_rule="shapley", fee_price=1.0)
        rnd = op.wait_round(rnd["id"], timeout=300, poll_interval=0.2)
        if rnd["status"] != "completed":
            raise RuntimeError(f"setup round did not complete: {rnd}")
    return {"market": market["id"], "round": rnd["id"], "parties": parties}


async def _one(
    http: httpx.AsyncClient, kind: str, world: dict[str, Any], rng: random.Random, n: int
) -> httpx.Response:
    party = world["parties"][rng.randrange(len(world["parties"]))]
    auth = {"Authorization": f"Bearer {party['token']}"}
    op_auth = {"Authorization": f"Bearer {world['operator_token']}"}
    m, r = world["market"], world["round"]
    api = "/api/v1"
    if kind == "me":
        return await http.get(f"{api}/me", headers=auth)
    if kind == "market":
        return await http.get(f"{api}/markets/{m}", headers=auth)
    if kind == "round":
        return await http.get(f"{api}/rounds/{r}", headers=auth)
    if kind == "settlement":
        return await http.get(f"{api}/rounds/{r}/settlement", headers=auth)
    if kind == "datasets":
        return await http.get(f"{api}/markets/{m}/datasets", headers=auth)
    if kind == "audit_log":
        return await http.get(f"{api}/audit-log", params={"limit": 10}, headers=auth)
    if kind == "predict":
        rows = [[rng.gauss(0, 1) for _ in range(5)] for _ in range(5)]
        return await http.post(f"{api}/rounds/{r}/predict", json={"rows": rows}, headers=auth)
    if kind == "upload":
        files = {"file": ("extra.csv", _csv(1000 + n, n=30), "text/csv")}
        data = {"role": "train", "target": "label"}
        return await http.post(f"{api}/markets/{m}/datasets", files=files, data=data, headers=auth)
    if kind == "add_party":
        body = {"name": f"load{n}_{rng.randrange(10**9)}"}
        return await http.post(f"{api}/markets/{m}/parties", json=body, headers=op_auth)
    if kind == "create_market":
        body = {"name": f"load-market-{n}", "task": "classification"}
        return await http.post(f"{api}/markets", json=body, headers=op_auth)
    raise ValueError(kind)


async def _run_load(
    url: str, world: dict[str, Any], clients: int, seconds: float, seed: int
) -> dict[str, Any]:
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    counter = iter(range(10**9))
    attempts = [0]
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
            while time.perf_counter() < stop_at:
                kind = rng.choices(kinds, weights)[0]
                t0 = time.perf_counter()
                attempts[0] += 1
                try:
                    response = await _one(http, kind, world, rng, next(counter))
                except httpx.HTTPError as exc:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                latencies[kind].append(time.perf_counter() - t0)
                if not response.is_success:
                    errors.append(f"{kind}: {response.status_code} {response.text[:200]}")

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    every = np.array([x for xs in latencies.values() for x in xs])
    n_requests = attempts[0]
    per_kind = {
        k: {
            "n": len(v),
            "p50_ms": float(np.percentile(v, 50) * 1e3),
            "p99_ms": float(np.percentile(v, 99) * 1e3),
        }
        for k, v in sorted(latencies.items())
    }
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": n_requests,
        "writes": sum(len(latencies[k]) for k in WRITES),
        "errors": len(errors),
        "error_samples": errors[:10],
        "throughput_rps": round(n_requests / elapsed, 1),
        "p50_ms": round(float(np.percentile(every, 50) * 1e3), 1) if every.size else None,
        "p99_ms": round(float(np.percentile(every, 99) * 1e3), 1) if every.size else None,
        "max_ms": round(float(every.max() * 1e3), 1) if every.size else None,
        "per_request": per_kind,
    }


def run_load(
    url: str, operator_token: str, *, clients: int = 50, seconds: float = 30.0, seed: int = 0
) -> dict[str, Any]:
    """Set up a market on the server at ``url`` and run the load against it."""
    world = setup_market(url, operator_token) | {"operator_token": operator_token}
    result = asyncio.run(_run_load(url, world, clients, seconds, seed))
    return result | {"market_id": world["market"], "round_id": world["round"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--operator-token", default=os.environ.get("COOPML_TOKEN"))
    args = parser.parse_args()
    if args.url:
        result = run_load(args.url, args.operator_token, clients=args.clients, seconds=args.seconds)
    else:
        with tempfile.TemporaryDirectory() as tmp, serve(Path(tmp) / "data", free_port()) as url:
            result = run_load(url, OPERATOR_TOKEN, clients=args.clients, seconds=args.seconds)
    load = os.getloadavg()[0]
    print(
        f"{result['clients']} clients, {result['seconds']} s: {result['requests']} requests "
        f"({result['writes']} writes), {result['errors']} errors"
    )
    print(
        f"throughput {result['throughput_rps']} req/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms "
        f"(load average before end {load:.2f}, {os.cpu_count()} CPUs)"
    )
    for kind, row in result["per_request"].items():
        print(
            f"  {kind:<14} n={row['n']:<6} p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms"
        )
    for sample in result["error_samples"]:
        print(f"  error: {sample}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
