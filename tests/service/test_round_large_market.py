"""A 40-party round through the service: estimated, verifiable shares (issue 18)."""

from __future__ import annotations

import json

import pytest
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    assert_ledger_balanced,
    make_market_with_parties,
    run_round_to_completion,
)
from tests.service.test_web_pages import login

from coopml.market import Settlement


@pytest.mark.slow
def test_forty_party_round_settles_with_estimated_verifiable_shares(client, operator_headers):
    market = make_market_with_parties(client, 40)
    rnd = run_round_to_completion(
        client,
        market.id,
        operator_headers,
        valuation="monte_carlo",
        max_evaluations=1200,
        stderr_target=None,
        duplicates="ignore",
    )
    assert rnd["config"]["valuation"] == "monte_carlo"
    assert_ledger_balanced(client, rnd["id"], operator_headers)
    from coopml.service.storage.models import SettlementRow

    with client.app.state.service.db.session() as sess:
        record = sess.query(SettlementRow).one().record
    assert record["valuation"]["method"] == "monte_carlo"
    assert record["valuation"]["evaluations"] == 1200
    assert all(p["payout_stderr"] > 0 for p in record["parties"] if p["payout"] > 0)
    assert Settlement.from_dict(record).verify().ok
    tampered = json.loads(json.dumps(record))
    tampered["parties"][0]["payout"] += 0.001
    assert not Settlement.from_dict(tampered).verify().ok
    r = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=operator_headers)
    lines = r.json()["lines"]
    assert r.json()["valuation"]["estimator"] == "svarm_shapley"
    assert any(line["payout_stderr"] > 0 for line in lines)
    # the dashboard shows each payout with its uncertainty
    login(client, OPERATOR_TOKEN)
    page = client.get(f"/ui/rounds/{rnd['id']}")
    assert page.status_code == 200 and "± " in page.text and "cannot be told apart" in page.text


def test_round_request_validates_valuation(client, operator_headers):
    market = make_market_with_parties(client, 2)
    body = {"learner": {"name": "gaussian_nb", "params": {}}, "payment_rule": "loo"}
    r = client.post(
        f"{API}/markets/{market.id}/rounds",
        json={**body, "valuation": "monte_carlo"},
        headers=operator_headers,
    )
    assert r.status_code == 422 and "no sampling estimator" in r.text
    r = client.post(
        f"{API}/markets/{market.id}/rounds",
        json={**body, "valuation": "sampled"},
        headers=operator_headers,
    )
    assert r.status_code == 422 and "valuation" in r.text
