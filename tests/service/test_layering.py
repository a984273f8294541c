"""The service's layers: routes and the dashboard call the domain, the API never imports
the dashboard, typed round requests and configurations, the runner's injected hook."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError
from tests.service.conftest import API, make_market_with_parties

import coopml.service
from coopml.market.payment import PAYMENT_RULES
from coopml.market.sampled_shares import DEFAULT_MAX_EVALUATIONS, DEFAULT_STDERR_TARGET
from coopml.service.api import create_api
from coopml.service.domain.rounds import PaymentRule, RoundConfig, RoundOptions
from coopml.service.jobs import Worker
from coopml.service.settings import Settings
from coopml.service.storage.models import Round

SERVICE = Path(coopml.service.__file__).parent
ROUND = {"learner": {"name": "gaussian_nb"}, "payment_rule": "shapley", "fee_price": 2.0}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("api", "coopml.service.web"),
        ("web", "coopml.service.api"),
        ("domain", "coopml.service.api"),
        ("domain", "coopml.service.web"),
        ("domain", "coopml.service.jobs"),
    ],
)
def test_layers_import_one_way(package: str, forbidden: str) -> None:
    offenders = {
        str(path.relative_to(SERVICE)): sorted(n for n in _imports(path) if n.startswith(forbidden))
        for path in (SERVICE / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_route_modules_hold_no_queries() -> None:
    for path in (SERVICE / "api" / "routes").glob("*.py"):
        names = _imports(path)
        assert not any(n.startswith(("sqlalchemy", "coopml.service.storage")) for n in names), (
            path.name
        )


def test_the_api_alone_serves_no_dashboard(settings: Settings) -> None:
    app = create_api(settings)
    with TestClient(app) as http:
        assert http.get(f"{API}/health").json()["status"] == "ok"
        page = http.get("/ui/markets")
        assert page.status_code == 404 and page.json()["error"]["code"] == "not_found"
    app.state.service.db.dispose()


def test_payment_rule_is_a_literal_of_the_payment_rules(
    client: TestClient, operator_headers: dict[str, str]
) -> None:
    assert set(get_args(PaymentRule)) == set(PAYMENT_RULES)
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    rule = schema["RoundIn"]["properties"]["payment_rule"]
    assert set(rule["enum"]) == set(PAYMENT_RULES)
    market = make_market_with_parties(client, 2)
    r = client.post(
        f"{API}/markets/{market.id}/rounds",
        json={**ROUND, "payment_rule": "robin_hood"},
        headers=operator_headers,
    )
    message = r.json()["error"]["message"]
    assert r.status_code == 422, r.text
    assert "payment_rule" in message and "'banzhaf'" in message and "robin_hood" in message


def test_round_options_check_their_cross_field_rules() -> None:
    with pytest.raises(ValidationError, match="needs duplicates 'report', 'drop' or 'merge'"):
        RoundOptions(payment_rule="similarity_shapley", duplicates="ignore")
    with pytest.raises(ValidationError, match="no sampling estimator"):
        RoundOptions(payment_rule="loo", valuation="monte_carlo")
    assert RoundOptions(payment_rule="similarity_shapley", duplicates="drop").duplicates == "drop"


def test_a_round_config_is_stored_and_read_back_typed(
    app: FastAPI, client: TestClient, operator_headers: dict[str, str]
) -> None:
    market = make_market_with_parties(client, 2)
    r = client.post(
        f"{API}/markets/{market.id}/rounds",
        json={**ROUND, "empty_value": 0.25, "tasks": "per_party"},
        headers=operator_headers,
    )
    assert r.status_code == 202, r.text
    with app.state.service.db.session() as s:
        rnd = s.get(Round, r.json()["id"])
        assert rnd is not None
        stored = dict(rnd.config)
        config = RoundConfig.of(rnd)
    assert config.payment_rule == "shapley" and config.empty_value == 0.25
    assert config.learner.name == "gaussian_nb" and config.tasks == "per_party"
    assert [p.name for p in config.inputs.parties] == [p.name for p in market.parties]
    assert config.stored() == stored
    # the API shows the stored configuration without the snapshot
    shown = r.json()["config"]
    assert "_inputs" not in shown and shown["features"] == config.inputs.features
    # a round stored before the later options existed reads back with their defaults
    legacy = {
        k: v
        for k, v in stored.items()
        if k not in ("empty_value", "valuation", "max_evaluations", "stderr_target")
    }
    old = RoundConfig.model_validate(legacy)
    assert (old.empty_value, old.valuation, old.max_evaluations, old.stderr_target) == (
        "majority",
        "auto",
        DEFAULT_MAX_EVALUATIONS,
        DEFAULT_STDERR_TARGET,
    )


def test_the_runner_calls_an_injected_hook_before_settling(
    app: FastAPI, client: TestClient, operator_headers: dict[str, str]
) -> None:
    assert not hasattr(app.state.service.settings, "round_delay_seconds")
    market = make_market_with_parties(client, 2)
    r = client.post(f"{API}/markets/{market.id}/rounds", json=ROUND, headers=operator_headers)
    round_id = r.json()["id"]
    seen: list[tuple[str, bool]] = []

    def before_settle(report: Callable[[float, str], None], lost: Callable[[], bool]) -> None:
        report(0.9, "held by the test")
        status = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
        seen.append((status["message"], lost()))

    worker = Worker(app.state.service, before_settle=before_settle)
    assert worker.run_once()
    assert seen == [("held by the test", False)]  # called once, before the settlement
    final = client.get(f"{API}/rounds/{round_id}", headers=operator_headers).json()
    assert final["status"] == "completed"
