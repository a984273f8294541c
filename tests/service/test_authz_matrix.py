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
        # the token routes act on dave (the operator's pass revokes his tokens, not alice's)
        dave = op.add_party(market_a["id"], "dave_4b7e")
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
            "dave": dave,
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
        "party_id": world["dave" if path.endswith("/token") else "alice"]["id"],
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
        for key in ("payout", "fee", "net_gain"):
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
    ("DELETE", f"{PREFIX}/datasets/{{dataset_id}}"): {404},
    ("DELETE", f"{PREFIX}/markets/{{market_id}}/parties/{{party_id}}/token"): {403},
    ("POST", f"{PREFIX}/markets/{{market_id}}/parties/{{party_id}}/token"): {403},
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


def test_only_the_operator_revokes_or_rotates_tokens(world):
    """No party, of this market or another, not even the token's owner, revokes or
    rotates a token (403); the operator does (204, 201)."""
    http, dave = world["http"], world["dave"]
    url = f"{PREFIX}/markets/{world['market_a']['id']}/parties/{dave['id']}/token"

    def me(token: str) -> int:
        return http.get(f"{PREFIX}/me", headers={"Authorization": f"Bearer {token}"}).status_code

    before = me(dave["token"])
    for who in ("alice", "bob", "mallory", "dave"):
        for method in ("DELETE", "POST"):
            r = http.request(
                method, url, headers={"Authorization": f"Bearer {world[who]['token']}"}
            )
            assert r.status_code == 403, (who, method, r.status_code)
            assert dave["token"] not in r.text
    assert me(dave["token"]) == before  # untouched
    auth = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    r = http.post(url, headers=auth)
    assert r.status_code == 201 and me(r.json()["token"]) == 200
    assert http.delete(url, headers=auth).status_code == 204
    assert me(r.json()["token"]) == 401 and me(dave["token"]) == 401


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
        if (method, path) == ("DELETE", f"{PREFIX}/datasets/{{dataset_id}}"):
            continue  # the operator may delete it (tests/service/test_api_datasets.py)
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


# ----------------------------------------------------------------------------- model content
# The authorization matrix extended to what a released model *contains*: for every learner
# the service offers and every release policy, a model file a party downloads holds no
# training row of another party (features, or an individual label read off a one-row tree
# leaf) unless the market's policy is 'full' (docs/service.md, "Released models").

POLICIES = ("query_only", "aggregate_only", "full")
#: Learners whose fitted state holds no individual row: released under aggregate_only.
AGGREGATE_LEARNERS = {"logistic_regression", "ridge", "linear_regression", "gaussian_nb"}
#: Learners that keep rows (kNN) or one-row leaves (trees, forests at default depth).
ROW_LEARNERS = {"knn", "decision_tree", "random_forest"}
PARTY_NAMES = ("alice_c1", "bob_c2", "carol_c3")


def _rows(seed: int, task: str, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).round(4)
    signal = X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.normal(size=n)
    y = (signal > 0).astype(int) if task == "classification" else signal.round(3)
    return X, y


def _table(X: np.ndarray, y: np.ndarray) -> bytes:
    rows = ["a,b,c,d,label"] + [",".join(map(str, [*x, t])) for x, t in zip(X, y, strict=True)]
    return ("\n".join(rows) + "\n").encode()


def _learner_cases() -> list[tuple[str, str]]:
    from coopml.service.learners import LEARNERS

    return [(task, name) for task in ("classification", "regression") for name in LEARNERS
            if task in LEARNERS[name].tasks]  # fmt: skip


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    """Per task and policy a market of three parties, and per learner a settled round
    (single task: every model is trained on everyone's rows); plus a per-party kNN round
    per policy (the testers' case: a party's own customised model)."""
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    settings = Settings(tmp_path_factory.mktemp("content"), operator_token=OPERATOR_TOKEN)
    with TestClient(create_app(settings)) as http:
        op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=http)
        markets, rounds, data, pending = {}, {}, {}, []
        for t, task in enumerate(("classification", "regression")):
            train = [_rows(100 * t + i, task) for i in range(3)]
            validation = [_rows(100 * t + 10 + i, task, 20) for i in range(3)]
            data[task] = train
            for policy in POLICIES:
                market = op.create_market(f"{task}-{policy}", task=task, release_policy=policy)
                clients = {}
                for name, rows, val in zip(PARTY_NAMES, train, validation, strict=True):
                    party = op.add_party(market["id"], name)
                    c = clients[name] = op.with_token(party["token"])
                    c.upload_dataset(market["id"], _table(*rows), role="train", target="label")
                    c.upload_dataset(market["id"], _table(*val), role="validation", target="label")
                markets[task, policy] = {"market": market, "clients": clients}
                for tk, learner in _learner_cases():
                    if tk != task:
                        continue
                    params = {"n_estimators": 10} if learner == "random_forest" else {}
                    rnd = op.open_round(
                        market["id"], learner, params=params, payment_rule="shapley",
                        fee_price=1.0,
                    )  # fmt: skip
                    rounds[task, policy, learner, "single"] = rnd["id"]
                    pending.append(rnd["id"])
                if task == "classification":
                    rnd = op.open_round(
                        market["id"], "knn", payment_rule="shapley", fee_price=1.0,
                        tasks="per_party",
                    )  # fmt: skip
                    rounds[task, policy, "knn", "per_party"] = rnd["id"]
                    pending.append(rnd["id"])
        for round_id in pending:
            done = op.wait_round(round_id, timeout=600, poll_interval=0.1)
            assert done["status"] == "completed", done
        yield {"op": op, "markets": markets, "rounds": rounds, "data": data}


def _state_arrays(obj, classes=None, seen=None):
    """``(array, kind, owner, classes)`` of every array in a loaded model: an independent,
    deliberately simple walk of ``__getstate__``/``vars`` (not the library's)."""
    seen = set() if seen is None else seen
    if isinstance(obj, str | bytes | int | float | bool | type(None) | np.generic):
        return
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        for name in obj.dtype.names or ():
            yield np.asarray(obj[name]), None, classes
        if not obj.dtype.names:
            yield obj, None, classes
        return
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if hasattr(obj, "tree_") and hasattr(obj, "apply"):
        yield None, obj, classes
    if hasattr(obj, "estimators_") and isinstance(getattr(obj, "classes_", None), np.ndarray):
        classes = obj.classes_
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, list | tuple) or (isinstance(obj, np.ndarray)):
        children = list(obj.ravel() if isinstance(obj, np.ndarray) else obj)
    else:
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else None
        if state is None and hasattr(obj, "__dict__"):
            state = vars(obj)
        children = list(state.values()) if isinstance(state, dict) else list(state or ())
    for child in children:
        yield from _state_arrays(child, classes, seen)


def _exposed(model, X_others: np.ndarray, y_others: np.ndarray) -> dict[str, int]:
    """How many of the other parties' rows a loaded model gives away: feature rows stored
    as they are or after the pipeline's steps, and labels of one-row tree leaves."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    views = [X_others]
    if hasattr(model, "steps"):
        views.append(np.asarray(model[:-1].transform(X_others), dtype=np.float64))
    keys = {}
    for view in views:
        for r, row in enumerate(np.ascontiguousarray(view, dtype=np.float64)):
            keys[row.tobytes()] = r
    rows, labels = set(), set()
    for array, tree, classes in _state_arrays(final):
        if array is not None and array.dtype.kind == "f" and array.shape[-1] == 4:
            for row in np.ascontiguousarray(array.reshape(-1, 4), dtype=np.float64):
                if row.tobytes() in keys:
                    rows.add(keys[row.tobytes()])
        if tree is not None:
            leaves = tree.apply(views[-1])
            t = tree.tree_
            for r, leaf in enumerate(leaves):
                if t.n_node_samples[leaf] != 1:
                    continue
                if hasattr(tree, "classes_"):
                    label = tree.classes_[int(np.argmax(t.value[leaf, 0]))]
                    label = classes[int(label)] if classes is not None else label
                    same = label == y_others[r]
                else:
                    same = np.isclose(t.value[leaf, 0, 0], y_others[r])
                if same:
                    labels.add(r)
    return {"rows": len(rows), "labels": len(labels)}


def _others(content, task: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [rows for n, rows in zip(PARTY_NAMES, content["data"][task], strict=True) if n != name]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_every_offered_learner_is_classified():
    """A learner added to the service must be placed in this matrix."""
    from coopml.service.learners import LEARNERS

    assert set(LEARNERS) == AGGREGATE_LEARNERS | ROW_LEARNERS


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(("task", "learner"), _learner_cases())
def test_released_models_hold_no_other_partys_rows(content, task, learner, policy):
    import skops.io as sio

    from coopml.service.client import ServiceError

    round_id = content["rounds"][task, policy, learner, "single"]
    clients = content["markets"][task, policy]["clients"]
    released = policy == "full" or (policy == "aggregate_only" and learner in AGGREGATE_LEARNERS)
    for name, client in clients.items():
        if not released:
            with pytest.raises(ServiceError) as refused:
                client.download_model(round_id)
            assert refused.value.status == 403 and refused.value.code == "model_not_released"
            assert f"'{policy}'" in refused.value.message
            for other in PARTY_NAMES:  # the reason names nobody
                assert other == name or other not in refused.value.message
            assert len(client.predict(round_id, [[0.1, 0.2, 0.3, 0.4]])) == 1
            continue
        content_bytes = client.download_model(round_id)
        model = sio.loads(content_bytes, trusted=sio.get_untrusted_types(data=content_bytes))
        X_others, y_others = _others(content, task, name)
        found = _exposed(model, X_others, y_others)
        if policy != "full":
            assert found == {"rows": 0, "labels": 0}, (learner, name, found)
        elif learner == "knn":  # 'full' releases them: all 80 rows of the other two
            assert found["rows"] == len(X_others), found
        elif learner in ROW_LEARNERS:
            assert found["labels"] > 0, found


@pytest.mark.parametrize("policy", POLICIES)
def test_a_partys_own_knn_model_under_each_policy(content, policy):
    """The testers' case: per-party rounds; a kNN model trained with other parties' rows
    is released only under 'full', and then holds their rows."""
    import skops.io as sio

    from coopml.service.client import ServiceError

    round_id = content["rounds"]["classification", policy, "knn", "per_party"]
    n_shared = 0
    for name, client in content["markets"]["classification", policy]["clients"].items():
        (line,) = client.settlement(round_id)["lines"]
        shared = line["n_members"] > 1
        n_shared += shared
        try:
            data = client.download_model(round_id)
        except ServiceError as exc:
            assert exc.status == 403
            assert policy == "query_only" or (policy == "aggregate_only" and shared)
            continue
        assert policy == "full" or (policy == "aggregate_only" and not shared)
        model = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        found = _exposed(model, *_others(content, "classification", name))
        assert (found["rows"] > 0) == (policy == "full" and shared), (name, found)
    assert n_shared >= 1  # some party's model was trained with others' rows


def test_the_operator_reads_each_models_release_verdict(content):
    op = content["op"]
    for learner in ("knn", "gaussian_nb"):
        round_id = content["rounds"]["classification", "aggregate_only", learner, "single"]
        verdicts = op.audit(round_id)["release"]
        assert sorted(v["name"] for v in verdicts) == sorted(PARTY_NAMES)
        for v in verdicts:
            assert v["releasable"] is (learner == "gaussian_nb"), v
            assert v["reason"]
            if learner == "knn":
                assert {"path": "_fit_X", "kind": "features", "n_rows": 80} in v["exposures"]
