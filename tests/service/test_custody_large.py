"""Large parties-custody markets through the service: a single-task round of 16
parties is valued by sampling, and a per-party round of 13 chooses each party's
training set greedily, as operator custody does (the same seed, the same sample, the
same payouts and standard errors), through the job runner, ``run_custody_round`` and
coopml's ServerApp body over an in-process grid of agents; a round valued exactly
above 12 parties is refused when it is requested."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.naive_bayes import GaussianNB
from sklearn.preprocessing import StandardScaler
from tests.service.conftest import API, OPERATOR_TOKEN, assert_ledger_balanced, run_jobs

pytest.importorskip("flwr")
from tests.custody._grid import AgentGrid, serve_in_process, superlink_in_process

from coopml.custody import Agent
from coopml.custody.flower import agent_key
from coopml.data import Party, load_dataset, make_parties, train_validation_split
from coopml.market import run_market
from coopml.market.sampled_shares import market_stopping
from coopml.service.security import hash_token

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _market(client: TestClient, n: int) -> tuple[str, list[Party], dict[str, str]]:
    """A parties-custody market of ``n`` parties; ``party_0`` holds the validation set."""
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X[:, :4], ds.y, random_state=0)
    scale = StandardScaler().fit(X)
    parties = make_parties(scale.transform(X), y, n, random_state=0)
    parties[0] = Party("party_0", parties[0].X, parties[0].y, scale.transform(X_val), y_val)
    body = {"name": "consortium", "task": "classification", "custody": "parties"}
    r = client.post(f"{API}/markets", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    market = r.json()["id"]
    keys = {}
    for p in parties:
        r = client.post(f"{API}/markets/{market}/parties", json={"name": p.name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        keys[p.name] = agent_key(hash_token(r.json()["token"]))
    return market, parties, keys


def _settle(
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    market: str,
    parties: list[Party],
    keys: dict[str, str],
    body: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run one round of ``body`` over an in-process grid of the parties' agents: the
    completed round and its settlement."""
    superlink_in_process(client, monkeypatch)
    serve_in_process(monkeypatch, lambda job: AgentGrid([Agent(p) for p in parties], keys))
    r = client.post(f"{API}/markets/{market}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == 202, r.text
    assert run_jobs(client) == 1
    rnd: dict[str, Any] = client.get(f"{API}/rounds/{r.json()['id']}", headers=OPERATOR).json()
    assert rnd["status"] == "completed", rnd
    settlement = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR).json()
    return rnd, settlement


def test_a_sixteen_party_round_is_sampled_as_operator_custody_samples_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    market, parties, keys = _market(client, 16)
    body: dict[str, Any] = {
        "learner": {"name": "gaussian_nb"},
        "tasks": "single",
        "validation_party": "party_0",
        "max_evaluations": 300,
        "random_state": 5,
    }
    rnd, settlement = _settle(client, monkeypatch, market, parties, keys, body)
    assert settlement["valuation"]["method"] == "monte_carlo"
    assert settlement["valuation"]["evaluations"] <= 300
    assert_ledger_balanced(client, rnd["id"])

    stopping = market_stopping(300, rnd["config"]["stderr_target"])
    validation = (parties[0].X_val, parties[0].y_val)
    reference = run_market(
        parties, GaussianNB(), validation, duplicates="ignore", stopping=stopping, random_state=5
    ).settlement
    lines = {line["name"]: line for line in settlement["lines"]}
    np.testing.assert_allclose(
        [[lines[p.name]["payout"], lines[p.name]["payout_stderr"]] for p in reference.parties],
        [[p.payout, p.payout_stderr] for p in reference.parties],
        rtol=0,
        atol=1e-9,
    )
    assert max(p.payout_stderr for p in reference.parties) > 0


def test_a_thirteen_party_per_party_round_chooses_training_sets_as_operator_custody(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    market, parties, keys = _market(client, 13)
    validation = (parties[0].X_val, parties[0].y_val)
    k = len(validation[1]) // 13
    parties = [
        Party(
            p.name, p.X, p.y, validation[0][i * k : (i + 1) * k], validation[1][i * k : (i + 1) * k]
        )
        for i, p in enumerate(parties)
    ]
    body = {"learner": {"name": "gaussian_nb"}, "tasks": "per_party", "random_state": 1}
    _, settlement = _settle(client, monkeypatch, market, parties, keys, body)
    reference = run_market(parties, GaussianNB(), duplicates="ignore", random_state=1).settlement
    lines = {line["name"]: line for line in settlement["lines"]}
    np.testing.assert_allclose(
        [lines[p.name]["payout"] for p in reference.parties],
        [p.payout for p in reference.parties],
        rtol=0,
        atol=1e-9,
    )
    assert [lines[p.name]["members"] for p in reference.parties] == [
        list(p.members) for p in reference.parties
    ]


@pytest.mark.parametrize(
    ("n", "body", "status", "message"),
    [
        (
            13,
            {"tasks": "single", "validation_party": "party_0", "valuation": "exact"},
            409,
            "at most 12 parties here (valuation 'exact' and payment_rule 'ohrimenko'",
        ),
        (
            13,
            {"tasks": "per_party", "payment_rule": "loo"},
            409,
            "at most 12 parties here (valuation 'auto' and payment_rule 'loo'",
        ),
    ],
)
def test_what_parties_custody_cannot_value_is_refused_when_requested(
    client: TestClient, n: int, body: dict[str, Any], status: int, message: str
) -> None:
    market, _, _ = _market(client, n)
    body = {"learner": {"name": "gaussian_nb"}, **body}
    r = client.post(f"{API}/markets/{market}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"], r.text
    assert run_jobs(client) == 0  # nothing queued
