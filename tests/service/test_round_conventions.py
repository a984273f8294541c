"""A round's market conventions over the HTTP API and the dashboard: the value of the
empty coalition is a round option recorded in the settlement, and the rules applied
beyond the paper's formulas (refunds, clipped shares) are flagged where the settlement
is shown, without naming other parties to a party."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    assert_ledger_balanced,
    make_market_with_parties,
    run_round_to_completion,
)
from tests.service.test_web_pages import login

from coopml.market import Settlement
from coopml.market.settlement import FLAG_SUMMARIES
from coopml.service.storage.models import SettlementRow


def _record(client: TestClient, round_id: str) -> dict:
    with client.app.state.service.db.session() as s:  # type: ignore[attr-defined]
        row = s.query(SettlementRow).filter(SettlementRow.round_id == round_id).one()
        return dict(row.record)


def test_empty_value_is_a_recorded_round_option(client: TestClient, operator_headers) -> None:
    market = make_market_with_parties(client, 3)
    default = run_round_to_completion(client, market.id, operator_headers)
    zero = run_round_to_completion(
        client,
        market.id,
        operator_headers,
        learner={"name": "logistic_regression", "params": {"standardize": True}},
        payment_rule="ohrimenko",
        empty_value="zero",
    )
    assert default["config"]["empty_value"] == "majority"
    assert zero["config"]["empty_value"] == "zero"
    for rnd, expected in ((default, "majority"), (zero, "zero")):
        record = _record(client, rnd["id"])
        assert record["empty_value"] == expected and record["format_version"] == 4
        assert Settlement.from_dict(record).verify().ok
        s = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=operator_headers).json()
        assert s["empty_value"] == expected
        assert s["totals"]["payout"] == pytest.approx(s["totals"]["charge"], abs=1e-9)
        assert_ledger_balanced(client, rnd["id"], operator_headers)
    # a number is accepted and recorded as given
    half = run_round_to_completion(client, market.id, operator_headers, empty_value=0.5)
    assert _record(client, half["id"])["empty_value"] == 0.5


@pytest.mark.parametrize("bad", ["none", "0.5", True, 1.5, -1, None])
def test_empty_value_is_validated(client: TestClient, operator_headers, bad) -> None:
    market = make_market_with_parties(client, 2)
    body = {"learner": {"name": "gaussian_nb", "params": {}}, "empty_value": bad}
    r = client.post(f"{API}/markets/{market.id}/rounds", json=body, headers=operator_headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert "body field 'empty_value'" in error["message"]
    assert "must be 'majority', 'zero' or a number in [0, 1]" in error["message"]
    assert f"(received {bad!r})" in error["message"]


def test_a_refunded_round_is_flagged_for_operator_and_parties(client: TestClient) -> None:
    market = make_market_with_parties(client, 3, names=["alice", "bob", "carol"])
    rnd = run_round_to_completion(client, market.id)  # naive Bayes, one shared task
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    s = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=operator).json()
    # the pooled model is worse overall than the parties' own: the paper's formulas
    # would pay out a negative total; coopml refunds every charge and says so
    assert s["totals"]["improvement"] < 0
    assert s["totals"]["charge"] == 0.0 and s["totals"]["payout"] == 0.0
    assert all(line["payout"] >= 0 for line in s["lines"])
    assert [f["code"] for f in s["flags"]] == ["no_positive_improvement"]
    assert "the improvements sum to" in s["flags"][0]["message"]
    assert_ledger_balanced(client, rnd["id"], operator)
    record = _record(client, rnd["id"])
    assert record["flags"][0]["parties"] == ["alice", "bob", "carol"]
    # a party learns that the rule applied, not who else was concerned
    alice = market.parties[0]
    mine = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=alice.headers).json()
    assert mine["flags"] == [
        {"code": "no_positive_improvement", "message": FLAG_SUMMARIES["no_positive_improvement"]}
    ]
    # the dashboard's round page shows the convention and the flag
    login(client, OPERATOR_TOKEN)
    page = client.get(f"/ui/rounds/{rnd['id']}").text
    assert "<dt>Empty coalition</dt><dd>majority</dd>" in page
    assert 'data-code="no_positive_improvement"' in page
    assert str(escape(s["flags"][0]["message"])) in page
    login(client, alice.token)
    page = client.get(f"/ui/rounds/{rnd['id']}").text
    assert str(escape(FLAG_SUMMARIES["no_positive_improvement"])) in page
    assert "bob" not in page and "carol" not in page
