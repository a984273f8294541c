"""Each party's privacy in a parties-custody round is shown (issue 17): the API's
settlement lines carry it (a party sees only its own line), ``coopml client settlement``
prints it and the dashboard's round page has a privacy table.

The round runs through the service's real round path with the in-process grid of
``test_custody_privacy_service.py`` (every message answered by an agent built afresh
from the party's node config): party_0 at ε = 8, party_1 at ε = 4, party_2 exact.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN
from typer.testing import CliRunner

pytest.importorskip("flwr")
from tests.service.test_custody_privacy_service import (
    DELTA,
    EPSILON,
    _frames,
    _settle,
    process_flower,  # noqa: F401 (the fixture)
)

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


@pytest.fixture
def settled(
    client: TestClient,
    tmp_path: Path,
    process_flower: dict[str, Any],  # noqa: F811
) -> dict[str, Any]:
    """A settled round of a parties-custody market with two private agents: the round,
    the stored record and each party's token."""
    body = {"name": "private consortium", "task": "classification", "custody": "parties"}
    r = client.post(f"{API}/markets", json=body, headers=OPERATOR)
    assert r.status_code == 201, r.text
    market = r.json()["id"]
    tokens = {}
    for i, frames in enumerate(_frames()):
        name = f"party_{i}"
        r = client.post(f"{API}/markets/{market}/parties", json={"name": name}, headers=OPERATOR)
        assert r.status_code == 201, r.text
        tokens[name] = r.json()["token"]
        config: dict[str, Any] = {
            "party": name,
            "target": "outcome",
            "features": "a,b,c",
            "log": str(tmp_path / f"{name}.log"),
        }
        for role, frame in frames.items():
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            (tmp_path / f"{name}-{role}.csv").write_text(buffer.getvalue())
            config[role] = str(tmp_path / f"{name}-{role}.csv")
        if name in EPSILON:  # the node config `coopml agent --epsilon ...` writes
            config.update(epsilon=str(EPSILON[name]), delta=str(DELTA), clip="4.0")
            config.update(labels="[0, 1]")
        process_flower["configs"].append((config, tokens[name]))
    rnd, record = _settle(client, market)
    return {"round": rnd, "record": record, "tokens": tokens}


def test_the_settlement_shows_each_partys_privacy_and_a_party_only_its_own(
    client: TestClient, settled: dict[str, Any]
) -> None:
    round_id = settled["round"]["id"]
    stored = settled["record"]["provenance"]["privacy"]
    r = client.get(f"{API}/rounds/{round_id}/settlement", headers=OPERATOR)
    assert r.status_code == 200, r.text
    lines = {line["name"]: line for line in r.json()["lines"]}
    assert lines["party_2"]["privacy"] is None  # its agent added no noise
    for name, epsilon in EPSILON.items():
        privacy = lines[name]["privacy"]
        # what the party's node config asked for, matched by the party's name
        assert privacy["noise"] is True and privacy["mechanism"] == "gaussian"
        assert (privacy["epsilon"], privacy["delta"], privacy["clip"]) == (epsilon, DELTA, 4.0)
        assert privacy["target_clip"] is None
        assert privacy["releases"] == 4  # a classification round: 4 noisy releases
        assert privacy["mu"] == stored[name]["mu"] > 0
        assert privacy["rho_zcdp"] == pytest.approx(privacy["mu"] ** 2 / 2, rel=1e-12)
        assert privacy["epsilon_zcdp"] > epsilon  # the generic conversion is looser
    # a larger ε spends more: party_0 (ε = 8) has the larger μ
    assert lines["party_0"]["privacy"]["mu"] > lines["party_1"]["privacy"]["mu"]

    for name in ("party_1", "party_2"):
        party = {"Authorization": f"Bearer {settled['tokens'][name]}"}
        r = client.get(f"{API}/rounds/{round_id}/settlement", headers=party)
        assert r.status_code == 200, r.text
        (line,) = r.json()["lines"]
        assert line["name"] == name
        assert line["privacy"] == lines[name]["privacy"]
        assert "party_0" not in r.text


def test_coopml_client_settlement_prints_each_private_partys_privacy(
    client: TestClient, settled: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from coopml.cli import app
    from coopml.cli import client as cli_client
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    runner = CliRunner()
    round_id = settled["round"]["id"]

    def run(token: str) -> list[str]:
        env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": token, "COLUMNS": "250"}
        result = runner.invoke(app, ["client", "settlement", round_id], env=env)
        assert result.exit_code == 0, result.output
        return [line for line in result.output.splitlines() if line.startswith("privacy of")]

    shown = run(OPERATOR_TOKEN)
    assert [line.split(":")[0] for line in shown] == ["privacy of party_0", "privacy of party_1"]
    assert "(ε = 8, δ = 1e-05)-DP for one training row this round" in shown[0]
    assert "(ε = 4, δ = 1e-05)-DP" in shown[1] and "rows clipped to 4" in shown[1]
    assert run(settled["tokens"]["party_2"]) == []  # exact: nothing to show
    (own,) = run(settled["tokens"]["party_1"])
    assert own.startswith("privacy of party_1: (ε = 4,")


def _privacy_rows(page: str) -> dict[str, list[str]]:
    if 'id="privacy-table"' not in page:
        return {}
    table = page.split('id="privacy-table"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-party="([^"]+)">(.*?)</tr>', table, flags=re.S)
    return {name: re.findall(r"<td[^>]*>([^<]*)</td>", cells)[1:] for name, cells in rows}


def test_the_round_page_has_a_privacy_table(client: TestClient, settled: dict[str, Any]) -> None:
    round_id = settled["round"]["id"]
    r = client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    rows = _privacy_rows(client.get(f"/ui/rounds/{round_id}").text)
    assert sorted(rows) == ["party_0", "party_1"]  # party_2 released exact statistics
    epsilon, delta, clip, releases = rows["party_1"][:4]
    assert (epsilon, delta, clip, releases) == ("4", "1e-05", "4", "4")

    for name, expected in (("party_1", ["party_1"]), ("party_2", [])):
        client.post("/logout")
        client.cookies.clear()
        token = settled["tokens"][name]
        r = client.post("/login", data={"token": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
        page = client.get(f"/ui/rounds/{round_id}").text
        assert sorted(_privacy_rows(page)) == expected
        assert "party_0" not in page
