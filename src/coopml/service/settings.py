"""Service settings: where data lives, which database, keys and limits.

:meth:`Settings.from_env` reads ``COOPML_DATA_DIR``, ``COOPML_DATABASE_URL``,
``COOPML_SECRET_KEY``, ``COOPML_OPERATOR_TOKEN``, ``COOPML_MAX_UPLOAD_BYTES``,
``COOPML_LEASE_SECONDS`` and ``COOPML_EXECUTOR``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

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
    embedded_worker : bool, default True
        ``coopml serve`` runs a job worker thread inside the server process.
    lease_seconds : float, default 30
        How long a claimed job stays claimed without a heartbeat.
    executor : {"serial", "joblib", "ray"}, default "serial"
        Where a round's coalition evaluations run.
    n_jobs : int, optional
        Parallelism of the joblib/ray executors.
    round_delay_seconds : float, default 0
        Test-only: a round sleeps this long (heartbeating) before settling, so that a
        test can kill its worker mid-round.

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
    embedded_worker: bool = True
    lease_seconds: float = 30.0
    executor: Literal["serial", "joblib", "ray"] = "serial"
    n_jobs: int | None = None
    round_delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
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
        if self.secret_key is not None and len(self.secret_key) != 32:
            raise ValueError(
                f"parameter 'secret_key' must be 32 bytes; got {len(self.secret_key)} bytes"
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
        }
        if env.get("COOPML_SECRET_KEY"):
            kwargs["secret_key"] = parse_secret_key(env["COOPML_SECRET_KEY"])
        numeric = {
            "COOPML_MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
            "COOPML_LEASE_SECONDS": ("lease_seconds", float),
            "COOPML_TEST_ROUND_DELAY": ("round_delay_seconds", float),
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
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)
