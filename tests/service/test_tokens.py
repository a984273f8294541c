"""Tokens die: revocation, rotation, expiry, operator token rotation, and dashboard
sessions that are server-side, hashed, revoked at logout and carried by flagged cookies.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import Mount
from tests.service.conftest import (
    API,
    OPERATOR_TOKEN,
    SECRET,
    MarketHandle,
    make_market_with_parties,
)
from typer.testing import CliRunner, Result

import coopml.cli.client as cli_client
from coopml.cli import app as cli_app
from coopml.service import Settings, create_app
from coopml.service.api import iter_routes
from coopml.service.client import CoopmlClient
from coopml.service.domain import tokens
from coopml.service.domain.tokens import RevokedOperatorToken
from coopml.service.security import hash_token
from coopml.service.web import COOKIE

T0 = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _me(client: TestClient, token: str) -> tuple[int, dict]:
    r = client.get(f"{API}/me", headers=_auth(token))
    return r.status_code, r.json()


class Clock:
    """A clock the tests move by hand (replaces :data:`coopml.service.domain.tokens.clock`)."""

    def __init__(self, now: datetime.datetime) -> None:
        self.now = now

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(T0)
    monkeypatch.setattr(tokens, "clock", fake)
    return fake


def _open(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    try:
        with TestClient(app) as http:
            yield http
    finally:
        app.state.service.db.dispose()


# ----------------------------------------------------------------- every API route
def _api_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = iter_routes(r for r in app.routes if not isinstance(r, Mount))
    return sorted(
        {(m, p) for m, p in routes if p.startswith(API) and p != f"{API}/health"},
    )


def _fill(path: str, market: MarketHandle) -> str:
    known = {
        "market_id": market.id,
        "party_id": market.parties[0].id,
        "dataset_id": market.datasets[market.parties[0].id][0],
    }

    def sub(match: re.Match[str]) -> str:
        return known.get(match.group(1).split(":")[0], uuid.uuid4().hex)

    return re.sub(r"\{([^}]+)\}", sub, path)


def _assert_every_route_refuses(
    client: TestClient, token: str, market: MarketHandle, code: str, description: str
) -> None:
    routes = _api_routes(client.app)  # type: ignore[arg-type]
    assert len(routes) >= 15
    for method, path in routes:
        r = client.request(method, _fill(path, market), headers=_auth(token))
        where = (method, path, r.status_code, r.text[:200])
        assert r.status_code == 401, where
        assert r.json()["error"]["code"] == code, where
        challenge = r.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge, where
        assert description in challenge, where


def test_revoked_token_is_refused_everywhere_and_a_rotated_one_works(
    client: TestClient, market: MarketHandle, operator_headers: dict[str, str]
) -> None:
    alice, bob = market.parties[0], market.parties[1]
    url = f"{API}/markets/{market.id}/parties/{alice.id}/token"
    assert _me(client, alice.token)[0] == 200
    r = client.delete(url, headers=operator_headers)
    assert r.status_code == 204 and r.content == b""
    status, body = _me(client, alice.token)
    assert status == 401 and body["error"]["code"] == "token_revoked"
    assert "revoked" in body["error"]["message"]
    _assert_every_route_refuses(client, alice.token, market, "token_revoked", "revoked")
    # the other parties are untouched; revoking again is harmless
    assert _me(client, bob.token)[0] == 200
    assert client.delete(url, headers=operator_headers).status_code == 204
    # a new token: shown once, works; the revoked one stays dead
    r = client.post(url, headers=operator_headers)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["party_id"] == alice.id and issued["market_id"] == market.id
    assert issued["name"] == alice.name and issued["expires_at"] is None
    new = issued["token"]
    assert new != alice.token and len(new) >= 40
    assert _me(client, new) == (
        200,
        {"role": "party", "party_id": alice.id, "market_id": market.id, "name": alice.name},
    )
    r = client.get(f"{API}/markets/{market.id}/datasets", headers=_auth(new))
    assert r.status_code == 200 and {d["party_id"] for d in r.json()["items"]} == {alice.id}
    assert _me(client, alice.token)[0] == 401
    # the database holds hashes only
    db = client.app.state.service.db  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT token_hash FROM api_tokens"))]
    assert hash_token(new) in stored and new not in stored


def test_rotation_revokes_every_older_token_and_is_audited(
    client: TestClient, market: MarketHandle, operator_headers: dict[str, str]
) -> None:
    alice = market.parties[0]
    url = f"{API}/markets/{market.id}/parties/{alice.id}/token"
    first = client.post(url, headers=operator_headers).json()["token"]
    second = client.post(url, headers=operator_headers).json()["token"]
    assert _me(client, alice.token)[0] == 401
    assert _me(client, first)[0] == 401
    assert _me(client, second)[0] == 200
    client.delete(url, headers=operator_headers)
    log = client.get(f"{API}/audit-log", params={"limit": 500}, headers=operator_headers).json()
    actions = [(e["action"], e["item_id"], e["actor"]) for e in log["items"]]
    assert actions.count(("party_token_rotated", alice.id, "operator")) == 2
    assert actions.count(("party_token_revoked", alice.id, "operator")) == 1
    # the party sees what was done to its tokens in its own audit log (with a new token)
    third = client.post(url, headers=operator_headers).json()["token"]
    own = client.get(f"{API}/audit-log", params={"limit": 500}, headers=_auth(third)).json()
    assert "party_token_revoked" in {e["action"] for e in own["items"]}


def test_only_the_operator_revokes_and_unknown_parties_are_404(
    client: TestClient, operator_headers: dict[str, str]
) -> None:
    market = make_market_with_parties(client, 2, validation=False)
    other = make_market_with_parties(client, 1, validation=False)
    alice, bob = market.parties
    url = f"{API}/markets/{market.id}/parties/{alice.id}/token"
    for caller in (alice, bob, other.parties[0]):
        for method in ("DELETE", "POST"):
            r = client.request(method, url, headers=caller.headers)
            assert r.status_code == 403, (caller.name, method, r.text)
            assert r.json()["error"]["code"] == "forbidden"
    assert _me(client, alice.token)[0] == 200  # nothing happened to alice
    for path in (
        f"/markets/{other.id}/parties/{alice.id}/token",  # alice is not in that market
        f"/markets/{market.id}/parties/{uuid.uuid4().hex}/token",
        f"/markets/{uuid.uuid4().hex}/parties/{alice.id}/token",
        f"/markets/{market.id}/parties/not-an-id/token",
    ):
        for method in ("DELETE", "POST"):
            r = client.request(method, API + path, headers=operator_headers)
            assert r.status_code == 404, (method, path, r.text)
    assert _me(client, alice.token)[0] == 200


# --------------------------------------------------------------------------- expiry
@pytest.fixture
def ttl_client(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    yield from _open(settings.with_(token_ttl_seconds=3600.0))


def test_tokens_expire_after_the_ttl(ttl_client: TestClient, clock: Clock) -> None:
    client = ttl_client
    market = make_market_with_parties(client, 1, validation=False)
    alice = market.parties[0]
    r = client.get(f"{API}/markets/{market.id}/parties", headers=_auth(OPERATOR_TOKEN))
    assert r.status_code == 200
    clock.advance(3599)
    assert _me(client, alice.token)[0] == 200
    clock.advance(1)
    status, body = _me(client, alice.token)
    assert status == 401 and body["error"]["code"] == "token_expired"
    assert (
        "expired" in body["error"]["message"]
        and "2030-01-01 13:00:00 UTC" in (body["error"]["message"])
    )
    _assert_every_route_refuses(client, alice.token, market, "token_expired", "expired")
    # the operator's token has no expiry; a rotated party token gets a fresh one
    assert _me(client, OPERATOR_TOKEN)[0] == 200
    r = client.post(
        f"{API}/markets/{market.id}/parties/{alice.id}/token", headers=_auth(OPERATOR_TOKEN)
    )
    assert r.status_code == 201
    expires = datetime.datetime.fromisoformat(r.json()["expires_at"])
    assert expires == clock.now + datetime.timedelta(hours=1)
    assert _me(client, r.json()["token"])[0] == 200


def test_add_party_reports_the_expiry(ttl_client: TestClient, clock: Clock) -> None:
    op = CoopmlClient("http://testserver", OPERATOR_TOKEN, http_client=ttl_client)
    market = op.create_market("ttl")
    party = op.add_party(market["id"], "alice")
    assert datetime.datetime.fromisoformat(party["token_expires_at"]) == T0 + datetime.timedelta(
        hours=1
    )


def test_a_tiny_ttl_expires_on_the_real_clock(settings: Settings) -> None:
    import time

    for client in _open(settings.with_(token_ttl_seconds=0.2)):
        market = make_market_with_parties(client, 1, validation=False)
        token = market.parties[0].token
        time.sleep(0.3)
        status, body = _me(client, token)
        assert status == 401 and body["error"]["code"] == "token_expired"


def test_settings_validate_and_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="token_ttl_seconds"):
        Settings(tmp_path, token_ttl_seconds=0)
    with pytest.raises(ValueError, match="session_ttl_seconds"):
        Settings(tmp_path, session_ttl_seconds=-1)
    monkeypatch.setenv("COOPML_TOKEN_TTL", "86400")
    monkeypatch.setenv("COOPML_SESSION_TTL", "600")
    monkeypatch.setenv("COOPML_TRUST_PROXY", "yes")
    s = Settings.from_env(tmp_path)
    assert (s.token_ttl_seconds, s.session_ttl_seconds, s.trust_proxy) == (86400, 600, True)
    monkeypatch.setenv("COOPML_TRUST_PROXY", "maybe")
    with pytest.raises(ValueError, match="COOPML_TRUST_PROXY"):
        Settings.from_env(tmp_path)


# ------------------------------------------------------------------ WWW-Authenticate
def test_401_carries_a_bearer_challenge(client: TestClient) -> None:
    r = client.get(f"{API}/markets")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert r.headers["www-authenticate"] == 'Bearer realm="coopml"'
    r = client.get(f"{API}/markets", headers=_auth("not-a-token"))
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer realm="coopml", error="invalid_token"')
    r = client.post("/login", data={"token": "not-a-token"}, follow_redirects=False)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Cookie ")
    assert 'form-action="/login"' in r.headers["www-authenticate"]


# ----------------------------------------------------------------- operator rotation
def test_a_new_configured_operator_token_revokes_the_old_one(settings: Settings) -> None:
    old, new = OPERATOR_TOKEN, "a-brand-new-operator-token-0123456789"
    for client in _open(settings):
        assert _me(client, old)[0] == 200
    for client in _open(settings.with_(operator_token=new)):  # a restart, new config
        status, body = _me(client, old)
        assert status == 401 and body["error"]["code"] == "token_revoked"
        assert _me(client, new)[0] == 200
        log = client.get(f"{API}/audit-log", headers=_auth(new)).json()["items"]
        assert [e["actor"] for e in log if e["action"] == "operator_token_rotated"] == ["admin"]
    for client in _open(settings.with_(operator_token=new)):  # a plain restart changes nothing
        assert _me(client, new)[0] == 200
    with pytest.raises(RevokedOperatorToken, match="revoked"):  # no way back to the old one
        create_app(settings)


@pytest.fixture
def file_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A deployment whose operator token lives in DATA_DIR/operator.token."""
    for var in ("COOPML_OPERATOR_TOKEN", "COOPML_DATABASE_URL", "COOPML_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COOPML_SECRET_KEY", SECRET.hex())
    return Settings(tmp_path / "data", secret_key=SECRET, embedded_worker=False)


def test_admin_rotates_the_operator_token_of_a_running_server(file_settings: Settings) -> None:
    path = file_settings.data_dir / "operator.token"
    runner = CliRunner()
    args = ["admin", "rotate-operator-token", "--data-dir", str(file_settings.data_dir)]
    for client in _open(file_settings):
        old = path.read_text().strip()
        assert _me(client, old)[0] == 200
        result = runner.invoke(cli_app, [*args, "-q"])
        assert result.exit_code == 0, result.output
        new = result.stdout.strip()
        assert new == path.read_text().strip() and new != old
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        # the running server: the old token is refused at once, the new one works
        status, body = _me(client, old)
        assert status == 401 and body["error"]["code"] == "token_revoked"
        assert _me(client, new)[0] == 200
        result = runner.invoke(cli_app, args)
        assert result.exit_code == 0 and "the old token no longer works" in result.output
        assert _me(client, new)[0] == 401
        newest = path.read_text().strip()
    for client in _open(file_settings):  # a restart adopts the file
        assert _me(client, newest)[0] == 200 and _me(client, new)[0] == 401


def test_admin_refuses_an_environment_token_and_a_missing_deployment(
    file_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli_app, ["admin", "rotate-operator-token", "--data-dir", str(file_settings.data_dir)]
    )
    assert result.exit_code == 2 and "no coopml deployment" in result.output
    assert not (file_settings.data_dir / "coopml.db").exists()
    monkeypatch.setenv("COOPML_OPERATOR_TOKEN", OPERATOR_TOKEN)
    result = runner.invoke(
        cli_app, ["admin", "rotate-operator-token", "--data-dir", str(file_settings.data_dir)]
    )
    assert result.exit_code == 2 and "COOPML_OPERATOR_TOKEN" in result.output


# ------------------------------------------------------------------ dashboard sessions
def _login(client: TestClient, token: str) -> str:
    r = client.post("/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    session_id = client.cookies.get(COOKIE)
    assert session_id
    return session_id


def test_the_cookie_holds_a_hashed_session_id_never_the_token(client: TestClient) -> None:
    r = client.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert OPERATOR_TOKEN not in cookie and hash_token(OPERATOR_TOKEN) not in cookie
    session_id = client.cookies.get(COOKIE)
    assert session_id and len(session_id) >= 40
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http
    db = client.app.state.service.db  # type: ignore[attr-defined]
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT session_hash FROM web_sessions")).all()
    assert [row[0] for row in rows] == [hash_token(session_id)]
    # the session is not an API credential, in a cookie or as a bearer token
    assert client.get(f"{API}/me").status_code == 401
    assert client.get(f"{API}/me", headers=_auth(session_id)).status_code == 401
    client.cookies.clear()
    client.cookies.set("coopml_token", OPERATOR_TOKEN)  # the old, token-bearing cookie
    assert client.get(f"{API}/me").status_code == 401
    assert client.get("/ui/markets", follow_redirects=False).status_code == 303


def test_logout_revokes_the_session(client: TestClient) -> None:
    session_id = _login(client, OPERATOR_TOKEN)
    assert client.get("/ui/markets").status_code == 200
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 303 and COOKIE not in client.cookies
    client.cookies.set(COOKIE, session_id)  # replay the old cookie
    r = client.get("/ui/markets", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/?next=")
    assert 'name="token"' in client.get("/").text  # the login form, not the markets
    log = client.get(f"{API}/audit-log", headers=_auth(OPERATOR_TOKEN)).json()["items"]
    actions = {e["action"] for e in log}
    assert {"session_opened", "session_closed"} <= actions


def test_a_new_login_replaces_the_old_session(client: TestClient) -> None:
    first = _login(client, OPERATOR_TOKEN)
    second = _login(client, OPERATOR_TOKEN)
    assert first != second
    client.cookies.set(COOKIE, first)
    assert client.get("/ui/markets", follow_redirects=False).status_code == 303


def test_sessions_expire(settings: Settings, clock: Clock) -> None:
    for client in _open(settings.with_(session_ttl_seconds=600.0)):
        _login(client, OPERATOR_TOKEN)
        clock.advance(599)
        assert client.get("/ui/markets", follow_redirects=False).status_code == 200
        clock.advance(1)
        assert client.get("/ui/markets", follow_redirects=False).status_code == 303


def test_a_session_dies_with_its_token(
    client: TestClient, market: MarketHandle, operator_headers: dict[str, str]
) -> None:
    alice = market.parties[0]
    _login(client, alice.token)
    assert client.get(f"/ui/markets/{market.id}").status_code == 200
    r = client.delete(
        f"{API}/markets/{market.id}/parties/{alice.id}/token", headers=operator_headers
    )
    assert r.status_code == 204
    assert client.get(f"/ui/markets/{market.id}", follow_redirects=False).status_code == 303
    assert client.post("/login", data={"token": alice.token}).status_code == 401


def test_a_session_never_outlives_an_expiring_token(settings: Settings, clock: Clock) -> None:
    for client in _open(settings.with_(token_ttl_seconds=60.0, session_ttl_seconds=3600.0)):
        market = make_market_with_parties(client, 1, validation=False)
        _login(client, market.parties[0].token)
        clock.advance(59)
        assert client.get("/ui/markets", follow_redirects=False).status_code == 200
        clock.advance(1)
        assert client.get("/ui/markets", follow_redirects=False).status_code == 303


def test_cookie_is_secure_over_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as https:
        r = https.post("/login", data={"token": OPERATOR_TOKEN}, follow_redirects=False)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert https.get("/ui/markets").status_code == 200
        r = https.post("/logout", follow_redirects=False)
        assert "Secure" in r.headers["set-cookie"]


@pytest.mark.parametrize("trust_proxy", [True, False])
def test_cookie_is_secure_behind_a_trusted_tls_proxy(settings: Settings, trust_proxy: bool) -> None:
    for client in _open(settings.with_(trust_proxy=trust_proxy)):
        r = client.post(
            "/login",
            data={"token": OPERATOR_TOKEN},
            headers={"X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert ("Secure" in r.headers["set-cookie"]) is trust_proxy


# ------------------------------------------------------------------------------ CLI
@pytest.fixture
def run(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``coopml client ...`` against the in-process app."""
    monkeypatch.setattr(
        cli_client,
        "make_client",
        lambda url, token, timeout=30.0: CoopmlClient(url, token, http_client=client),
    )
    runner = CliRunner()

    def invoke(*args: str, token: str = OPERATOR_TOKEN) -> Result:
        env = {"COOPML_URL": "http://testserver", "COOPML_TOKEN": token}
        return runner.invoke(cli_app, ["client", *args], env=env)

    return invoke


def test_cli_rotates_and_revokes_tokens(run: Callable[..., Result], client: TestClient) -> None:
    market = make_market_with_parties(client, 2, validation=False)
    alice, bob = market.parties
    result = run("rotate-token", market.id, alice.name)
    assert result.exit_code == 0, result.output
    assert "shown once" in result.output
    new = result.stdout.strip().splitlines()[-1]
    assert _me(client, new)[0] == 200 and _me(client, alice.token)[0] == 401
    result = run("me", token=alice.token)
    assert result.exit_code == 1 and "revoked" in result.output and "HTTP 401" in result.output
    quiet = run("rotate-token", market.id, alice.id, "-q")
    assert quiet.exit_code == 0 and _me(client, quiet.stdout.strip())[0] == 200
    assert _me(client, new)[0] == 401
    result = run("revoke-token", market.id, bob.id)
    assert result.exit_code == 0 and "revoked" in result.output
    assert _me(client, bob.token)[0] == 401
    assert run("revoke-token", market.id, "nobody").exit_code == 2
    result = run("revoke-token", market.id, alice.name, token=quiet.stdout.strip())
    assert result.exit_code == 1 and "HTTP 403" in result.output  # parties may not


# ------------------------------------------------------------------------- PostgreSQL
def test_revocation_rotation_and_sessions_on_postgresql(
    pg_settings: Settings, clock: Clock
) -> None:
    """The same rules over PostgreSQL (skipped when it is unreachable)."""
    for client in _open(pg_settings.with_(token_ttl_seconds=60.0)):
        market = make_market_with_parties(client, 2, validation=False)
        alice, bob = market.parties
        url = f"{API}/markets/{market.id}/parties/{alice.id}/token"
        session_id = _login(client, alice.token)
        r = client.post(url, headers=_auth(OPERATOR_TOKEN))
        assert r.status_code == 201
        new = r.json()["token"]
        assert _me(client, alice.token)[1]["error"]["code"] == "token_revoked"
        assert _me(client, new)[0] == 200
        client.cookies.clear()
        client.cookies.set(COOKIE, session_id)  # the session died with its token
        assert client.get("/ui/markets", follow_redirects=False).status_code == 303
        client.cookies.clear()
        _login(client, new)
        assert client.post("/logout", follow_redirects=False).status_code == 303
        clock.advance(60)
        assert _me(client, new)[1]["error"]["code"] == "token_expired"
        assert _me(client, bob.token)[1]["error"]["code"] == "token_expired"
        assert client.delete(url, headers=_auth(OPERATOR_TOKEN)).status_code == 204
        assert _me(client, new)[1]["error"]["code"] == "token_revoked"
