"""Service settings: where data lives, which database, keys and limits.

:meth:`Settings.from_env` reads ``COOPML_DATA_DIR``, ``COOPML_DATABASE_URL``,
``COOPML_SECRET_KEY``, ``COOPML_OPERATOR_TOKEN``, ``COOPML_MAX_UPLOAD_BYTES``,
``COOPML_LEASE_SECONDS``; where rounds' coalition evaluations run: ``COOPML_EXECUTOR``,
``COOPML_N_JOBS``, ``COOPML_RAY_ADDRESS`` and ``COOPML_EXECUTOR_TIMEOUT`` (seconds, or
``none`` to wait forever).
Tokens and dashboard sessions: ``COOPML_TOKEN_TTL``, ``COOPML_SESSION_TTL`` and
``COOPML_TRUST_PROXY``. Default prediction quota of new markets: ``COOPML_PREDICT_QUOTA``
(rows) and ``COOPML_PREDICT_WINDOW`` (seconds). Upload quotas and the request rate
limit: ``COOPML_MAX_DATASETS_PER_PARTY``, ``COOPML_MAX_BYTES_PER_PARTY``,
``COOPML_MAX_CONCURRENT_UPLOADS``, ``COOPML_RATE_LIMIT`` (requests per second per token)
and ``COOPML_RATE_BURST``. Parties custody (:mod:`coopml.service.custody`):
``COOPML_SUPERLINK`` (``auto``, ``on``, ``off``), ``COOPML_FLEET_API_ADDRESS``,
``COOPML_SUPERLINK_TLS`` (``CA,CERT,KEY``) and ``COOPML_AGENT_TIMEOUT`` (seconds).
An empty variable counts as unset.

Two steps, two owners. pydantic-settings parses the variables (:class:`_Environment`:
types, choices, the TLS triple, ``none``); :class:`Settings`, a frozen dataclass, checks
the values (ranges, the Fleet API address, the executor), whichever way they came in.
Every numeric setting has a range (:data:`LIMITS`): durations are finite, leases and
timeouts at most a day (``executor_timeout``: ``None``, or ``inf``, waits forever),
token and session lifetimes at most 10 years, quotas as the API's market fields allow.
A bad variable is refused naming it, what it must be and what it holds (a secret is
never echoed), e.g. ``environment variable COOPML_LEASE_SECONDS: not a number of
seconds; got 'soon'`` or ``environment variable COOPML_N_JOBS: parameter 'n_jobs' must
be an integer >= 1; got 0``. ``Settings`` is not itself the ``BaseSettings`` model
because that would read the environment on every construction: ``Settings(tmp_path)``
in a test or a script could silently pick up a production ``COOPML_DATABASE_URL``.
Keeping it a dataclass also keeps ``data_dir`` positional and ``superlink`` off by
default in code (``auto`` for ``coopml serve``) with less code than the overrides a
``BaseSettings`` would need for the same.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coopml.coalitions.executors import DEFAULT_TIMEOUT, Executor, get_executor

__all__ = ["LIMITS", "Settings"]

MiB = 1 << 20
PiB = 1 << 50
DAY = 86_400
YEAR = 365 * DAY

#: Every numeric setting's kind, bounds and what its message says it must be. The upper
#: bounds catch typos and values that would overflow at run time (a date ``now + ttl``
#: past year 9999, a C int): durations are finite, leases and timeouts a day at most,
#: token and session lifetimes 10 years at most; quotas as in the API's market fields.
LIMITS: dict[str, tuple[str, float, float, str]] = {
    "lease_seconds": ("seconds", 0, DAY, f"seconds > 0 and at most {DAY} (a day)"),
    "agent_timeout": ("seconds", 0, DAY, f"seconds > 0 and at most {DAY} (a day)"),
    "executor_timeout": (
        "seconds",
        0,
        DAY,
        f"seconds > 0 and at most {DAY} (a day), or None (wait forever)",
    ),
    "token_ttl_seconds": (
        "seconds",
        0,
        10 * YEAR,
        f"seconds > 0 and at most {10 * YEAR} (10 years), or None (no expiry)",
    ),
    "session_ttl_seconds": (
        "seconds",
        0,
        10 * YEAR,
        f"seconds > 0 and at most {10 * YEAR} (10 years)",
    ),
    "rate_limit_per_second": (
        "number",
        0,
        1_000_000,
        "requests per second >= 0 (0: no limit) and at most 1000000",
    ),
    "rate_limit_burst": ("integer", 1, 10**9, "an integer >= 1 and at most 1000000000"),
    "predict_quota": ("integer", 1, 10**8, "an integer >= 1 and at most 100000000"),
    "predict_window_seconds": (
        "integer",
        1,
        31 * DAY,
        f"an integer >= 1 and at most {31 * DAY} (31 days)",
    ),
    "max_upload_bytes": ("integer", 1, PiB, f"an integer >= 1 and at most {PiB} (1 PiB)"),
    "max_request_bytes": ("integer", 1, PiB, f"an integer >= 1 and at most {PiB} (1 PiB)"),
    "max_bytes_per_party": ("integer", 1, PiB, f"an integer >= 1 and at most {PiB} (1 PiB)"),
    "max_datasets_per_party": ("integer", 1, 10**6, "an integer >= 1 and at most 1000000"),
    "max_concurrent_uploads": ("integer", 1, 10_000, "an integer >= 1 and at most 10000"),
    "n_jobs": ("integer", 1, 100_000, "an integer >= 1 and at most 100000, or None (all cores)"),
}

#: Settings whose ``None`` means no limit (or the default).
_NONE_ALLOWED = ("executor_timeout", "token_ttl_seconds", "n_jobs")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_limit(name: str, value: Any, low: float, high: float, what: str) -> None:
    """Refuse ``value`` of setting ``name`` outside its :data:`LIMITS` (NaN, inf, bools
    and wrong types included), naming the setting, what it must be and what it holds."""
    kind = LIMITS[name][0]
    if kind == "integer":
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = ok and low <= value <= high
        if ok or (name == "n_jobs" and not (_is_number(value) and value > high)):
            if not ok:  # the message the executors give (below the range, or not an int)
                raise ValueError(f"parameter 'n_jobs' must be an integer >= 1; got {value!r}")
            return
    elif kind == "seconds":
        if _is_number(value) and low < value <= high:
            return
    elif _is_number(value) and low <= value <= high:
        return
    raise ValueError(f"parameter {name!r} must be {what}; got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Configuration of one deployment of the marketplace service.

    Parameters
    ----------
    data_dir : Path
        Holds the SQLite database (when no ``database_url``), the encrypted blob store,
        the key file ``secret.key`` and the operator token file ``operator.token``.
    database_url : str, optional
        SQLAlchemy URL; ``None`` means SQLite at ``data_dir/coopml.db`` in WAL mode.
    secret_key : bytes, optional
        32-byte AES-GCM key; ``None`` reads or creates ``data_dir/secret.key`` (0600).
    operator_token : str, optional
        The operator's bearer token; ``None`` creates one on first start and writes it to
        ``data_dir/operator.token`` (0600).
    max_upload_bytes : int, default 50 MiB
        Largest accepted dataset file.
    max_request_bytes : int, default 32 MiB
        Largest accepted body of any other request (JSON).
    max_datasets_per_party : int, default 100
        Datasets one party may keep in one market (markets may set their own).
    max_bytes_per_party : int, default 1 GiB
        Bytes of files one party may keep in one market (markets may set their own).
    max_concurrent_uploads : int, default 4
        Uploads received at the same time (each holds its file in memory, about twice
        its size at most); more wait up to 10 s, then get 429 with ``Retry-After``.
    rate_limit_per_second : float, default 50
        Requests per second each token (or, without one, each client address) may make
        on average (a token bucket), at most 1,000,000; 0 turns the limit off.
    rate_limit_burst : int, default 200
        The bucket's size: requests a token may make at once after being idle.
    embedded_worker : bool, default True
        ``coopml serve`` runs a job worker thread inside the server process.
    lease_seconds : float, default 30
        How long a claimed job stays claimed without a heartbeat (at most a day).
    executor : {"serial", "joblib", "ray"}, default "serial"
        Where a round's coalition evaluations run.
    n_jobs : int, optional
        Tasks the joblib/ray executor runs at once (default: all cores, or the Ray
        cluster's CPUs).
    ray_address : str, optional
        The Ray cluster of ``executor="ray"``: ``"auto"``, ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"``; ``None``: ``RAY_ADDRESS``, else a local Ray instance.
    executor_timeout : float or None, default 3600
        Seconds a round waits for one task's result before failing, at most a day;
        ``None`` (or ``inf``): forever.
    token_ttl_seconds : float, optional
        Lifetime of the party tokens issued from now on (``add-party``, token
        rotation), at most 10 years; ``None`` (the default): they never expire. The
        operator's token has no expiry: it lives until rotated.
    session_ttl_seconds : float, default 8 hours
        Lifetime of a dashboard session (never longer than its token's; at most 10 years).
    predict_quota : int, default 10,000
        Rows a party may send to the predict endpoint of its model of one round within
        ``predict_window_seconds``, for markets created without their own quota.
    predict_window_seconds : int, default 3600
        The quota's sliding window, for markets created without their own.
    trust_proxy : bool, default False
        Believe ``X-Forwarded-Proto`` (a TLS-terminating reverse proxy in front): the
        dashboard's cookie is then marked ``Secure`` when the proxy says ``https``.
    superlink : {"auto", "on", "off"}, default "off"
        Whether the service starts and supervises a Flower SuperLink for the
        parties-custody markets' rounds: ``auto`` once such a market exists, ``on`` at
        start, ``off`` never (such rounds then fail saying so). ``coopml serve``
        (:meth:`from_env`) defaults to ``auto``.
    fleet_api_address : str, default "127.0.0.1:9092"
        ``HOST:PORT`` of the SuperLink's Fleet API, which the parties' agents connect
        to (told to them by ``POST /markets/{id}/agent``). Without ``superlink_tls`` it
        must be on loopback.
    superlink_tls : (ca, certificate, key), optional
        PEM files of the SuperLink's TLS; ``None``: insecure, on loopback only.
    agent_timeout : float, default 120
        Seconds a parties-custody round waits for every agent to connect, and for each
        of its replies (at most a day); then the round fails naming the party.

    Examples
    --------
    >>> from pathlib import Path
    >>> s = Settings(Path("/tmp/coopml-example"))
    >>> s.resolved_database_url
    'sqlite:////tmp/coopml-example/coopml.db'
    """

    data_dir: Path
    database_url: str | None = None
    secret_key: bytes | None = field(default=None, repr=False)
    operator_token: str | None = field(default=None, repr=False)
    max_upload_bytes: int = 50 * MiB
    max_request_bytes: int = 32 * MiB
    max_datasets_per_party: int = 100
    max_bytes_per_party: int = 1024 * MiB
    max_concurrent_uploads: int = 4
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 200
    embedded_worker: bool = True
    lease_seconds: float = 30.0
    executor: Literal["serial", "joblib", "ray"] = "serial"
    n_jobs: int | None = None
    ray_address: str | None = None
    executor_timeout: float | None = DEFAULT_TIMEOUT
    token_ttl_seconds: float | None = None
    session_ttl_seconds: float = 8 * 3600.0
    trust_proxy: bool = False
    predict_quota: int = 10_000
    predict_window_seconds: int = 3600
    superlink: Literal["auto", "on", "off"] = "off"
    fleet_api_address: str = "127.0.0.1:9092"
    superlink_tls: tuple[str, str, str] | None = None
    agent_timeout: float = 120.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        if self.superlink not in ("auto", "on", "off"):
            raise ValueError(
                f"parameter 'superlink' must be one of 'auto', 'on', 'off'; got {self.superlink!r}"
            )
        host, _, port = self.fleet_api_address.rpartition(":")
        # ASCII digits only: str.isdigit() also accepts e.g. Arabic-Indic digits
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ValueError(
                "parameter 'fleet_api_address' must be HOST:PORT (port 1-65535); "
                f"got {self.fleet_api_address!r}"
            )
        if self.superlink_tls is None and host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ValueError(
                "parameter 'fleet_api_address' must be on loopback (127.0.0.1:PORT) unless "
                f"superlink_tls is set; got {self.fleet_api_address!r}"
            )
        if self.superlink_tls is not None and len(self.superlink_tls) != 3:
            raise ValueError(
                "parameter 'superlink_tls' must be three PEM paths (ca, certificate, key); "
                f"got {self.superlink_tls!r}"
            )
        if self.executor not in ("serial", "joblib", "ray"):
            raise ValueError(
                "parameter 'executor' must be one of 'serial', 'joblib', 'ray'; "
                f"got {self.executor!r}"
            )
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(
                "parameter 'ray_address' names a Ray cluster and needs executor='ray'; "
                f"got executor={self.executor!r}"
            )
        if self.secret_key is not None and len(self.secret_key) != 32:
            raise ValueError(
                f"parameter 'secret_key' must be 32 bytes; got {len(self.secret_key)} bytes"
            )
        for name, (_, low, high, what) in LIMITS.items():
            value = getattr(self, name)
            if value is None and name in _NONE_ALLOWED:
                continue
            if name == "executor_timeout" and _is_number(value) and value == math.inf:
                object.__setattr__(self, name, None)  # inf: wait forever, as None
                continue
            _check_limit(name, value, low, high, what)

    @property
    def resolved_database_url(self) -> str:
        """The database URL actually used."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'coopml.db'}"

    @property
    def heartbeat_seconds(self) -> float:
        """Interval between lease renewals (a third of the lease)."""
        return max(0.05, self.lease_seconds / 3)

    def build_executor(self) -> Executor:
        """The executor of a round's coalition evaluations (connects to the Ray cluster)."""
        return get_executor(
            self.executor, self.n_jobs, address=self.ray_address, timeout=self.executor_timeout
        )

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None, **overrides: Any) -> Settings:
        """Settings from ``COOPML_*`` environment variables (``overrides`` win).

        Raises ``ValueError`` naming the variable, what it must be and what it holds.
        """
        try:
            env = _Environment().model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise ValueError(_describe(exc)) from None
        if env.get("superlink_tls") is not None:
            env["superlink_tls"] = _tls_paths(env["superlink_tls"])
        kwargs: dict[str, Any] = {"superlink": "auto", **env}
        kwargs["data_dir"] = Path(data_dir or env.get("data_dir") or "coopml-data")
        given = {k: v for k, v in overrides.items() if v is not None}
        kwargs.update(given)
        try:
            return cls(**kwargs)
        except ValueError as exc:
            named = [
                _variable(name) for name in env if name not in given and f"'{name}'" in str(exc)
            ]
            if not named:
                raise
            raise ValueError(f"environment variable {', '.join(named)}: {exc}") from None


_SECONDS = "a number of seconds"


class _Environment(BaseSettings):
    """The ``COOPML_*`` variables, parsed; a field is unset when its variable is unset or
    empty. Each field's ``description`` says what the variable must be (for messages)."""

    model_config = SettingsConfigDict(env_prefix="COOPML_", env_ignore_empty=True)

    data_dir: Path | None = Field(None, description="a directory")
    database_url: str | None = Field(None, description="a SQLAlchemy URL")
    secret_key: bytes | None = Field(
        None, description="32 bytes as 64 hex digits or url-safe base64"
    )
    operator_token: str | None = Field(None, description="a token")
    max_upload_bytes: int | None = Field(None, description="a whole number of bytes")
    lease_seconds: float | None = Field(None, description=_SECONDS)
    token_ttl_seconds: float | None = Field(
        None, validation_alias="COOPML_TOKEN_TTL", description=_SECONDS
    )
    session_ttl_seconds: float | None = Field(
        None, validation_alias="COOPML_SESSION_TTL", description=_SECONDS
    )
    predict_quota: int | None = Field(None, description="a whole number of rows")
    predict_window_seconds: int | None = Field(
        None, validation_alias="COOPML_PREDICT_WINDOW", description="a whole number of seconds"
    )
    max_datasets_per_party: int | None = Field(None, description="a whole number of datasets")
    max_bytes_per_party: int | None = Field(None, description="a whole number of bytes")
    max_concurrent_uploads: int | None = Field(None, description="a whole number of uploads")
    rate_limit_per_second: float | None = Field(
        None, validation_alias="COOPML_RATE_LIMIT", description="a number of requests per second"
    )
    rate_limit_burst: int | None = Field(
        None, validation_alias="COOPML_RATE_BURST", description="a whole number of requests"
    )
    executor: Literal["serial", "joblib", "ray"] | None = Field(
        None, description="one of 'serial', 'joblib', 'ray'"
    )
    n_jobs: int | None = Field(None, description="a whole number of tasks")
    ray_address: str | None = Field(None, description="a Ray address")
    executor_timeout: float | None = Field(None, description=_SECONDS + " or 'none'")
    trust_proxy: bool | None = Field(
        None, description="a boolean (1/0, true/false, yes/no, on/off)"
    )
    superlink: Literal["auto", "on", "off"] | None = Field(
        None, description="one of 'auto', 'on', 'off'"
    )
    fleet_api_address: str | None = Field(None, description="HOST:PORT")
    superlink_tls: str | None = Field(
        None, description="three comma-separated PEM paths CA,CERT,KEY"
    )
    agent_timeout: float | None = Field(None, description=_SECONDS)

    @field_validator("executor", "superlink", "trust_proxy", "fleet_api_address", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("executor_timeout", mode="before")
    @classmethod
    def _none_waits_forever(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "none":
            return None
        return value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _key(cls, value: Any) -> Any:
        from coopml.service.security import parse_secret_key

        return parse_secret_key(value) if isinstance(value, str) else value

    @field_validator("superlink_tls")
    @classmethod
    def _tls(cls, value: str | None) -> str | None:
        return None if value is None else ",".join(_tls_paths(value))


#: Variables whose value is never repeated in a message.
_SECRETS = ("secret_key", "operator_token")


def _variable(name: str) -> str:
    """The environment variable of an :class:`_Environment` field."""
    alias = _Environment.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"COOPML_{name.upper()}"


def _tls_paths(text: str) -> tuple[str, str, str]:
    paths = tuple(part.strip() for part in text.split(","))
    if len(paths) != 3 or not all(paths):
        raise ValueError("needs three paths")
    return paths[0], paths[1], paths[2]


def _describe(exc: ValidationError) -> str:
    """``environment variable VAR: not WHAT; got VALUE`` for each bad variable."""
    by_variable = {_variable(name): name for name in _Environment.model_fields}
    parts = []
    for err in exc.errors():
        loc = str(err["loc"][0]) if err["loc"] else ""
        var = loc if loc in by_variable else _variable(loc)
        name = by_variable[var]
        value = err.get("input")
        if name in _SECRETS:
            got = f"{len(value)} characters" if isinstance(value, str) else "a value"
        else:
            got = repr(value)
        wanted = _Environment.model_fields[name].description
        parts.append(f"environment variable {var}: not {wanted}; got {got}")
    return "; ".join(parts)
