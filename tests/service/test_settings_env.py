"""``Settings.from_env``: every ``COOPML_*`` variable read, and every bad value refused
naming the variable, what it must be and what it holds (a secret is never echoed)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from coopml.service import Settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith("COOPML_"):
            monkeypatch.delenv(var)


#: (variable, bad value, the whole message).
BAD = [
    ("COOPML_SECRET_KEY", "not-a-key", "environment variable COOPML_SECRET_KEY: not 32 bytes "
     "as 64 hex digits or url-safe base64; got 9 characters"),
    ("COOPML_MAX_UPLOAD_BYTES", "50MB", "environment variable COOPML_MAX_UPLOAD_BYTES: not a "
     "whole number of bytes; got '50MB'"),
    ("COOPML_MAX_UPLOAD_BYTES", "0", "environment variable COOPML_MAX_UPLOAD_BYTES: parameter "
     "'max_upload_bytes' must be an integer >= 1 and at most 1125899906842624 (1 PiB); got 0"),
    ("COOPML_LEASE_SECONDS", "soon", "environment variable COOPML_LEASE_SECONDS: not a number "
     "of seconds; got 'soon'"),
    ("COOPML_LEASE_SECONDS", "-1", "environment variable COOPML_LEASE_SECONDS: parameter "
     "'lease_seconds' must be seconds > 0 and at most 86400 (a day); got -1.0"),
    ("COOPML_TOKEN_TTL", "1d", "environment variable COOPML_TOKEN_TTL: not a number of "
     "seconds; got '1d'"),
    ("COOPML_TOKEN_TTL", "0", "environment variable COOPML_TOKEN_TTL: parameter "
     "'token_ttl_seconds' must be seconds > 0 and at most 315360000 (10 years), or None "
     "(no expiry); got 0.0"),
    ("COOPML_SESSION_TTL", "8h", "environment variable COOPML_SESSION_TTL: not a number of "
     "seconds; got '8h'"),
    ("COOPML_SESSION_TTL", "0", "environment variable COOPML_SESSION_TTL: parameter "
     "'session_ttl_seconds' must be seconds > 0 and at most 315360000 (10 years); got 0.0"),
    ("COOPML_PREDICT_QUOTA", "many", "environment variable COOPML_PREDICT_QUOTA: not a whole "
     "number of rows; got 'many'"),
    ("COOPML_PREDICT_QUOTA", "0", "environment variable COOPML_PREDICT_QUOTA: parameter "
     "'predict_quota' must be an integer >= 1 and at most 100000000; got 0"),
    ("COOPML_PREDICT_WINDOW", "1.5", "environment variable COOPML_PREDICT_WINDOW: not a whole "
     "number of seconds; got '1.5'"),
    ("COOPML_PREDICT_WINDOW", "0", "environment variable COOPML_PREDICT_WINDOW: parameter "
     "'predict_window_seconds' must be an integer >= 1 and at most 2678400 (31 days); got 0"),
    ("COOPML_MAX_DATASETS_PER_PARTY", "ten", "environment variable "
     "COOPML_MAX_DATASETS_PER_PARTY: not a whole number of datasets; got 'ten'"),
    ("COOPML_MAX_DATASETS_PER_PARTY", "0", "environment variable "
     "COOPML_MAX_DATASETS_PER_PARTY: parameter 'max_datasets_per_party' must be an integer "
     ">= 1 and at most 1000000; got 0"),
    ("COOPML_MAX_BYTES_PER_PARTY", "1GiB", "environment variable COOPML_MAX_BYTES_PER_PARTY: "
     "not a whole number of bytes; got '1GiB'"),
    ("COOPML_MAX_BYTES_PER_PARTY", "-5", "environment variable COOPML_MAX_BYTES_PER_PARTY: "
     "parameter 'max_bytes_per_party' must be an integer >= 1 and at most 1125899906842624 "
     "(1 PiB); got -5"),
    ("COOPML_MAX_CONCURRENT_UPLOADS", "x", "environment variable "
     "COOPML_MAX_CONCURRENT_UPLOADS: not a whole number of uploads; got 'x'"),
    ("COOPML_MAX_CONCURRENT_UPLOADS", "0", "environment variable "
     "COOPML_MAX_CONCURRENT_UPLOADS: parameter 'max_concurrent_uploads' must be an integer "
     ">= 1 and at most 10000; got 0"),
    ("COOPML_RATE_LIMIT", "fast", "environment variable COOPML_RATE_LIMIT: not a number of "
     "requests per second; got 'fast'"),
    ("COOPML_RATE_LIMIT", "-1", "environment variable COOPML_RATE_LIMIT: parameter "
     "'rate_limit_per_second' must be requests per second >= 0 (0: no limit) and at most "
     "1000000; got -1.0"),
    ("COOPML_RATE_BURST", "2.5", "environment variable COOPML_RATE_BURST: not a whole number "
     "of requests; got '2.5'"),
    ("COOPML_RATE_BURST", "0", "environment variable COOPML_RATE_BURST: parameter "
     "'rate_limit_burst' must be an integer >= 1 and at most 1000000000; got 0"),
    ("COOPML_EXECUTOR", "dask", "environment variable COOPML_EXECUTOR: not one of 'serial', "
     "'joblib', 'ray'; got 'dask'"),
    ("COOPML_N_JOBS", "all", "environment variable COOPML_N_JOBS: not a whole number of "
     "tasks; got 'all'"),
    ("COOPML_N_JOBS", "0", "environment variable COOPML_N_JOBS: parameter 'n_jobs' must be "
     "an integer >= 1; got 0"),
    ("COOPML_RAY_ADDRESS", "auto", "environment variable COOPML_RAY_ADDRESS: parameter "
     "'ray_address' names a Ray cluster and needs executor='ray'; got executor='serial'"),
    ("COOPML_EXECUTOR_TIMEOUT", "never", "environment variable COOPML_EXECUTOR_TIMEOUT: not a "
     "number of seconds or 'none'; got 'never'"),
    ("COOPML_EXECUTOR_TIMEOUT", "0", "environment variable COOPML_EXECUTOR_TIMEOUT: parameter "
     "'executor_timeout' must be seconds > 0 and at most 86400 (a day), or None (wait "
     "forever); got 0.0"),
    ("COOPML_TRUST_PROXY", "maybe", "environment variable COOPML_TRUST_PROXY: not a boolean "
     "(1/0, true/false, yes/no, on/off); got 'maybe'"),
    ("COOPML_SUPERLINK", "always", "environment variable COOPML_SUPERLINK: not one of 'auto', "
     "'on', 'off'; got 'always'"),
    ("COOPML_FLEET_API_ADDRESS", "localhost", "environment variable COOPML_FLEET_API_ADDRESS: "
     "parameter 'fleet_api_address' must be HOST:PORT (port 1-65535); got 'localhost'"),
    ("COOPML_FLEET_API_ADDRESS", "0.0.0.0:9092", "environment variable "
     "COOPML_FLEET_API_ADDRESS: parameter 'fleet_api_address' must be on loopback "
     "(127.0.0.1:PORT) unless superlink_tls is set; got '0.0.0.0:9092'"),
    ("COOPML_SUPERLINK_TLS", "ca.pem,cert.pem", "environment variable COOPML_SUPERLINK_TLS: "
     "not three comma-separated PEM paths CA,CERT,KEY; got 'ca.pem,cert.pem'"),
    ("COOPML_SUPERLINK_TLS", "ca.pem,,key.pem", "environment variable COOPML_SUPERLINK_TLS: "
     "not three comma-separated PEM paths CA,CERT,KEY; got 'ca.pem,,key.pem'"),
    ("COOPML_AGENT_TIMEOUT", "2m", "environment variable COOPML_AGENT_TIMEOUT: not a number "
     "of seconds; got '2m'"),
    ("COOPML_AGENT_TIMEOUT", "0", "environment variable COOPML_AGENT_TIMEOUT: parameter "
     "'agent_timeout' must be seconds > 0 and at most 86400 (a day); got 0.0"),
]  # fmt: skip


@pytest.mark.parametrize(("var", "value", "message"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_a_bad_variable_is_named_with_what_it_must_be_and_what_it_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, value: str, message: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.from_env(tmp_path)


def test_every_variable_is_read_with_its_unit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = bytes(range(32))
    env = {
        "COOPML_DATA_DIR": str(tmp_path / "env"),
        "COOPML_DATABASE_URL": "postgresql+psycopg://u@h/db",
        "COOPML_SECRET_KEY": key.hex(),
        "COOPML_OPERATOR_TOKEN": "operator-token-0123456789",
        "COOPML_MAX_UPLOAD_BYTES": "1024",
        "COOPML_LEASE_SECONDS": "2.5",
        "COOPML_TOKEN_TTL": "86400",
        "COOPML_SESSION_TTL": "600",
        "COOPML_PREDICT_QUOTA": "7",
        "COOPML_PREDICT_WINDOW": "60",
        "COOPML_MAX_DATASETS_PER_PARTY": "3",
        "COOPML_MAX_BYTES_PER_PARTY": "4096",
        "COOPML_MAX_CONCURRENT_UPLOADS": "2",
        "COOPML_RATE_LIMIT": "0",
        "COOPML_RATE_BURST": "9",
        "COOPML_EXECUTOR": " joblib ",
        "COOPML_N_JOBS": " 3 ",
        "COOPML_EXECUTOR_TIMEOUT": "NONE",
        "COOPML_TRUST_PROXY": "On",
        "COOPML_SUPERLINK": "on",
        "COOPML_FLEET_API_ADDRESS": "10.0.0.5:9092",
        "COOPML_SUPERLINK_TLS": " ca.pem, cert.pem ,key.pem",
        "COOPML_AGENT_TIMEOUT": "30",
    }
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    s = Settings.from_env()
    assert s.data_dir == (tmp_path / "env").resolve()
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert (s.secret_key, s.operator_token) == (key, "operator-token-0123456789")
    assert (s.max_upload_bytes, s.lease_seconds) == (1024, 2.5)
    assert (s.token_ttl_seconds, s.session_ttl_seconds) == (86400.0, 600.0)
    assert (s.predict_quota, s.predict_window_seconds) == (7, 60)
    assert (s.max_datasets_per_party, s.max_bytes_per_party) == (3, 4096)
    assert (s.max_concurrent_uploads, s.rate_limit_per_second, s.rate_limit_burst) == (2, 0, 9)
    assert (s.executor, s.n_jobs, s.executor_timeout) == ("joblib", 3, None)
    assert (s.trust_proxy, s.superlink, s.fleet_api_address) == (True, "on", "10.0.0.5:9092")
    assert (s.superlink_tls, s.agent_timeout) == (("ca.pem", "cert.pem", "key.pem"), 30.0)


def test_unset_or_empty_variables_keep_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPML_DATABASE_URL", "")
    monkeypatch.setenv("COOPML_LEASE_SECONDS", "")
    monkeypatch.setenv("COOPML_URL", "http://127.0.0.1:8000")  # the client's, not the server's
    s = Settings.from_env(tmp_path)
    assert s.database_url is None and s.lease_seconds == 30.0
    assert (s.executor_timeout, s.superlink, s.trust_proxy) == (3600.0, "auto", False)
    assert s.max_upload_bytes == 50 * 1024 * 1024 and s.session_ttl_seconds == 8 * 3600
    # In code, without the environment: the SuperLink stays off.
    assert Settings(tmp_path).superlink == "off"


def test_the_command_line_wins_and_is_not_blamed_on_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPML_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("COOPML_DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = Settings.from_env(tmp_path / "cli", database_url="sqlite:///x.db", embedded_worker=False)
    assert s.data_dir == (tmp_path / "cli").resolve() and s.database_url == "sqlite:///x.db"
    assert s.embedded_worker is False
    with pytest.raises(
        ValueError,
        match=r"^parameter 'lease_seconds' must be seconds > 0 and at most 86400 \(a day\); got 0$",
    ):
        Settings.from_env(tmp_path, lease_seconds=0)


def test_a_secret_is_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-but-31-bytes-long-0123456"[:31]
    monkeypatch.setenv("COOPML_SECRET_KEY", secret)
    with pytest.raises(ValueError) as refused:
        Settings.from_env(tmp_path)
    assert "COOPML_SECRET_KEY" in str(refused.value) and secret not in str(refused.value)


def test_several_bad_variables_are_all_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPML_LEASE_SECONDS", "soon")
    monkeypatch.setenv("COOPML_RATE_BURST", "lots")
    with pytest.raises(ValueError) as refused:
        Settings.from_env(tmp_path)
    assert "COOPML_LEASE_SECONDS" in str(refused.value)
    assert "COOPML_RATE_BURST" in str(refused.value)


# ----------------------------------------------------------------- ranges (tester's t9)
DAY_TEXT = "seconds > 0 and at most 86400 (a day)"
TTL_TEXT = "seconds > 0 and at most 315360000 (10 years)"

#: (variable, parameter, what it must be) of every duration.
DURATIONS = [
    ("COOPML_LEASE_SECONDS", "lease_seconds", DAY_TEXT),
    ("COOPML_AGENT_TIMEOUT", "agent_timeout", DAY_TEXT),
    ("COOPML_EXECUTOR_TIMEOUT", "executor_timeout", DAY_TEXT + ", or None (wait forever)"),
    ("COOPML_TOKEN_TTL", "token_ttl_seconds", TTL_TEXT + ", or None (no expiry)"),
    ("COOPML_SESSION_TTL", "session_ttl_seconds", TTL_TEXT),
]


@pytest.mark.parametrize(("var", "name", "what"), DURATIONS, ids=[d[0] for d in DURATIONS])
@pytest.mark.parametrize(
    ("value", "shown"), [("1e400", "inf"), ("1e12", "1000000000000.0"), ("nan", "nan")]
)
def test_a_huge_or_undefined_duration_is_refused_naming_its_range(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    name: str,
    what: str,
    value: str,
    shown: str,
) -> None:
    # 1e12 s would overflow `now + timedelta(seconds=ttl)` at run time (OverflowError)
    monkeypatch.setenv(var, value)
    if (var, shown) == ("COOPML_EXECUTOR_TIMEOUT", "inf"):  # inf: wait forever, as none
        assert Settings.from_env(tmp_path).executor_timeout is None
        return
    message = f"environment variable {var}: parameter '{name}' must be {what}; got {shown}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.from_env(tmp_path)


@pytest.mark.parametrize("var", [d[0] for d in DURATIONS if d[0] != "COOPML_EXECUTOR_TIMEOUT"])
def test_an_infinite_duration_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    monkeypatch.setenv(var, "inf")
    with pytest.raises(ValueError, match=f"^environment variable {var}: .* got inf$"):
        Settings.from_env(tmp_path)


def test_an_infinite_executor_timeout_waits_forever_like_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COOPML_EXECUTOR_TIMEOUT", "inf")
    assert Settings.from_env(tmp_path).executor_timeout is None
    assert Settings(tmp_path, executor_timeout=float("inf")).executor_timeout is None


def test_the_largest_durations_are_accepted_and_fit_in_a_date(tmp_path: Path) -> None:
    import datetime

    s = Settings(
        tmp_path,
        lease_seconds=86_400,
        agent_timeout=86_400.0,
        executor_timeout=86_400,
        token_ttl_seconds=315_360_000,
        session_ttl_seconds=315_360_000.0,
    )
    now = datetime.datetime.now(datetime.UTC)
    for ttl in (s.lease_seconds, s.token_ttl_seconds, s.session_ttl_seconds):
        assert now + datetime.timedelta(seconds=float(ttl or 0)) > now  # no OverflowError
    with pytest.raises(ValueError, match=r"'lease_seconds' must be seconds > 0 .*; got 86401"):
        Settings(tmp_path, lease_seconds=86_401)
    with pytest.raises(ValueError, match=r"'token_ttl_seconds' .*; got 315360001"):
        Settings(tmp_path, token_ttl_seconds=315_360_001)


#: (variable, bad value, parameter, what it must be): other numbers too large (or inf).
TOO_LARGE = [
    ("COOPML_RATE_LIMIT", "inf", "rate_limit_per_second", "requests per second >= 0 (0: no "
     "limit) and at most 1000000", "inf"),
    ("COOPML_RATE_BURST", "1" + "0" * 400, "rate_limit_burst", "an integer >= 1 and at most "
     "1000000000", "1" + "0" * 400),
    ("COOPML_N_JOBS", "100000000000000000000", "n_jobs", "an integer >= 1 and at most 100000, "
     "or None (all cores)", "100000000000000000000"),
    ("COOPML_PREDICT_QUOTA", "100000001", "predict_quota", "an integer >= 1 and at most "
     "100000000", "100000001"),
    ("COOPML_PREDICT_WINDOW", "2678401", "predict_window_seconds", "an integer >= 1 and at "
     "most 2678400 (31 days)", "2678401"),
    ("COOPML_MAX_DATASETS_PER_PARTY", "1000001", "max_datasets_per_party", "an integer >= 1 "
     "and at most 1000000", "1000001"),
    ("COOPML_MAX_BYTES_PER_PARTY", str(2**50 + 1), "max_bytes_per_party", "an integer >= 1 "
     "and at most 1125899906842624 (1 PiB)", str(2**50 + 1)),
    ("COOPML_MAX_UPLOAD_BYTES", str(2**50 + 1), "max_upload_bytes", "an integer >= 1 and at "
     "most 1125899906842624 (1 PiB)", str(2**50 + 1)),
    ("COOPML_MAX_CONCURRENT_UPLOADS", "10001", "max_concurrent_uploads", "an integer >= 1 and "
     "at most 10000", "10001"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("var", "value", "name", "what", "shown"), TOO_LARGE, ids=[t[0] for t in TOO_LARGE]
)
def test_a_number_beyond_its_range_is_refused(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    var: str,
    value: str,
    name: str,
    what: str,
    shown: str,
) -> None:
    monkeypatch.setenv(var, value)
    message = f"environment variable {var}: parameter '{name}' must be {what}; got {shown}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.from_env(tmp_path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lease_seconds", True),
        ("agent_timeout", float("inf")),
        ("session_ttl_seconds", "3600"),
        ("token_ttl_seconds", float("nan")),
        ("rate_limit_per_second", float("inf")),
        ("rate_limit_burst", 2.0),
        ("predict_quota", True),
        ("max_upload_bytes", 1e6),
        ("n_jobs", 10**20),
        ("executor_timeout", 1e12),
    ],
)
def test_the_constructor_checks_the_same_ranges(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(
        ValueError, match=rf"^parameter '{name}' must be .*; got {re.escape(repr(value))}$"
    ):
        Settings(tmp_path, **{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("port", ["٣", "９０９２", "²", "+9092", " 9092", "9_092"])
def test_a_port_is_ascii_digits_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    address = f"127.0.0.1:{port}"
    monkeypatch.setenv("COOPML_FLEET_API_ADDRESS", address)
    message = (
        "environment variable COOPML_FLEET_API_ADDRESS: parameter 'fleet_api_address' must "
        f"be HOST:PORT (port 1-65535); got {address!r}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings.from_env(tmp_path)
    with pytest.raises(ValueError, match="must be HOST:PORT"):
        Settings(tmp_path, fleet_api_address=address)
    assert Settings(tmp_path, fleet_api_address="127.0.0.1:65535").fleet_api_address.endswith(
        ":65535"
    )
