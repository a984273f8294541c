"""A large parties-custody market through the service: a single-task round of 16
parties is valued by sampling, as operator custody values it (the same seed, the same
sample, the same payouts and standard errors), through the job runner,
``run_custody_round`` and coopml's ServerApp body over an in-process grid of agents;
what parties custody cannot value is refused when the round is requested."""

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


def test_a_sixteen_party_round_is_sampled_as_operator_custody_samples_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    market, parties, keys = _market(client, 16)
    superlink_in_process(client, monkeypatch)
    serve_in_process(monkeypatch, lambda job: AgentGrid([Agent(p) for p in parties], keys))
    body: dict[str, Any] = {
        "learner": {"name": "gaussian_nb"},
        "tasks": "single",
        "validation_party": "party_0",
        "max_evaluations": 300,
        "random_state": 5,
    }
    r = client.post(f"{API}/markets/{market}/rounds", json=body, headers=OPERATOR)
    assert r.status_code == 202, r.text
    assert run_jobs(client) == 1
    rnd = client.get(f"{API}/rounds/{r.json()['id']}", headers=OPERATOR).json()
    assert rnd["status"] == "completed", rnd
    settlement = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=OPERATOR).json()
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


@pytest.mark.parametrize(
    ("n", "body", "status", "message"),
    [
        (13, {"tasks": "per_party"}, 409, "at most 12 parties here (tasks 'per_party'"),
        (
            13,
            {"tasks": "single", "validation_party": "party_0", "valuation": "exact"},
            409,
            "at most 12 parties here (valuation 'exact'",
        ),
        (
            16,
            {"tasks": "single", "validation_party": "party_0", "payment_rule": "loo"},
            409,
            "payment_rule 'loo' is exact",
        ),
        (3, {"tasks": "per_party", "valuation": "monte_carlo"}, 422, "values tasks 'per_party'"),
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
