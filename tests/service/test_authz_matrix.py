"""Authorization matrix: every route of the app, called as nobody, with a bad token, as a
party of another market and as another party of the same market.

Expected: 401 without a (valid) token; 403 for operator-only actions; 404 for another
party's items; and no response body, whatever its status, contains another party's
ids, name, token, dataset fingerprints, settlement line or predictions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from starlette.routing import Mount

from coopml.service.client import CoopmlClient

OPERATOR_TOKEN = "operator-token-for-authz-tests-0123456789"
PREFIX = "/api/v1"
#: Routes anybody may call.
PUBLIC = {
    f"{PREFIX}/health",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/login",
    "/logout",
    "/favicon.ico",
    "/healthz",
    "/",  # redirects to the dashboard
}
DENIED = {401, 403, 404}


def _csv(seed: int, n: int = 40) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).round(4)
    y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    rows = ["a,b,c,d,label"] + [",".join(map(str, [*x, t])) for x, t in zip(X, y, strict=True)]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    settings = Settings(tmp_path_factory.mktemp("svc"), operator_token=OPERATOR_TOKEN)
    app = create_app(settings)
    with TestClient(app) as http:
        op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=http)
        market_a = op.create_market("market_a_3e1f")
        market_b = op.create_market("market_b_90cd")
        alice = op.add_party(market_a["id"], "alice_7c1e")
        bob = op.add_party(market_a["id"], "bob_2f9a")
        mallory = op.add_party(market_b["id"], "mallory_5d0b")
        datasets: dict[str, list[dict]] = {}
        for i, party in enumerate((alice, bob, mallory)):
            c = op.with_token(party["token"])
            datasets[party["name"]] = [
                c.upload_dataset(party["market_id"], _csv(10 * i + k), role=role, target="label")
                for k, role in enumerate(("train", "validation"))
            ]
        rnd = op.open_round(market_a["id"], "gaussian_nb", payment_rule="shapley", fee_price=1.0)
        rnd = op.wait_round(rnd["id"], timeout=120, poll_interval=0.1)
        assert rnd["status"] == "completed", rnd
        assert_ledger_balanced(op, rnd["id"])
        alice_client = op.with_token(alice["token"])
        alice_line = alice_client.settlement(rnd["id"])["lines"][0]
        alice_preds = alice_client.predict(rnd["id"], [[9.1, -3.3, 0.7, 2.2]])
        secrets = [
            alice["id"],
            alice["name"],
            alice["token"],
            *(d["id"] for d in datasets[alice["name"]]),
            *(d["sha256"] for d in datasets[alice["name"]]),
        ]
        yield {
            "app": app,
            "http": http,
            "market_a": market_a,
            "market_b": market_b,
            "alice": alice,
            "bob": bob,
            "mallory": mallory,
            "round": rnd,
            "dataset": datasets[alice["name"]][0],
            "alice_line": alice_line,
            "alice_preds": alice_preds,
            "secrets": secrets,
        }


def assert_ledger_balanced(op: CoopmlClient, round_id: str) -> None:
    """Σ fee_collected − Σ fee_returned − Σ payout = 0 over the round's ledger."""
    sign = {"fee_collected": 1.0, "fee_returned": -1.0, "payout": -1.0}
    entries = list(op.iter_pages(f"/rounds/{round_id}/ledger"))
    assert entries and abs(sum(sign[e["kind"]] * e["amount"] for e in entries)) < 1e-9


def _routes(app):
    """``(method, path)`` of every route of the app, included routers too."""
    from coopml.service.api import iter_routes

    routes = sorted(set(iter_routes(r for r in app.routes if not isinstance(r, Mount))))
    assert len(routes) >= 20, routes
    return routes


def _fill(path: str, world: dict) -> str:
    values = {
        "market_id": world["market_a"]["id"],
        "round_id": world["round"]["id"],
        "dataset_id": world["dataset"]["id"],
        "party_id": world["alice"]["id"],
    }

    def sub(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        assert name in values, f"authz matrix: add a value for path parameter {name!r} ({path})"
        return values[name]

    return re.sub(r"\{([^}]+)\}", sub, path)


def _call(http, method: str, path: str, token: str | None, world: dict):
    headers = {}
    if token is not None:
        headers = {"Authorization": f"Bearer {token}", "Cookie": f"coopml_token={token}"}
    kwargs: dict = {"headers": headers, "follow_redirects": False}
    if method in {"POST", "PUT", "PATCH"}:
        if path.endswith("/datasets"):
            kwargs["files"] = {"file": ("x.csv", _csv(99), "text/csv")}
            kwargs["data"] = {"role": "train", "target": "label"}
        elif path.endswith("/rounds"):
            kwargs["json"] = {
                "learner": {"name": "gaussian_nb", "params": {}},
                "payment_rule": "shapley",
                "fee_price": 1.0,
                "tasks": "per_party",
            }
        elif path.endswith("/predict"):
            kwargs["json"] = {"rows": [[0.0, 0.0, 0.0, 0.0]]}
        elif path.endswith("/parties"):
            kwargs["json"] = {"name": "eve_intruder"}
        elif path == f"{PREFIX}/markets":
            kwargs["json"] = {"name": "intruder_market", "task": "classification"}
        else:
            kwargs["json"] = {}
    return http.request(method, _fill(path, world), **kwargs)


def _assert_no_leak(response, world: dict, who: str, method: str, path: str) -> None:
    body = response.content.decode("utf-8", "replace")
    sent = str(response.request.url)  # echoing the id the caller sent reveals nothing
    for secret in world["secrets"]:
        if secret in sent:
            continue
        assert secret not in body, f"{who} {method} {path} leaks {secret!r}: {body[:300]}"
    if response.headers.get("content-type", "").startswith("application/json"):
        text = json.dumps(response.json())
        line = world["alice_line"]
        for key in ("payout", "fee", "net"):
            if key in line and isinstance(line[key], float) and abs(line[key]) > 1e-6:
                assert repr(line[key]) not in text or who == "operator", (
                    f"{who} {method} {path} contains alice's {key} {line[key]!r}"
                )


def _is_api(path: str) -> bool:
    return path.startswith(PREFIX)


class Soft:
    """Collect every failed check of a matrix, so one run reports all the holes."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    @contextmanager
    def check(self) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            self.problems.append(str(exc).split("\nassert")[0][:400])

    def assert_ok(self) -> None:
        assert not self.problems, f"{len(self.problems)} problems:\n" + "\n".join(self.problems)


def test_every_route_rejects_missing_and_bad_tokens(world):
    http, checked, soft = world["http"], 0, Soft()
    for method, path in _routes(world["app"]):
        if path in PUBLIC or "/static" in path:
            continue
        for token in (None, "not-a-token", world["alice"]["token"][:-2] + "xx"):
            with soft.check():
                _check_anonymous(http, method, path, token, world)
            checked += 1
    soft.assert_ok()
    assert checked >= 3 * 15, "fewer routes than the contract lists"


def _check_anonymous(http, method: str, path: str, token: str | None, world: dict) -> None:
    response = _call(http, method, path, token, world)
    _assert_no_leak(response, world, f"token={token!r}", method, path)
    where = (method, path, token, response.status_code)
    if _is_api(path):
        assert response.status_code == 401, (*where, response.text[:300])
        assert response.json()["error"]["code"], response.text
    elif 300 <= response.status_code < 400 and method == "GET":
        # dashboard pages may send (maybe via redirects) to the login page
        final = http.get(response.headers["location"], follow_redirects=True)
        _assert_no_leak(final, world, f"token={token!r}", method, path)
        login_page = "login" in str(final.url) or 'name="token"' in final.text
        assert final.status_code in DENIED or login_page, (*where, final.url)
    else:
        location = response.headers.get("location", "")
        redirect = 300 <= response.status_code < 400 and "login" in location
        assert response.status_code in DENIED or redirect, where


def test_party_of_another_market_sees_nothing(world):
    http, token, soft = world["http"], world["mallory"]["token"], Soft()
    for method, path in _routes(world["app"]):
        if path in PUBLIC or "/static" in path:
            continue
        with soft.check():
            response = _call(http, method, path, token, world)
            assert response.status_code < 500, (method, path, response.text[:300])
            _assert_no_leak(response, world, "mallory", method, path)
            if _is_api(path) and "{" in path:
                assert response.status_code in {403, 404}, (method, path, response.status_code)
            if _is_api(path) and method == "POST" and path == f"{PREFIX}/markets":
                assert response.status_code == 403
    soft.assert_ok()


#: Same market, other party: refused outright (operator-only or alice's items).
BOB_DENIED = {
    ("POST", f"{PREFIX}/markets"): {403},
    ("POST", f"{PREFIX}/markets/{{market_id}}/parties"): {403},
    ("POST", f"{PREFIX}/markets/{{market_id}}/rounds"): {403},
    ("GET", f"{PREFIX}/rounds/{{round_id}}/audit"): {403},
    ("GET", f"{PREFIX}/rounds/{{round_id}}/ledger"): {403},
    ("GET", f"{PREFIX}/datasets/{{dataset_id}}"): {404},
    ("GET", f"{PREFIX}/datasets/{{dataset_id}}/content"): {404},
}


def test_other_party_of_the_same_market(world):
    http, token, soft = world["http"], world["bob"]["token"], Soft()
    seen = set()
    for method, path in _routes(world["app"]):
        if path in PUBLIC or "/static" in path:
            continue
        if (method, path) == ("POST", f"{PREFIX}/markets/{{market_id}}/datasets"):
            continue  # bob may upload his own data; covered by test_bad_input
        with soft.check():
            response = _call(http, method, path, token, world)
            assert response.status_code < 500, (method, path, response.text[:300])
            _assert_no_leak(response, world, "bob", method, path)
            if (method, path) in BOB_DENIED:
                seen.add((method, path))
                allowed = BOB_DENIED[method, path] | {404}
                assert response.status_code in allowed, (method, path, response.status_code)
    soft.assert_ok()
    assert seen == set(BOB_DENIED), f"routes missing from the app: {set(BOB_DENIED) - seen}"


def test_party_reads_only_its_own_lines_lists_and_predictions(world):
    http = world["http"]
    bob = CoopmlClient("http://testserver", world["bob"]["token"], http_client=http)
    market_id, round_id = world["market_a"]["id"], world["round"]["id"]
    lines = bob.settlement(round_id)["lines"]
    assert [line["name"] for line in lines] == [world["bob"]["name"]]
    assert {d["party_id"] for d in bob.list_datasets(market_id)["items"]} == {world["bob"]["id"]}
    assert [p["id"] for p in bob.list_parties(market_id)["items"]] == [world["bob"]["id"]]
    assert [m["id"] for m in bob.list_markets()["items"]] == [market_id]
    for entry in bob.audit_log(limit=500)["items"]:
        assert world["alice"]["id"] not in json.dumps(entry)
        assert world["dataset"]["id"] != entry.get("item_id")
    mallory = bob.with_token(world["mallory"]["token"])
    assert [m["id"] for m in mallory.list_markets()["items"]] == [world["market_b"]["id"]]
    assert mallory.audit_log(limit=500)["total"] == 0 or all(
        world["market_a"]["id"] not in json.dumps(e) for e in mallory.audit_log()["items"]
    )
    op = bob.with_token(OPERATOR_TOKEN)
    assert len(op.settlement(round_id)["lines"]) == 2
    assert op.list_markets()["total"] >= 2


#: Owner-only items: not even the operator reads a party's data, model or predictions.
OWNER_ONLY = {
    ("GET", f"{PREFIX}/datasets/{{dataset_id}}/content"),
    ("GET", f"{PREFIX}/rounds/{{round_id}}/model"),
    ("POST", f"{PREFIX}/rounds/{{round_id}}/predict"),
    ("POST", f"{PREFIX}/markets/{{market_id}}/datasets"),
}


def test_operator_sees_all_but_owner_only_items(world):
    http, soft = world["http"], Soft()
    routes = set(_routes(world["app"]))
    assert routes >= OWNER_ONLY
    for method, path in sorted(routes):
        if path in PUBLIC or "/static" in path or (method, path) == ("POST", "/login"):
            continue
        with soft.check():
            response = _call(http, method, path, OPERATOR_TOKEN, world)
            assert response.status_code < 500, (method, path, response.text[:300])
            if (method, path) in OWNER_ONLY:
                assert response.status_code == 403, (method, path, response.status_code)
                assert world["alice_preds"] != response.json().get("predictions")
    soft.assert_ok()


def test_request_ids_are_echoed_or_replaced(world):
    http = world["http"]
    mine = http.get(f"{PREFIX}/health", headers={"X-Request-ID": "trace-42.a:b"})
    assert mine.headers["x-request-id"] == "trace-42.a:b"
    hostile = http.get(f"{PREFIX}/me", headers={"X-Request-ID": "evil id\twith <html>"})
    rid = hostile.headers["x-request-id"]
    assert rid != "evil id\twith <html>" and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", rid)
    assert hostile.json()["error"]["request_id"] == rid
