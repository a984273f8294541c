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
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from coopml.coalitions.executors import DEFAULT_TIMEOUT, Executor, check_timeout, get_executor

__all__ = ["Settings"]

MiB = 1 << 20


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
        on average (a token bucket); 0 turns the limit off.
    rate_limit_burst : int, default 200
        The bucket's size: requests a token may make at once after being idle.
    embedded_worker : bool, default True
        ``coopml serve`` runs a job worker thread inside the server process.
    lease_seconds : float, default 30
        How long a claimed job stays claimed without a heartbeat.
    executor : {"serial", "joblib", "ray"}, default "serial"
        Where a round's coalition evaluations run.
    n_jobs : int, optional
        Tasks the joblib/ray executor runs at once (default: all cores, or the Ray
        cluster's CPUs).
    ray_address : str, optional
        The Ray cluster of ``executor="ray"``: ``"auto"``, ``"HOST:PORT"`` or
        ``"ray://HOST:PORT"``; ``None``: ``RAY_ADDRESS``, else a local Ray instance.
    executor_timeout : float or None, default 3600
        Seconds a round waits for one task's result before failing; ``None``: forever.
    token_ttl_seconds : float, optional
        Lifetime of the party tokens issued from now on (``add-party``, token
        rotation); ``None`` (the default): they never expire. The operator's token has
        no expiry: it lives until rotated.
    session_ttl_seconds : float, default 8 hours
        Lifetime of a dashboard session (never longer than its token's).
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
        of its replies; then the round fails naming the party.

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
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
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
        if not self.agent_timeout > 0:
            raise ValueError(f"parameter 'agent_timeout' must be > 0; got {self.agent_timeout}")
        if self.max_upload_bytes < 1:
            raise ValueError(
                f"parameter 'max_upload_bytes' must be >= 1; got {self.max_upload_bytes}"
            )
        if self.max_request_bytes < 1:
            raise ValueError(
                f"parameter 'max_request_bytes' must be >= 1; got {self.max_request_bytes}"
            )
        if not self.lease_seconds > 0:
            raise ValueError(f"parameter 'lease_seconds' must be > 0; got {self.lease_seconds}")
        if self.executor not in ("serial", "joblib", "ray"):
            raise ValueError(
                "parameter 'executor' must be one of 'serial', 'joblib', 'ray'; "
                f"got {self.executor!r}"
            )
        if self.n_jobs is not None and not (
            isinstance(self.n_jobs, int) and not isinstance(self.n_jobs, bool) and self.n_jobs >= 1
        ):
            raise ValueError(f"parameter 'n_jobs' must be an integer >= 1; got {self.n_jobs!r}")
        if self.ray_address is not None and self.executor != "ray":
            raise ValueError(
                "parameter 'ray_address' names a Ray cluster and needs executor='ray'; "
                f"got executor={self.executor!r}"
            )
        try:
            object.__setattr__(self, "executor_timeout", check_timeout(self.executor_timeout))
        except ValueError as exc:
            raise ValueError(str(exc).replace("'timeout'", "'executor_timeout'")) from None
        if self.secret_key is not None and len(self.secret_key) != 32:
            raise ValueError(
                f"parameter 'secret_key' must be 32 bytes; got {len(self.secret_key)} bytes"
            )
        if self.token_ttl_seconds is not None and not self.token_ttl_seconds > 0:
            raise ValueError(
                "parameter 'token_ttl_seconds' must be > 0 seconds (or None: no expiry); "
                f"got {self.token_ttl_seconds}"
            )
        for name in ("predict_quota", "predict_window_seconds"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"parameter {name!r} must be >= 1; got {getattr(self, name)}")
        for name in (
            "max_datasets_per_party",
            "max_bytes_per_party",
            "max_concurrent_uploads",
            "rate_limit_burst",
        ):
            if not getattr(self, name) >= 1:
                raise ValueError(f"parameter {name!r} must be >= 1; got {getattr(self, name)}")
        if not self.rate_limit_per_second >= 0:
            raise ValueError(
                "parameter 'rate_limit_per_second' must be >= 0 (0: no limit); "
                f"got {self.rate_limit_per_second}"
            )
        if not self.session_ttl_seconds > 0:
            raise ValueError(
                f"parameter 'session_ttl_seconds' must be > 0; got {self.session_ttl_seconds}"
            )

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
        """Settings from ``COOPML_*`` environment variables (``overrides`` win)."""
        from coopml.service.security import parse_secret_key

        env = os.environ
        kwargs: dict[str, Any] = {
            "data_dir": Path(data_dir or env.get("COOPML_DATA_DIR") or "coopml-data"),
            "database_url": env.get("COOPML_DATABASE_URL") or None,
            "operator_token": env.get("COOPML_OPERATOR_TOKEN") or None,
            "superlink": "auto",
        }
        if env.get("COOPML_SECRET_KEY"):
            kwargs["secret_key"] = parse_secret_key(env["COOPML_SECRET_KEY"])
        numeric = {
            "COOPML_MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
            "COOPML_LEASE_SECONDS": ("lease_seconds", float),
            "COOPML_TOKEN_TTL": ("token_ttl_seconds", float),
            "COOPML_SESSION_TTL": ("session_ttl_seconds", float),
            "COOPML_PREDICT_QUOTA": ("predict_quota", int),
            "COOPML_PREDICT_WINDOW": ("predict_window_seconds", int),
            "COOPML_MAX_DATASETS_PER_PARTY": ("max_datasets_per_party", int),
            "COOPML_MAX_BYTES_PER_PARTY": ("max_bytes_per_party", int),
            "COOPML_MAX_CONCURRENT_UPLOADS": ("max_concurrent_uploads", int),
            "COOPML_RATE_LIMIT": ("rate_limit_per_second", float),
            "COOPML_RATE_BURST": ("rate_limit_burst", int),
            "COOPML_N_JOBS": ("n_jobs", int),
            "COOPML_AGENT_TIMEOUT": ("agent_timeout", float),
        }
        for var, (name, kind) in numeric.items():
            if env.get(var):
                try:
                    kwargs[name] = kind(env[var])
                except ValueError:
                    raise ValueError(
                        f"environment variable {var}: not a number: {env[var]!r}"
                    ) from None
        if env.get("COOPML_EXECUTOR"):
            kwargs["executor"] = env["COOPML_EXECUTOR"]
        for var, name in (
            ("COOPML_SUPERLINK", "superlink"),
            ("COOPML_FLEET_API_ADDRESS", "fleet_api_address"),
        ):
            if env.get(var):
                kwargs[name] = env[var].strip()
        if env.get("COOPML_SUPERLINK_TLS"):
            kwargs["superlink_tls"] = tuple(
                x.strip() for x in env["COOPML_SUPERLINK_TLS"].split(",")
            )
        if env.get("COOPML_RAY_ADDRESS"):
            kwargs["ray_address"] = env["COOPML_RAY_ADDRESS"]
        if env.get("COOPML_EXECUTOR_TIMEOUT"):
            text = env["COOPML_EXECUTOR_TIMEOUT"].strip().lower()
            try:
                kwargs["executor_timeout"] = None if text == "none" else float(text)
            except ValueError:
                raise ValueError(
                    "environment variable COOPML_EXECUTOR_TIMEOUT: not a number of seconds "
                    f"or 'none'; got {text!r}"
                ) from None
        if env.get("COOPML_TRUST_PROXY"):
            flag = env["COOPML_TRUST_PROXY"].strip().lower()
            if flag not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                raise ValueError(
                    f"environment variable COOPML_TRUST_PROXY: not a boolean: {flag!r}"
                )
            kwargs["trust_proxy"] = flag in {"1", "true", "yes", "on"}
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)
