"""Parties-custody rounds in the service: regression markets settle, and each party's
customised model is kept, queried and released exactly as in operator custody.

The service's round path runs unchanged (the runner, ``run_custody_round`` with the
parties' token-derived keys, coopml's ServerApp body ``_run``, the JSON result, the
settlement transaction, the model store, the predict endpoint); only Flower's processes
are replaced by a grid that hands each Message to an in-process agent through the
ClientApp's own reply function (``answer``), each agent reading its own CSV files as
``coopml agent``'s ClientApp does (:func:`~coopml.custody.agent.agent_from_config`).
The real SuperLink and SuperNodes run in ``test_custody_rounds.py`` (slow).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN, run_round_to_completion

pytest.importorskip("flwr")

from tests.custody._grid import (
    AgentGrid,
    agent_config,
    csv_bytes,
    payouts_match,
    serve_in_process,
    superlink_in_process,
)

from coopml.custody.agent import agent_from_config
from coopml.custody.flower import agent_key
from coopml.data import load_dataset
from coopml.service.security import hash_token

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
_ids = itertools.count()


def _frames(task: str) -> tuple[list[str], str, list[dict[str, pd.DataFrame]]]:
    """Three parties' training and validation frames; the file order of the columns is
    not their sorted order (agents without a schema use the sorted order)."""
    if task == "regression":
        ds, n_train, n_val = load_dataset("diabetes"), 40, 40
    else:
        ds, n_train, n_val = load_dataset("breast_cancer"), 40, 40
    columns = list(ds.feature_names)[:10]
    order = np.random.default_rng(3).permutation(len(ds.y))
    out = []
    for i in range(3):
        rows = order[i * (n_train + n_val) : (i + 1) * (n_train + n_val)]
        frames = {}
        for role, part in (("train", rows[:n_train]), ("validation", rows[n_train:])):
            frame = pd.DataFrame(ds.X[part][:, :10], columns=columns)
            frame["outcome"] = ds.y[part]
            frames[role] = frame
        out.append(frames)
    assert sorted(columns) != columns
    return columns, "outcome", out


def _market(client: TestClient, task: str, custody: str, policy: str) -> str:
    body = {"name": f"{custody}-{task}", "task": task, "custody": custody}
    r = client.post(f"{API}/markets", json={**body, "release_policy": policy}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _party(client: TestClient, market: str, name: str) -> str:
    r = client.post(f"{API}/markets/{market}/parties", json={"name": name}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _upload(
    client: TestClient,
    market: str,
    token: str,
    name: str,
    files: dict[str, pd.DataFrame],
    target: str,
) -> None:
    """Party ``name`` uploads its ``files`` (by role) to an operator-custody market."""
    for role, frame in files.items():
        r = client.post(
            f"{API}/markets/{market}/datasets",
            files={"file": (f"{name}_{role}.csv", csv_bytes(frame), "text/csv")},
            data={"role": role, "target": target},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text


def _round(
    client: TestClient,
    market: str,
    learner: str,
    tasks: str,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"learner": {"name": learner, "params": params or {}}, "tasks": tasks}
    if tasks == "single":
        body["validation_party"] = "party_0"
    return run_round_to_completion(client, market, OPERATOR, **body)


def _predict(client: TestClient, rnd: dict[str, Any], token: str, rows: pd.DataFrame) -> Any:
    features = rnd["config"]["features"]  # the model's columns, matched by name
    r = client.post(
        f"{API}/rounds/{rnd['id']}/predict",
        json={"rows": rows[features].to_numpy().tolist()},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return r.json()["predictions"]


def _payouts(client: TestClient, rnd: dict[str, Any]) -> dict[str, float]:
    """The round's payouts by party name, from its settlement."""
    r = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR)
    assert r.status_code == 200, r.text
    return {line["name"]: line["payout"] for line in r.json()["lines"]}


@pytest.fixture
def in_process_flower(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The service's SuperLink as an in-process grid: fill ``agents`` with
    ``(Agent, token)`` pairs; ``flwr run`` then runs coopml's ServerApp body on them."""
    superlink_in_process(client, monkeypatch)
    state: dict[str, Any] = {"agents": [], "jobs": []}

    def grid_for(job: dict[str, Any]) -> AgentGrid:
        state["jobs"].append(job)
        agents = [agent for agent, _ in state["agents"]]
        keys = {agent.name: agent_key(hash_token(token)) for agent, token in state["agents"]}
        return AgentGrid(agents, keys)

    serve_in_process(monkeypatch, grid_for)
    return state


CASES = [
    ("regression", "ridge", "per_party"),
    ("regression", "linear_regression", "single"),
    ("classification", "gaussian_nb", "per_party"),
]


@pytest.mark.parametrize(("task", "learner", "tasks"), CASES)
def test_custody_round_settles_and_predicts_as_operator_custody(
    client: TestClient,
    tmp_path: Path,
    in_process_flower: dict[str, Any],
    task: str,
    learner: str,
    tasks: str,
) -> None:
    columns, target, frames = _frames(task)
    # operator custody: the parties upload their files (for one shared task, only
    # party_0 holds validation data: the shared task is its validation set)
    operator = _market(client, task, "operator", "aggregate_only")
    parties = _market(client, task, "parties", "aggregate_only")
    tokens: dict[str, dict[str, str]] = {"operator": {}, "parties": {}}
    for i, files in enumerate(frames):
        name = f"party_{i}"
        tokens["operator"][name] = token = _party(client, operator, name)
        uploaded = {"train": files["train"]} if tasks == "single" and i > 0 else files
        _upload(client, operator, token, name, uploaded, target)
        # parties custody: each party's agent reads its own files; nothing is uploaded
        tokens["parties"][name] = token = _party(client, parties, name)
        # the market's order without a schema: sorted
        config = agent_config(
            tmp_path, name, files, target=target, features=",".join(sorted(columns))
        )
        in_process_flower["agents"].append((agent_from_config(config), token))
    reference = _round(client, operator, learner, tasks)
    custody = _round(client, parties, learner, tasks)
    job = in_process_flower["jobs"][-1]
    assert job["scorer"] == ("clipped_r2" if task == "regression" else "accuracy")
    assert custody["config"]["features"] == sorted(columns)
    assert reference["config"]["features"] == columns

    # the settlement: payouts equal operator custody's to 1e-6
    payouts_match(_payouts(client, reference), _payouts(client, custody), atol=1e-6)
    # each party's kept model predicts as operator custody's, rows matched by name
    rows = pd.concat([f["validation"] for f in frames], ignore_index=True)
    for name in tokens["parties"]:
        ours = _predict(client, custody, tokens["parties"][name], rows)
        theirs = _predict(client, reference, tokens["operator"][name], rows)
        if task == "regression":
            np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-8)
        else:
            assert ours == theirs
    # the release policy applies: operator custody's linear and naive Bayes models are
    # released under 'aggregate_only' (checked against the other parties' rows); the
    # operator of a parties-custody market holds no row to check, so it refuses
    token = tokens["parties"]["party_1"]
    r = client.get(
        f"{API}/rounds/{custody['id']}/model", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 403, r.text
    assert "no training row" in r.text
    token = tokens["operator"]["party_1"]
    r = client.get(
        f"{API}/rounds/{reference['id']}/model", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text


def test_custody_models_are_query_only_by_default(
    client: TestClient, tmp_path: Path, in_process_flower: dict[str, Any]
) -> None:
    columns, target, frames = _frames("regression")
    body = {"name": "consortium", "task": "regression", "custody": "parties"}
    r = client.post(f"{API}/markets", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    market = r.json()["id"]
    assert r.json()["release_policy"] == "query_only"
    tokens = {}
    for i, files in enumerate(frames):
        name = f"party_{i}"
        tokens[name] = _party(client, market, name)
        config = agent_config(
            tmp_path, name, files, target=target, features=",".join(sorted(columns))
        )
        in_process_flower["agents"].append((agent_from_config(config), tokens[name]))
    rnd = _round(client, market, "ridge", "per_party")
    headers = {"Authorization": f"Bearer {tokens['party_0']}"}
    r = client.get(f"{API}/rounds/{rnd['id']}/model", headers=headers)
    assert r.status_code == 403 and "query_only" in r.text, r.text
    rows = frames[0]["validation"]
    assert len(_predict(client, rnd, tokens["party_0"], rows)) == len(rows)
    # a row of the wrong width is refused, naming the count
    r = client.post(f"{API}/rounds/{rnd['id']}/predict", json={"rows": [[1.0]]}, headers=headers)
    assert r.status_code == 422 and "10 features" in r.text, r.text


def test_learners_parties_custody_cannot_train_are_refused_at_opening(client: TestClient) -> None:
    r = client.post(
        f"{API}/markets",
        json={"name": "m", "task": "regression", "custody": "parties"},
        headers=OPERATOR,
    )
    market = r.json()["id"]
    for name in ("party_0", "party_1"):
        _party(client, market, name)
    body = {"learner": {"name": "knn", "params": {}}, "tasks": "per_party"}
    r = client.post(f"{API}/markets/{market}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == 422, r.text
    assert "k-nearest neighbours" in r.text and "custody='operator'" in r.text
    # (a standardised learner is trained: tests/service/test_custody_standardize.py)


@pytest.mark.slow
def test_regression_round_through_coopml_serve_and_three_agents(tmp_path: Path) -> None:
    """The same over the real runtime: ``coopml serve`` with its SuperLink, three
    ``coopml agent`` processes (SuperNodes) on loopback; a ridge market with per-party
    tasks settles as operator custody and each party's model predicts as its model;
    then a round on one shared task settles as operator custody too.
    A few minutes on the shared test machine (every message starts a ClientApp)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from sklearn.linear_model import Ridge

    from coopml.custody.deployment import free_port
    from coopml.data import Party
    from coopml.learning.utility import clipped_r2
    from coopml.market import run_market
    from coopml.service.client import CoopmlClient

    columns, target, frames = _frames("regression")
    parties = [
        Party(
            f"party_{i}",
            f["train"][columns].to_numpy(),
            f["train"][target].to_numpy(),
            f["validation"][columns].to_numpy(),
            f["validation"][target].to_numpy(),
        )
        for i, f in enumerate(frames)
    ]
    binaries = Path(sys.executable).parent
    token = "operator-token-for-custody-regression-0123456789"
    env = {
        **os.environ,
        "COOPML_DATA_DIR": str(tmp_path / "data"),
        "COOPML_OPERATOR_TOKEN": token,
        "COOPML_FLEET_API_ADDRESS": f"127.0.0.1:{free_port()}",
        "COOPML_AGENT_TIMEOUT": "120",
        "FLWR_TELEMETRY_ENABLED": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    processes: list[subprocess.Popen[bytes]] = []

    def spawn(command: list[str], log: str) -> None:
        with open(tmp_path / log, "wb") as out:
            processes.append(
                subprocess.Popen(
                    command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    port = free_port()
    spawn([str(binaries / "coopml"), "serve", "--host", "127.0.0.1", "--port", str(port)], "s")
    url = f"http://127.0.0.1:{port}"
    try:
        client = CoopmlClient(url, token)
        for _ in range(400):
            try:
                client.me()
                break
            except Exception:
                time.sleep(0.5)
        market = client.create_market("consortium", task="regression", custody="parties")
        tokens = {}
        for i, files in enumerate(frames):
            name = f"party_{i}"
            tokens[name] = client.add_party(market["id"], name)["token"]
            paths = {role: tmp_path / f"{name}-{role}.csv" for role in ("train", "validation")}
            for role, path in paths.items():
                path.write_bytes(csv_bytes(files[role]))
            command = [str(binaries / "coopml"), "agent", "--url", url, "--token", tokens[name]]
            command += ["--market", market["id"], "--train", str(paths["train"])]
            command += ["--validation", str(paths["validation"]), "--target", target]
            spawn([*command, "--log", str(tmp_path / f"{name}.log")], f"{name}.out")
        deadline = time.monotonic() + 180
        while len(client.get_market(market["id"]).get("agents_connected", [])) < 3:
            assert time.monotonic() < deadline, (tmp_path / "party_0.out").read_text()
            time.sleep(0.5)
        started = time.monotonic()
        rnd = client.open_round(market["id"], "ridge", tasks="per_party")
        done = client.wait_round(rnd["id"], timeout=600)
        assert done["status"] == "completed", done["message"]
        print(f"ridge round, parties custody, coopml serve: {time.monotonic() - started:.0f} s")
        reference = run_market(parties, Ridge(), None, scorer=clipped_r2, duplicates="ignore")
        lines = {line["name"]: line["payout"] for line in client.settlement(rnd["id"])["lines"]}
        np.testing.assert_allclose(
            [lines[p.name] for p in reference.settlement.parties],
            [p.payout for p in reference.settlement.parties],
            rtol=0,
            atol=1e-6,
        )
        features = done["config"]["features"]
        assert features == sorted(columns)
        rows = frames[1]["validation"]
        predicted = CoopmlClient(url, tokens["party_1"]).predict(
            rnd["id"], rows[features].to_numpy().tolist()
        )
        expected = reference.models["party_1"].predict(rows[columns].to_numpy())
        np.testing.assert_allclose(predicted, expected, rtol=1e-8, atol=1e-8)

        # one shared task (party_0's validation set) on the same agents
        rnd = client.open_round(market["id"], "ridge", tasks="single", validation_party="party_0")
        done = client.wait_round(rnd["id"], timeout=600)
        assert done["status"] == "completed", done["message"]
        shared = (parties[0].X_val, parties[0].y_val)
        reference = run_market(parties, Ridge(), shared, scorer=clipped_r2, duplicates="ignore")
        lines = {line["name"]: line["payout"] for line in client.settlement(rnd["id"])["lines"]}
        assert max(abs(p.payout) for p in reference.settlement.parties) > 1e-3
        np.testing.assert_allclose(
            [lines[p.name] for p in reference.settlement.parties],
            [p.payout for p in reference.settlement.parties],
            rtol=0,
            atol=1e-6,
        )
    finally:
        for process in processes:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    pass
