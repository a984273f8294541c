"""Bounded load on loopback: 50 concurrent clients, 30 s of mixed reads and writes
against a real ``coopml serve`` subprocess; zero errors.

The load generator is ``benchmarks/bench_service_load.py`` (which also prints the
throughput and latency percentiles quoted in docs/service.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from coopml.service.client import CoopmlClient

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_service_load.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_service_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _assert_settlement_intact(url: str, token: str, round_id: str) -> None:
    """The ledger invariant and the audit of the settled round, after the load."""
    with CoopmlClient(url, token) as op:
        ledger = list(op.iter_pages(f"/rounds/{round_id}/ledger"))
        audit = op.audit(round_id)
    sign = {"fee_collected": 1.0, "fee_returned": -1.0, "payout": -1.0}
    assert ledger and abs(sum(sign[e["kind"]] * e["amount"] for e in ledger)) < 1e-9
    assert audit["balance"]["balanced"] and audit["verification"]["ok"]


@pytest.mark.slow
def test_fifty_clients_for_thirty_seconds_without_errors(tmp_path):
    bench = _bench()
    log = tmp_path / "serve.log"
    with bench.serve(tmp_path / "data", bench.free_port(), log=log) as url:
        result = bench.run_load(url, bench.OPERATOR_TOKEN, clients=50, seconds=30.0)
        _assert_settlement_intact(url, bench.OPERATOR_TOKEN, result["round_id"])
    assert result["errors"] == 0, (result["error_samples"], log.read_text()[-3000:])
    assert result["seconds"] >= 30.0
    assert result["requests"] >= 500, result  # bounded below even on a busy 2-core machine
    assert result["writes"] >= 20, result
    assert set(result["per_request"]) == {k for k, _ in bench.MIX}
    print({k: result[k] for k in ("requests", "throughput_rps", "p50_ms", "p99_ms")})


def test_load_generator_smoke(tmp_path):
    """Two clients for two seconds: the generator itself works (fast, not slow-marked)."""
    bench = _bench()
    with bench.serve(tmp_path / "data", bench.free_port()) as url:
        result = bench.run_load(url, bench.OPERATOR_TOKEN, clients=2, seconds=2.0)
        _assert_settlement_intact(url, bench.OPERATOR_TOKEN, result["round_id"])
    assert result["errors"] == 0, result["error_samples"]
    assert result["requests"] > 0 and result["p99_ms"] is not None
