"""Malformed uploads and requests: each answers 4xx with a message naming the problem,
and leaves the database rows and the blob files exactly as they were."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.service.conftest import postgres_database

from coopml.service.client import CoopmlClient

OPERATOR_TOKEN = "operator-token-for-bad-input-0123456789"
MAX_UPLOAD = 64 * 1024
GOOD = b"a,b,c,d,label\n0.1,0.2,0.3,0.4,0\n1.1,1.2,1.3,1.4,1\n2.0,0.5,0.1,0.3,0\n"


def _csv(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


@dataclass
class Case:
    """One bad request. ``kind``: upload (multipart as alice) or a JSON request."""

    id: str
    keywords: tuple[str, ...]  # the message names at least one of these (case-insensitive)
    status: tuple[int, ...] = (400, 409, 415, 422)
    upload: bytes | None = None
    filename: str = "data.csv"
    file_field: str = "file"
    form: dict[str, str] = field(default_factory=lambda: {"role": "train", "target": "label"})
    method: str = "POST"
    path: str = ""  # with {market}, {empty_market}, {train_only_market}
    json_body: Any = None
    raw_body: bytes | None = None
    as_party: bool = False
    params: dict[str, Any] = field(default_factory=dict)


def _round(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "learner": {"name": "gaussian_nb", "params": {}},
        "payment_rule": "shapley",
        "fee_price": 1.0,
        "tasks": "per_party",
    }
    body.update(changes)
    return body


NAN = _csv("a,b,c,d,label", ["0.1,nan,0.3,0.4,0", "1,2,3,4,1", "1,1,1,1,0"])
BLANK = _csv("a,b,c,d,label", ["0.1,,0.3,0.4,0", "1,2,3,4,1", "1,1,1,1,0"])
rng = np.random.default_rng(0)
CASES = [
    Case("missing_target", ("nope",), form={"role": "train", "target": "nope"}, upload=GOOD),
    Case(
        "wrong_schema",
        ("column", "schema", "feature"),
        upload=_csv("a,b,e,d,label", ["1,2,3,4,0", "2,3,4,5,1"]),
    ),
    Case(
        "fewer_columns",
        ("column", "schema", "feature"),
        upload=_csv("a,b,label", ["1,2,0", "2,3,1"]),
    ),
    Case("nan_feature", ("nan", "missing", "finite")),
    Case("blank_cell", ("nan", "missing", "finite", "empty")),
    Case(
        "infinite_feature",
        ("inf", "finite"),
        upload=_csv("a,b,c,d,label", ["0.1,inf,0.3,0.4,0", "1,2,3,4,1"]),
    ),
    Case(
        "non_numeric_feature",
        ("numeric", "'c'", "number", "float"),
        upload=_csv("a,b,c,d,label", ["0.1,0.2,abc,0.4,0", "1,2,x,4,1"]),
    ),
    Case(
        "nan_target",
        ("nan", "missing", "finite", "label"),
        upload=_csv("a,b,c,d,label", ["0.1,0.2,0.3,0.4,", "1,2,3,4,1", "1,1,1,1,0"]),
    ),
    Case("empty_file", ("empty", "no data", "no rows", "row")),
    Case("header_only", ("row",), upload=b"a,b,c,d,label\n"),
    Case("single_row", ("row",), upload=_csv("a,b,c,d,label", ["1,2,3,4,0"])),
    Case(
        "duplicate_columns",
        ("duplicate", "'a'", "unique"),
        upload=_csv("a,a,c,d,label", ["1,2,3,4,0", "2,3,4,5,1"]),
    ),
    Case(
        "utf16_encoding",
        ("utf", "encod", "decode", "csv", "pars"),
        upload=GOOD.decode().encode("utf-16"),
    ),
    Case(
        "binary_garbage_csv",
        ("utf", "encod", "decode", "csv", "pars", "read"),
        upload=bytes(rng.integers(0, 256, 3000, dtype=np.uint8)),
    ),
    Case(
        "garbage_parquet",
        ("parquet", "read", "pars", "format"),
        upload=b"PAR1 this is not parquet at all",
        filename="data.parquet",
    ),
    Case(
        "ragged_rows",
        ("row", "field", "column", "pars", "token"),
        upload=_csv("a,b,c,d,label", ["1,2,3,4,0", "1,2,3,4,5,6,7", "2,3,4,5,1"]),
    ),
    Case(
        "oversized",
        ("large", "size", "byte", "limit"),
        status=(413,),
        upload=b"a,b,c,d,label\n" + b"0.123456,0.2,0.3,0.4,0\n" * (MAX_UPLOAD // 20),
    ),
    Case("bad_role", ("role", "test"), upload=GOOD, form={"role": "test", "target": "label"}),
    Case("missing_target_field", ("target",), upload=GOOD, form={"role": "train"}),
    Case(
        "missing_file_field",
        ("'file'",),
        upload=GOOD,
        file_field="document",
        form={"role": "train", "target": "label"},
    ),
    Case(
        "not_multipart",
        ("multipart",),
        status=(415,),
        path="/markets/{market}/datasets",
        json_body={"role": "train", "target": "label", "file": "a,b\n1,2\n"},
        as_party=True,
    ),
    Case(
        "upload_to_unknown_market",
        ("market",),
        status=(404,),
        upload=GOOD,
        path="/markets/0123456789abcdef0123456789abcdef/datasets",
    ),
    Case(
        "unknown_learner",
        ("no_such_learner",),
        path="/markets/{market}/rounds",
        json_body=_round(learner={"name": "no_such_learner", "params": {}}),
    ),
    Case(
        "param_outside_allow_list",
        ("evil_param",),
        path="/markets/{market}/rounds",
        json_body=_round(learner={"name": "gaussian_nb", "params": {"evil_param": 1}}),
    ),
    Case(
        "param_value_out_of_range",
        ("n_estimators",),
        path="/markets/{market}/rounds",
        json_body=_round(learner={"name": "random_forest", "params": {"n_estimators": 10**9}}),
    ),
    Case(
        "unknown_payment_rule",
        ("payment_rule", "robin_hood"),
        path="/markets/{market}/rounds",
        json_body=_round(payment_rule="robin_hood"),
    ),
    Case(
        "non_positive_fee",
        ("fee_price",),
        path="/markets/{market}/rounds",
        json_body=_round(fee_price=0.0),
    ),
    Case(
        "round_without_data",
        ("data", "validation", "train"),
        path="/markets/{empty_market}/rounds",
        json_body=_round(),
    ),
    Case(
        "round_without_validation_data",
        ("validation",),
        path="/markets/{train_only_market}/rounds",
        json_body=_round(),
    ),
    Case(
        "bad_market_task",
        ("task", "clustering"),
        path="/markets",
        json_body={"name": "m", "task": "clustering"},
    ),
    Case(
        "bad_party_name",
        ("name",),
        path="/markets/{market}/parties",
        json_body={"name": "no spaces allowed!"},
    ),
    Case(
        "duplicate_party_name",
        ("alice",),
        path="/markets/{market}/parties",
        json_body={"name": "alice"},
    ),
    Case(
        "malformed_json",
        ("json", "body", "decode"),
        path="/markets",
        raw_body=b'{"name": "m", "task": ',
    ),
    Case("limit_too_large", ("limit",), method="GET", path="/markets", params={"limit": 100000}),
    Case("negative_offset", ("offset",), method="GET", path="/markets", params={"offset": -1}),
]
for case in CASES:
    if case.id in {"nan_feature", "blank_cell", "empty_file"} and case.upload is None:
        case.upload = {"nan_feature": NAN, "blank_cell": BLANK, "empty_file": b""}[case.id]


@contextmanager
def _database(kind: str) -> Iterator[str | None]:
    """``None`` (SQLite in the data directory) or the URL of a fresh PostgreSQL database,
    dropped afterwards; skips when PostgreSQL is unreachable."""
    if kind == "sqlite":
        yield None
        return
    yield from postgres_database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request, tmp_path_factory):
    """A market with a fixed schema, an empty market and a train-only market, on SQLite
    and on a fresh PostgreSQL database."""
    from coopml.service import Settings

    with _database(request.param) as database_url:
        settings = Settings(
            tmp_path_factory.mktemp("svc"),
            database_url=database_url,
            operator_token=OPERATOR_TOKEN,
            max_upload_bytes=MAX_UPLOAD,
        )
        yield from _world(settings)


def _world(settings):
    from fastapi.testclient import TestClient

    from coopml.service import create_app

    app = create_app(settings)
    with TestClient(app) as http:
        op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=http)
        market = op.create_market("bad_input")
        alice = op.add_party(market["id"], "alice")
        alice_client = op.with_token(alice["token"])
        alice_client.upload_dataset(market["id"], GOOD, role="train", target="label")
        alice_client.upload_dataset(market["id"], GOOD, role="validation", target="label")
        empty_market = op.create_market("empty")
        op.add_party(empty_market["id"], "lonely")
        train_only = op.create_market("train_only")
        for name in ("t1", "t2"):
            t = op.add_party(train_only["id"], name)
            t_client = op.with_token(t["token"])
            t_client.upload_dataset(train_only["id"], GOOD, role="train", target="label")
        yield {
            "http": http,
            "settings": settings,
            "alice": alice,
            "ids": {
                "market": market["id"],
                "empty_market": empty_market["id"],
                "train_only_market": train_only["id"],
            },
        }
    app.state.service.db.dispose()


def _snapshot(settings) -> tuple[dict[str, int], dict[str, str]]:
    """Row counts of every table and the sha256 of every file outside the database."""
    import sqlalchemy as sa

    engine = sa.create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            counts = {
                t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
                for t in tables
            }
    finally:
        engine.dispose()
    files = {}
    data_dir = Path(settings.data_dir)
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and not path.name.startswith("coopml.db"):
            files[str(path.relative_to(data_dir))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return counts, files


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_request_is_4xx_with_clear_message_and_changes_nothing(world, case):
    http, ids = world["http"], world["ids"]
    before = _snapshot(world["settings"])
    if case.upload is not None:
        token = world["alice"]["token"]
        path = case.path or "/markets/{market}/datasets"
        files = {case.file_field: (case.filename, case.upload, "application/octet-stream")}
        kwargs: dict[str, Any] = {"data": case.form, "files": files}
    else:
        token = world["alice"]["token"] if case.as_party else OPERATOR_TOKEN
        path = case.path
        kwargs = {"params": case.params}
        if case.raw_body is not None:
            kwargs["content"] = case.raw_body
            kwargs["headers"] = {"Content-Type": "application/json"}
        elif case.json_body is not None:
            kwargs["json"] = case.json_body
    url = "/api/v1" + path.format(**ids)
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    response = http.request(case.method, url, headers=headers, **kwargs)
    assert response.status_code in case.status, (response.status_code, response.text[:500])
    error = response.json()["error"]
    assert error["code"] and error["request_id"], error
    assert response.headers.get("x-request-id") == error["request_id"]
    message = error["message"].lower()
    assert any(k.lower() in message for k in case.keywords), (
        f"{case.id}: message {error['message']!r} names none of {case.keywords}"
    )
    after = _snapshot(world["settings"])
    assert after[0] == before[0], f"{case.id} changed row counts: {before[0]} -> {after[0]}"
    assert after[1] == before[1], f"{case.id} changed files under the data directory"


def test_there_are_at_least_twenty_cases():
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


def test_good_upload_after_bad_ones_still_works(world):
    """The schema fixed by the first upload still accepts a well-formed file, and the
    snapshot used above does see what a good upload writes (a row and a blob)."""
    http, ids = world["http"], world["ids"]
    before = _snapshot(world["settings"])
    response = http.post(
        f"/api/v1/markets/{ids['market']}/datasets",
        headers={"Authorization": f"Bearer {world['alice']['token']}"},
        data={"role": "validation", "target": "label"},
        files={"file": ("v.csv", GOOD + b"3.0,0.1,0.2,0.3,1\n", "text/csv")},
    )
    assert response.status_code == 201, response.text
    assert json.loads(response.text)["n_features"] == 4
    after = _snapshot(world["settings"])
    assert sum(after[0].values()) > sum(before[0].values())
    assert len(after[1]) == len(before[1]) + 1
    # the new blob is encrypted at rest, and the key file is private
    data_dir = Path(world["settings"].data_dir)
    (new,) = set(after[1]) - set(before[1])
    stored = (data_dir / new).read_bytes()
    assert b"a,b,c,d,label" not in stored and b"3.0,0.1,0.2,0.3,1" not in stored
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600


def test_hostile_file_name_stays_inside_the_data_directory(world):
    """A client-chosen file name never becomes a path: the upload lands in the blob store."""
    http, ids = world["http"], world["ids"]
    data_dir = Path(world["settings"].data_dir)
    before = {p for p in data_dir.parent.rglob("*") if not p.is_relative_to(data_dir)}
    response = http.post(
        f"/api/v1/markets/{ids['market']}/datasets",
        headers={"Authorization": f"Bearer {world['alice']['token']}"},
        data={"role": "train", "target": "label"},
        files={"file": ("../../../escape.csv", GOOD + b"4.0,0.2,0.2,0.2,1\n", "text/csv")},
    )
    assert response.status_code in (201, 422), response.text
    after = {p for p in data_dir.parent.rglob("*") if not p.is_relative_to(data_dir)}
    assert after == before
    assert not list(data_dir.rglob("escape.csv"))
    if response.status_code == 201:
        content = http.get(
            f"/api/v1/datasets/{response.json()['id']}/content",
            headers={"Authorization": f"Bearer {world['alice']['token']}"},
        )
        assert content.status_code == 200 and content.content.startswith(b"a,b,c,d,label")
        assert "\n" not in content.headers.get("content-disposition", "")
