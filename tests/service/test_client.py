"""CoopmlClient: request shapes and error handling (mock transport), and a full round
through the real app in-process."""

from __future__ import annotations

import io
import json
import pickle

import httpx
import numpy as np
import pytest

from coopml.service import responses
from coopml.service.client import CoopmlClient, ServiceError


def _mock(handler):
    return CoopmlClient("http://svc.test/", "tok-123", transport=httpx.MockTransport(handler))


def test_requests_carry_token_prefix_and_encoded_ids():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "x", "status": "queued"})

    client = _mock(handler)
    client.get_round("a/../b?c")
    client.list_markets(limit=5)
    client.open_round("m1", "ridge", {"alpha": 0.5}, payment_rule="banzhaf", fee_price=2.0)
    assert seen[0].headers["authorization"] == "Bearer tok-123"
    assert seen[0].url.raw_path == b"/api/v1/rounds/a%2F..%2Fb%3Fc"
    assert seen[1].url.path == "/api/v1/markets" and seen[1].url.params["limit"] == "5"
    assert "offset" not in seen[1].url.params
    assert json.loads(seen[2].content) == {
        "learner": {"name": "ridge", "params": {"alpha": 0.5}},
        "payment_rule": "banzhaf",
        "fee_price": 2.0,
    }


def test_error_body_becomes_service_error():
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "not_found", "message": "no round 'r9'", "request_id": "q1"}}
        return httpx.Response(404, json=body, headers={"X-Request-ID": "q1"})

    with pytest.raises(ServiceError) as info:
        _mock(handler).get_round("r9")
    err = info.value
    assert (err.status, err.code, err.message, err.request_id) == (
        404,
        "not_found",
        "no round 'r9'",
        "q1",
    )
    assert "404 not_found: no round 'r9'" in str(err)
    assert pickle.loads(pickle.dumps(err)).message == err.message


@pytest.mark.parametrize(
    ("response", "code", "text"),
    [
        (httpx.Response(502, text="Bad Gateway from proxy"), "http_502", "Bad Gateway from proxy"),
        (httpx.Response(422, json={"detail": "field x"}), "http_422", "field x"),
        (httpx.Response(500, content=b""), "http_500", "Internal Server Error"),
    ],
)
def test_error_without_the_standard_body(response, code, text):
    with pytest.raises(ServiceError) as info:
        _mock(lambda request: response).me()
    assert info.value.code == code and text in info.value.message


def test_unreachable_service_is_a_service_error_with_status_0():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ServiceError) as info:
        _mock(handler).health()
    assert info.value.status == 0 and info.value.code == "unreachable"
    assert "http://svc.test" in info.value.message


def test_constructor_validates():
    with pytest.raises(ValueError, match="base_url"):
        CoopmlClient("127.0.0.1:8000")
    with pytest.raises(ValueError, match="timeout"):
        CoopmlClient("http://x", timeout=0)


def test_upload_sends_multipart_from_path_bytes_and_handle(tmp_path):
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        assert request.headers["content-type"].startswith("multipart/form-data")
        return httpx.Response(201, json={"id": "d1"})

    client = _mock(handler)
    path = tmp_path / "alice_train.csv"
    path.write_bytes(b"a,b,y\n1,2,0\n3,4,1\n")
    client.upload_dataset("m1", path, role="train", target="y", name="alice")
    client.upload_dataset("m1", b"a,y\n1,0\n", role="validation", target="y")
    client.upload_dataset("m1", io.BytesIO(b"PAR1"), role="train", target="y", filename="x.parquet")
    assert b'filename="alice_train.csv"' in bodies[0] and b"a,b,y\n1,2,0" in bodies[0]
    assert b'name="target"' in bodies[0] and b'name="name"' in bodies[0]
    assert b'filename="data.csv"' in bodies[1] and b'name="name"' not in bodies[1]
    assert b'filename="x.parquet"' in bodies[2]


def test_iter_pages_walks_every_page():
    items = [{"id": str(i)} for i in range(7)]

    def handler(request: httpx.Request) -> httpx.Response:
        limit, offset = int(request.url.params["limit"]), int(request.url.params["offset"])
        page = items[offset : offset + limit]
        return httpx.Response(
            200, json={"items": page, "total": len(items), "limit": limit, "offset": offset}
        )

    assert [i["id"] for i in _mock(handler).iter_pages("/audit-log", page_size=3)] == [
        str(i) for i in range(7)
    ]


def test_wait_round_polls_until_final_and_times_out():
    states = iter(["queued", "running", "completed"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "r", "status": next(states), "progress": 0.5})

    seen: list[str] = []
    final = _mock(handler).wait_round(
        "r", poll_interval=0.0, on_update=lambda s: seen.append(s["status"])
    )
    assert final["status"] == "completed" and seen == ["queued", "running", "completed"]
    stuck = _mock(lambda request: httpx.Response(200, json={"id": "r", "status": "running"}))
    with pytest.raises(TimeoutError, match="still 'running'"):
        stuck.wait_round("r", timeout=0.05, poll_interval=0.01)


def test_predict_sends_floats_and_returns_list():
    def handler(request: httpx.Request) -> httpx.Response:
        rows = json.loads(request.content)["rows"]
        assert rows == [[1.0, 2.0], [3.5, 4.0]]
        return httpx.Response(200, json={"predictions": [0, 1]})

    assert _mock(handler).predict("r", np.array([[1, 2], [3.5, 4]])) == [0, 1]


# ---------------------------------------------------------------------------- real app
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


def party_csvs(n: int = 3) -> tuple[list[dict[str, bytes]], np.ndarray]:
    """Breast-cancer rows split into ``n`` parties' train/validation CSV files."""
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    chunks = np.array_split(order, 2 * n)
    columns = [f"x{j}" for j in range(X.shape[1])]
    files = []
    for i in range(n):
        pair = {}
        for role, idx in (("train", chunks[2 * i]), ("validation", chunks[2 * i + 1])):
            frame = pd.DataFrame(X[idx].round(5), columns=columns).assign(label=y[idx])
            pair[role] = frame.to_csv(index=False).encode()
        files.append(pair)
    return files, X[chunks[1]]


@pytest.fixture(scope="module")
def service_round(tmp_path_factory):
    """A completed three-party round on a fresh in-process service."""
    from fastapi.testclient import TestClient

    from coopml.service import Settings, create_app

    settings = Settings(tmp_path_factory.mktemp("svc"), operator_token=OPERATOR_TOKEN)
    files, X_val = party_csvs(3)
    with TestClient(create_app(settings)) as http:
        op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=http)
        market = op.create_market(
            "hospitals", task="classification", release_policy="aggregate_only"
        )
        parties = []
        for name, pair in zip(["alice", "bob", "carol"], files, strict=True):
            party = op.add_party(market["id"], name)
            client = op.with_token(party["token"])
            for role, content in pair.items():
                client.upload_dataset(market["id"], content, role=role, target="label")
            parties.append({**party, "client": client, "files": pair})
        rnd = op.open_round(
            market["id"], "gaussian_nb", payment_rule="shapley", fee_price=1.0, tasks="per_party"
        )
        assert rnd["status"] in {"queued", "running", "completed"}
        rnd = op.wait_round(rnd["id"], timeout=120, poll_interval=0.1)
        assert rnd["status"] == "completed", rnd
        yield {"operator": op, "parties": parties, "market": market, "round": rnd, "X_val": X_val}


def test_full_round_through_the_app(service_round):
    """Operator and parties drive a three-party round; each sees only its own line."""
    op, parties, rnd = service_round["operator"], service_round["parties"], service_round["round"]
    assert op.me()["role"] == "operator"
    assert op.health()["status"] == "ok"
    settlement = op.settlement(rnd["id"])
    assert len(settlement["lines"]) == 3
    names = {line["name"] for line in settlement["lines"]}
    assert names == {p["name"] for p in parties}
    for p in parties:
        me = p["client"].me()
        assert me["role"] == "party" and me["name"] == p["name"]
        own = p["client"].settlement(rnd["id"])
        assert [line["name"] for line in own["lines"]] == [p["name"]]
        model = p["client"].download_model(rnd["id"])
        assert model[:2] == b"PK"  # skops files are zip archives
        preds = p["client"].predict(rnd["id"], service_round["X_val"][:5])
        assert len(preds) == 5
        log = p["client"].audit_log()
        assert log["total"] >= 2  # the download and the prediction at least
    audit = op.audit(rnd["id"])
    assert {"balance", "verification"} <= set(audit)
    assert_ledger_balanced(list(op.iter_pages(f"/rounds/{rnd['id']}/ledger")))


def test_pagination_and_dataset_content_round_trip(service_round):
    op, parties = service_round["operator"], service_round["parties"]
    market_id = service_round["market"]["id"]
    page = op.list_datasets(market_id, limit=2, offset=0)
    assert page["total"] == 6 and len(page["items"]) == 2 and page["limit"] == 2
    every = list(op.iter_pages(f"/markets/{market_id}/datasets", page_size=4))
    assert len({d["id"] for d in every}) == 6
    alice = parties[0]
    own = alice["client"].list_datasets(market_id)
    assert own["total"] == 2 and all(d["party_id"] == alice["id"] for d in own["items"])
    dataset = own["items"][0]
    assert alice["client"].get_dataset(dataset["id"])["sha256"] == dataset["sha256"]
    content = alice["client"].dataset_content(dataset["id"])
    assert content == alice["files"][dataset["role"]]
    with pytest.raises(ServiceError) as info:
        parties[1]["client"].dataset_content(dataset["id"])
    assert info.value.status == 404


def assert_ledger_balanced(entries: list[dict]) -> None:
    assert entries
    sign = {"fee_collected": 1.0, "fee_returned": -1.0, "payout": -1.0}
    assert abs(sum(sign[e["kind"]] * float(e["amount"]) for e in entries)) < 1e-9


# ---------------------------------------------------------------------------- typed results
def _shape(node, defs):
    """A JSON schema without names, titles, descriptions, defaults and formats: what a
    model's JSON and its TypedDict must agree on (keys and value types)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _shape(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        drop = {"title", "description", "default", "format", "required", "$defs"}
        return {k: _shape(v, defs) for k, v in node.items() if k not in drop}
    if isinstance(node, list):
        return sorted((_shape(v, defs) for v in node), key=repr)
    return node


def _json_shape(schema):
    return _shape(schema, schema.get("$defs", {}))


_OUT_MODELS = [name for name in responses.__all__ if name.endswith("Out") and name != "PredictOut"]


@pytest.mark.parametrize("name", _OUT_MODELS)
def test_typed_results_match_the_api_response_models(name):
    """Each TypedDict the client returns has the keys and value types of the JSON of the
    response model the service answers with (timestamps as strings)."""
    from pydantic import TypeAdapter

    model = getattr(responses, name)
    typed = getattr(responses, name.removesuffix("Out") + "Dict")
    assert _json_shape(TypeAdapter(typed).json_schema(mode="serialization")) == _json_shape(
        model.model_json_schema(mode="serialization")
    )


def test_page_of_typed_results_matches_the_api_page():
    from pydantic import TypeAdapter

    typed = TypeAdapter(responses.PageDict[responses.RoundDict]).json_schema()
    model = responses.Page[responses.RoundOut].model_json_schema(mode="serialization")
    assert _json_shape(typed) == _json_shape(model)


def test_real_answers_have_exactly_the_typed_keys(service_round):
    from pydantic import TypeAdapter

    op, rnd = service_round["operator"], service_round["round"]
    alice = service_round["parties"][0]["client"]
    market_id = service_round["market"]["id"]
    pages = {
        responses.MarketDict: op.list_markets(),
        responses.PartyDict: op.list_parties(market_id),
        responses.DatasetDict: op.list_datasets(market_id),
        responses.RoundDict: op.list_rounds(market_id),
        responses.LedgerEntryDict: op.ledger(rnd["id"]),
        responses.AuditLogEntryDict: alice.audit_log(),
    }
    answers = [
        (responses.HealthDict, op.health()),
        (responses.MeDict, alice.me()),
        (responses.MarketDict, op.get_market(market_id)),
        (responses.RoundDict, op.get_round(rnd["id"])),
        (responses.SettlementDict, op.settlement(rnd["id"])),
        (responses.AuditDict, op.audit(rnd["id"])),
        (responses.PartyCreatedDict, op.add_party(market_id, "dave")),
    ]
    for typed, page in pages.items():
        assert set(page) == responses.PageDict.__required_keys__
        answers += [(typed, item) for item in page["items"]]
    for typed, answer in answers:
        assert set(answer) == typed.__required_keys__, typed.__name__
        TypeAdapter(typed).validate_python(answer, strict=True)
