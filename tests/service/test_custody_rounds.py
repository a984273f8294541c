"""Parties-custody rounds run by a real ``coopml serve``: its own SuperLink, three
``coopml agent`` processes on loopback, Gaussian naive Bayes on a shared task.

Every Flower message starts a ClientApp process (about 10 s a round trip on the shared
test machine), so the module runs one settled round and one failed round.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler

from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market

pytest.importorskip("flwr")
from coopml.custody.deployment import free_port
from coopml.service.client import CoopmlClient
from coopml.service.learners import build_learner

pytestmark = pytest.mark.slow
COLUMNS = ["radius", "texture", "perimeter", "area"]
OPERATOR = "operator-token-for-custody-rounds-0123456789"
BIN = Path(sys.executable).parent


def _parties() -> list[Party]:
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X[:, :4], ds.y, random_state=0)
    scale = StandardScaler().fit(X)
    X, X_val = scale.transform(X), scale.transform(X_val)
    parties = make_parties(X[:30], y[:30], 3, random_state=0)
    k = len(y_val) // 3  # party_0 holds the shared validation set
    own = [(X_val, y_val)] + [
        (X_val[i * k : (i + 1) * k], y_val[i * k : (i + 1) * k]) for i in (1, 2)
    ]
    return [Party(p.name, p.X, p.y, *own[i]) for i, p in enumerate(parties)]


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM each process's group at once (an agent stops its SuperNode, the service
    its SuperLink), wait up to 15 s for all, then SIGKILL what is left of each group."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)  # the whole group: Flower's children too
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("custody-rounds")
    data_dir = root / "data"
    port = free_port()
    env = {
        **os.environ,
        "COOPML_DATA_DIR": str(data_dir),
        "COOPML_OPERATOR_TOKEN": OPERATOR,
        "COOPML_FLEET_API_ADDRESS": f"127.0.0.1:{free_port()}",
        "COOPML_AGENT_TIMEOUT": "60",  # a busy 2-core CI machine: agents start slowly
        "FLWR_TELEMETRY_ENABLED": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    server = _spawn(
        [str(BIN / "coopml"), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        root / "serve.log",
    )
    url = f"http://127.0.0.1:{port}"
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:
        client = CoopmlClient(url, OPERATOR)
        for _ in range(400):
            try:
                client.me()
                break
            except Exception:
                time.sleep(0.3)
        market = client.create_market("consortium", task="classification", custody="parties")
        parties = _parties()
        for p in parties:
            token = client.add_party(market["id"], p.name)["token"]
            files = {}
            for kind, (Xp, yp) in {"train": (p.X, p.y), "validation": (p.X_val, p.y_val)}.items():
                frame = pd.DataFrame(Xp, columns=COLUMNS).assign(label=yp)
                if p.name == "party_1":  # columns matched by name, not position
                    frame = frame[list(reversed(frame.columns))]
                files[kind] = root / f"{p.name}-{kind}.csv"
                frame.to_csv(files[kind], index=False)
            command = [str(BIN / "coopml"), "agent", "--url", url, "--token", token]
            command += ["--market", market["id"], "--train", str(files["train"])]
            command += ["--validation", str(files["validation"]), "--target", "label"]
            command += ["--log", str(root / f"{p.name}.log")]
            agents[p.name] = _spawn(command, env, root / f"{p.name}-agent.out")
        deadline = time.monotonic() + 180
        while len(client.get_market(market["id"]).get("agents_connected", [])) < 3:
            assert time.monotonic() < deadline, (root / "party_0-agent.out").read_text()
            time.sleep(0.5)
        yield {
            "client": client,
            "market": market["id"],
            "parties": parties,
            "agents": agents,
            "data_dir": data_dir,
            "root": root,
        }
    finally:
        _stop(*agents.values())
        _stop(server)


def test_round_settles_as_operator_custody_without_rows(service: dict[str, Any]) -> None:
    client, parties = service["client"], service["parties"]
    started = time.monotonic()
    rnd = client.open_round(
        service["market"], "gaussian_nb", tasks="single", validation_party="party_0"
    )
    done = client.wait_round(rnd["id"], timeout=240)
    assert done["status"] == "completed", done["message"]
    print(f"parties-custody round through coopml serve: {time.monotonic() - started:.0f} s")
    record = client.settlement(rnd["id"])
    shared = (parties[0].X_val, parties[0].y_val)
    reference = run_market(parties, GaussianNB(), shared, duplicates="ignore").settlement
    payouts = {line["name"]: line["payout"] for line in record["lines"]}
    np.testing.assert_allclose(
        [payouts[p.name] for p in reference.parties],
        [p.payout for p in reference.parties],
        atol=1e-6,
    )
    # the ledger and audit are those of any settled round
    assert client.audit(rnd["id"])["verification"]["ok"]
    # nothing under the service's data directory (database included) holds a value
    values = np.unique(np.concatenate([np.ravel(a) for p in parties for a in (p.X, p.X_val)]))
    blobs = b"".join(f.read_bytes() for f in service["data_dir"].rglob("*") if f.is_file())
    assert len(blobs) > 10_000  # the database and logs are there
    leaked = [
        float(v)
        for v in values
        if repr(float(v)).encode() in blobs
        or f"{v:.6f}".encode() in blobs
        or struct.pack("<d", float(v)) in blobs
    ]
    assert not leaked, leaked[:5]


@pytest.mark.parametrize(
    ("learner", "tasks"),
    [
        ("gaussian_nb", "per_party"),
        ("logistic_regression", "single"),
        ("logistic_regression", "per_party"),
    ],
)
def test_every_round_kind_settles_as_operator_custody(
    service: dict[str, Any], learner: str, tasks: str
) -> None:
    """Issue 17's acceptance test through a real ``coopml serve`` and three ``coopml
    agent`` processes: naive Bayes and logistic regression (the federated Newton method),
    one shared task and every party's own task, payouts equal to operator custody's on
    the same rows to 1e-6 (ridge: tests/service/test_custody_prediction.py)."""
    client, parties = service["client"], service["parties"]
    started = time.monotonic()
    options = {"validation_party": "party_0"} if tasks == "single" else {}
    rnd = client.open_round(service["market"], learner, tasks=tasks, **options)
    done = client.wait_round(rnd["id"], timeout=900)
    assert done["status"] == "completed", done["message"]
    print(f"{learner} {tasks} through coopml serve: {time.monotonic() - started:.0f} s")
    estimator = build_learner({"name": learner}, "classification")
    shared = (parties[0].X_val, parties[0].y_val) if tasks == "single" else None
    reference = run_market(parties, estimator, shared, duplicates="ignore").settlement
    payouts = {line["name"]: line["payout"] for line in client.settlement(rnd["id"])["lines"]}
    assert max(abs(p.payout) for p in reference.parties) > 1e-3  # data is worth something
    np.testing.assert_allclose(
        [payouts[p.name] for p in reference.parties],
        [p.payout for p in reference.parties],
        rtol=0,
        atol=1e-6,
    )


def test_absent_agent_fails_the_round_naming_the_party(service: dict[str, Any]) -> None:
    client = service["client"]
    _stop(service["agents"].pop("party_2"))
    rnd = client.open_round(
        service["market"], "gaussian_nb", tasks="single", validation_party="party_0"
    )
    done = client.wait_round(rnd["id"], timeout=240)
    assert done["status"] == "failed"
    assert "party_2" in done["message"], done["message"]
    with pytest.raises(Exception, match=r"settled|not found"):
        client.settlement(rnd["id"])
