"""One vocabulary for a party's three figures (issue 16, item 6).

The service names a settlement line's figures as the library's
:class:`~coopml.market.settlement.PartyLine` does: ``own_gain``, ``model_gain`` and
``net_gain`` (before: ``value_before``, ``value_after`` and ``net``). Migration 0007
renames the columns of ``settlement_lines``; a database settled at 0006 keeps its
figures and its hash chains verify after the upgrade. The expected figures come from
the settlement record (``Settlement.to_dict()``, the library's names), not from the
renamed columns or the API under test.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, create_engine, inspect, text
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    make_market_with_parties,
    postgres_database,
    run_round_to_completion,
)
from tests.service.test_ledger_chain import _settings
from typer.testing import CliRunner

from coopml.cli import app as cli
from coopml.service import Settings, create_app
from coopml.service.storage.database import alembic_config
from coopml.service.web.render import render
from coopml.service.web.views import Viewer, round_row, settlement_view

runner = CliRunner()
NEW = ("own_gain", "model_gain", "net_gain")
OLD = ("value_before", "value_after", "net")
#: the new column of each old one
RENAMED = dict(zip(OLD, NEW, strict=True))


@pytest.fixture(params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A deployment (at head) with one settled round of three parties."""
    url = None
    gen = None
    if request.param == "postgresql":
        gen = postgres_database()
        url = next(gen)
    settings = _settings(tmp_path / "data", url)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            market = make_market_with_parties(client, 3, names=["alice", "bob", "carol"])
            # 1-NN on one shared task: the market's model beats some parties' own and
            # the net gains are not all 0, so a swapped column would show
            learner = {"name": "knn", "params": {"n_neighbors": 1}}
            run_round_to_completion(client, market.id, learner=learner)
    finally:
        app.state.service.db.dispose()
    yield settings
    if gen is not None:
        with pytest.raises(StopIteration):
            next(gen)


def _migrate(settings: Settings, action: str, revision: str) -> None:
    from alembic import command

    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


def _query(settings: Settings, sql: str) -> list[dict[str, Any]]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _columns(settings: Settings) -> set[str]:
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            return _line_columns(conn)
    finally:
        engine.dispose()


def _line_columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns("settlement_lines")}


def _recorded(settings: Settings) -> dict[str, dict[str, float]]:
    """Each party's three figures from the settlement record (the library's names)."""
    import json

    (row,) = _query(settings, "SELECT record FROM settlements")
    record = row["record"]
    if isinstance(record, str):  # SQLite returns the JSON text through raw SQL
        record = json.loads(record)
    return {p["name"]: {k: float(p[k]) for k in NEW} for p in record["parties"]}


def _lines(settings: Settings, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Each party's figures from the ``settlement_lines`` columns ``names``, keyed by
    party name and by the library's name of each figure."""
    rows = _query(settings, f"SELECT name, {', '.join(names)} FROM settlement_lines")
    to_new = {**RENAMED, **{n: n for n in NEW}}
    return {r["name"]: {to_new[k]: float(r[k]) for k in names} for r in rows}


def _assert_same(got: dict[str, dict[str, float]], want: dict[str, dict[str, float]]) -> None:
    assert sorted(got) == sorted(want)
    for name, figures in want.items():
        assert got[name] == pytest.approx(figures, abs=1e-12), name


def _verify(settings: Settings) -> tuple[int, str]:
    args = (
        ["--database-url", settings.resolved_database_url]
        if settings.database_url
        else ["--data-dir", str(settings.data_dir)]
    )
    env = {"COOPML_DATABASE_URL": "", "COOPML_SECRET_KEY": ""}
    result = runner.invoke(cli, ["ledger", "verify", *args], env=env)
    return result.exit_code, result.output


def test_0007_renames_the_columns_keeps_figures_and_chains(deployment: Settings) -> None:
    settings = deployment
    recorded = _recorded(settings)
    assert len(recorded) == 3
    # the test can tell the figures apart: no two of a party's figures are equal, and
    # the net gains are not all 0
    for figures in recorded.values():
        assert len({round(v, 12) for v in figures.values()}) == 3, recorded
    assert any(abs(f["net_gain"]) > 1e-6 for f in recorded.values()), recorded
    heads = _query(settings, "SELECT name, seq, entry_hash FROM chain_heads ORDER BY name")
    assert heads and all(h["seq"] > 0 for h in heads)

    # back to 0006: the old names, the same figures, the chains verify
    _migrate(settings, "downgrade", "0006")
    columns = _columns(settings)
    assert set(OLD) <= columns and not set(NEW) & columns
    _assert_same(_lines(settings, OLD), recorded)
    code, output = _verify(settings)
    assert code == 0, output

    # a database at 0006 with a settled round, upgraded to head
    _migrate(settings, "upgrade", "head")
    columns = _columns(settings)
    assert set(NEW) <= columns and not set(OLD) & columns
    _assert_same(_lines(settings, NEW), recorded)
    code, output = _verify(settings)
    assert code == 0 and "ok" in output, output
    after = _query(settings, "SELECT name, seq, entry_hash FROM chain_heads ORDER BY name")
    assert after == heads  # the migration wrote no ledger or audit entry

    # the API speaks the library's names only, with the record's figures
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            (rnd,) = _query(settings, "SELECT id FROM rounds")
            r = client.get(f"{API}/rounds/{rnd['id']}/settlement", headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
    finally:
        app.state.service.db.dispose()
    for line in body["lines"]:
        assert not set(OLD) & set(line), line
        assert {k: line[k] for k in NEW} == pytest.approx(recorded[line["name"]])
    assert "net" not in body["totals"]
    assert body["totals"]["net_gain"] == pytest.approx(
        sum(v["net_gain"] for v in recorded.values()), abs=1e-12
    )


def test_0007_downgrade_and_upgrade_on_an_empty_database(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data", None)
    settings.data_dir.mkdir(parents=True)
    _migrate(settings, "upgrade", "0007")
    assert set(NEW) <= _columns(settings)
    _migrate(settings, "downgrade", "0006")
    columns = _columns(settings)
    assert set(OLD) <= columns and not set(NEW) & columns
    # the unique constraint and the index survive SQLite's table rebuild
    _migrate(settings, "upgrade", "0007")
    engine = create_engine(settings.resolved_database_url)
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            uniques = {u["name"] for u in insp.get_unique_constraints("settlement_lines")}
            indexes = {i["name"] for i in insp.get_indexes("settlement_lines")}
    finally:
        engine.dispose()
    assert "uq_lines_round_party" in uniques
    assert "ix_settlement_lines_round_id" in indexes


def test_the_round_page_labels_the_figures_as_the_report_does() -> None:
    lines = [
        {
            "party_id": "pa",
            "name": "alice",
            "fee": 0.1,
            "fee_returned": 0.0,
            "payout": 0.3,
            "net_gain": 0.2,
            "own_gain": 0.9,
            "model_gain": 0.95,
        }
    ]
    operator = Viewer(role="operator", name="operator", party_id=None, market_id=None)
    view = settlement_view({"lines": lines}, operator)
    assert view["lines"][0]["own_gain"] == 0.9 and view["lines"][0]["model_gain"] == 0.95
    page = render(
        "round.html",
        user=operator,
        round=round_row({"id": "r1", "status": "completed", "progress": 1.0, "config": {}}),
        market={"id": "m1", "name": "m"},
        settlement=view,
        charts=[],
        audit=None,
    )
    start = page.index('<table class="data" id="settlement-table">')
    table = ET.fromstring(page[start : page.index("</table>", start) + len("</table>")])
    headers = [th.text for th in table.iter("th")][:7]
    assert headers[-2:] == ["Own score", "Model score"]  # as reports/market.py names them
    cells = [td.text for td in table.find("tbody").find("tr").iter("td")]  # type: ignore[union-attr]
    assert cells[4:7] == ["0.2000", "0.9000", "0.9500"]  # net gain, own, model
