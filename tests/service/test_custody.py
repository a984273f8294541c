"""Custody as a market property: ``"operator"`` (the default) or ``"parties"``."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient
from tests.service.conftest import API, OPERATOR_TOKEN, breast_cancer_csvs

#: A two-feature classification schema (columns ``a``, ``b``; labels 0 and 1).
SCHEMA_AB = {
    "target": "label",
    "label_type": "integer",
    "classes": [0, 1],
    "features": [{"name": "a", "type": "number"}, {"name": "b", "type": "number"}],
}

OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def _market(client: TestClient, **extra: str) -> dict:
    r = client.post(
        f"{API}/markets",
        json={"name": "hospitals", "task": "classification", **extra},
        headers=OPERATOR,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _party(client: TestClient, market_id: str) -> dict[str, str]:
    r = client.post(f"{API}/markets/{market_id}/parties", json={"name": "alice"}, headers=OPERATOR)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _upload(client: TestClient, market_id: str, headers: dict[str, str]) -> object:
    return client.post(
        f"{API}/markets/{market_id}/datasets",
        files={"file": ("alice_train.csv", breast_cancer_csvs(1)[0]["train"], "text/csv")},
        data={"role": "train", "target": "label"},
        headers=headers,
    )


def test_custody_defaults_to_operator_and_is_shown(client: TestClient) -> None:
    market = _market(client)
    assert market["custody"] == "operator"
    parties = _market(client, custody="parties")
    assert parties["custody"] == "parties"
    listed = client.get(f"{API}/markets", headers=OPERATOR).json()["items"]
    assert {m["id"]: m["custody"] for m in listed} == {
        market["id"]: "operator",
        parties["id"]: "parties",
    }
    assert client.get(f"{API}/markets/{parties['id']}", headers=OPERATOR).json()["custody"] == (
        "parties"
    )


def test_unknown_custody_is_refused_naming_the_choices(client: TestClient) -> None:
    r = client.post(
        f"{API}/markets",
        json={"name": "x", "task": "classification", "custody": "bank"},
        headers=OPERATOR,
    )
    assert r.status_code == 422
    assert "custody" in r.text and "operator" in r.text and "parties" in r.text


def test_a_parties_custody_market_refuses_uploads(client: TestClient, settings) -> None:
    market = _market(client, custody="parties")
    headers = _party(client, market["id"])
    r = _upload(client, market["id"], headers)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "parties_custody"
    assert "parties custody" in error["message"] and "coopml agent" in error["message"]
    listed = client.get(f"{API}/markets/{market['id']}/datasets", headers=headers).json()
    assert listed["total"] == 0
    # the operator-custody market next to it still takes the same file
    other = _market(client)
    assert _upload(client, other["id"], _party(client, other["id"])).status_code == 201


def test_migration_0006_keeps_existing_markets_in_operator_custody(tmp_path) -> None:
    from alembic import command
    from sqlalchemy import create_engine, text

    from coopml.service.storage.database import alembic_config

    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    cfg = alembic_config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(
            text(
                "INSERT INTO markets (id, name, task, description, created_at) "
                "VALUES ('a' || hex(randomblob(15)), 'old', 'classification', '', "
                "CURRENT_TIMESTAMP)"
            )
        )
        command.upgrade(cfg, "0006")
        assert conn.execute(text("SELECT custody FROM markets")).scalar_one() == "operator"
        command.downgrade(cfg, "0005")
        columns = [r[1] for r in conn.execute(text("PRAGMA table_info(markets)"))]
        assert "custody" not in columns
        conn.commit()
    engine.dispose()


def test_client_and_dashboard_show_custody(client: TestClient, monkeypatch) -> None:
    from typer.testing import CliRunner

    from coopml.cli import app
    from coopml.cli import client as cli_client
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": OPERATOR_TOKEN, "COLUMNS": "200"}
    runner = CliRunner()
    made = runner.invoke(app, ["client", "create-market", "vault", "--custody", "parties"], env=env)
    assert made.exit_code == 0, made.output
    assert "custody: parties" in made.output
    bad = runner.invoke(app, ["client", "create-market", "x", "--custody", "bank"], env=env)
    assert bad.exit_code != 0 and "--custody must be one of operator, parties" in bad.output
    listed = runner.invoke(app, ["client", "markets", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert '"custody": "parties"' in listed.output
    table = runner.invoke(app, ["client", "markets"], env=env)
    assert "custody" in table.output.lower() and "parties" in table.output

    r = client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    assert r.status_code in (302, 303), r.text
    page = client.get("/ui/markets").text
    assert "<th>Custody</th>" in page and "custody-parties" in page
    (market,) = client.get(f"{API}/markets", headers=OPERATOR).json()["items"]
    detail = client.get(f"/ui/markets/{market['id']}").text
    assert 'id="custody"' in detail and "no row leaves its owner" in detail


def test_agent_checks_its_files_locally_like_an_upload(
    client: TestClient, monkeypatch, tmp_path
) -> None:
    from typer.testing import CliRunner

    from coopml.cli import app
    from coopml.cli import client as cli_client
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    market = _market(client, custody="parties", schema=SCHEMA_AB)
    token = _party(client, market["id"])["Authorization"].split()[1]
    good = tmp_path / "alice.csv"
    good.write_text("b,a,label\n0.5,1.0,0\n1.5,2.0,1\n")  # columns matched by name
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1.0,x,0\n")
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": token, "COLUMNS": "200"}
    args = ["agent", "--market", market["id"], "--target", "label", "--check-only"]
    ok = CliRunner().invoke(app, [*args, "--train", str(good)], env=env)
    assert ok.exit_code == 0, ok.output
    assert "2 rows match the market's schema" in ok.output
    refused = CliRunner().invoke(app, [*args, "--train", str(bad)], env=env)
    assert refused.exit_code != 0
    assert "bad.csv" in refused.output and "'x'" in refused.output  # the upload's message
    operator = _market(client)  # an operator-custody market: the agent says to upload
    token = _party(client, operator["id"])["Authorization"].split()[1]
    args = ["agent", "--market", operator["id"], "--target", "label", "--check-only"]
    wrong = CliRunner().invoke(
        app, [*args, "--train", str(good)], env={**env, "COOPML_TOKEN": token}
    )
    assert wrong.exit_code != 0 and "operator custody" in wrong.output


def test_an_agent_whose_lifetime_budget_is_spent_refuses_to_start(
    client: TestClient, monkeypatch, tmp_path
) -> None:
    """``coopml agent --lifetime-epsilon``: with the party's recorded spend such that no
    further round fits, the agent says so and stops before starting its SuperNode."""
    from typer.testing import CliRunner

    from coopml.cli import agent as cli_agent
    from coopml.cli import app
    from coopml.cli import client as cli_client
    from coopml.custody.privacy import GaussianMechanism
    from coopml.custody.privacy_state import PrivacyState
    from coopml.service.client import CoopmlClient

    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    started: list[object] = []
    monkeypatch.setattr(cli_agent, "supervise_node", lambda *a, **k: started.append(a))
    market = _market(client, custody="parties", schema=SCHEMA_AB)
    token = _party(client, market["id"])["Authorization"].split()[1]
    name = client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}).json()["name"]
    train = tmp_path / "alice.csv"
    train.write_text("a,b,label\n0.5,1.0,0\n1.5,2.0,1\n")
    log = tmp_path / "alice.log"
    state = PrivacyState(log.with_suffix(".privacy.json"), name)
    m = GaussianMechanism(1.0, 1e-5, clip=4.0, labels=(0, 1))
    for run in ("run-1", "run-2"):  # two rounds spent: epsilon 1.47 at delta 1e-5
        with state.round(run, m) as rnd:
            rnd.release.release("sum_x", np.zeros(2), 1.0, "classification")
    env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": token, "COLUMNS": "200"}
    args = ["agent", "--market", market["id"], "--target", "label", "--train", str(train)]
    args += ["--log", str(log), "--superlink", "127.0.0.1:1"]
    args += ["--epsilon", "1", "--delta", "1e-5", "--clip", "4"]
    refused = CliRunner().invoke(app, [*args, "--lifetime-epsilon", "1.6"], env=env)
    assert refused.exit_code != 0, refused.output
    assert "lifetime privacy budget of epsilon 1.6" in refused.output
    assert "spent 1.465 over 2 rounds" in refused.output and not started
    ok = CliRunner().invoke(app, [*args, "--lifetime-epsilon", "4"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "of a lifetime epsilon 4" in ok.output and len(started) == 1
