"""``coopml serve`` (the marketplace HTTP service) and ``coopml worker`` (a job worker)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from coopml.cli._root import console, fail

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data directory (database, encrypted blobs, keys). Default: $COOPML_DATA_DIR "
        "or ./coopml-data.",
    ),
]


def _settings(data_dir: Path | None, **overrides: object) -> object:
    from coopml.service.settings import Settings

    try:
        return Settings.from_env(data_dir, **overrides)
    except ValueError as exc:
        raise fail(str(exc)) from None


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    data_dir: DataDirOpt = None,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run an embedded job worker.")
    ] = True,
) -> None:
    """Run the marketplace: HTTP API under /api/v1, dashboard at /, docs at /docs."""
    import uvicorn

    from coopml.service import create_app
    from coopml.service.settings import Settings

    settings = _settings(data_dir, embedded_worker=worker)
    assert isinstance(settings, Settings)
    try:
        app = create_app(settings)
    except Exception as exc:  # database unreachable, bad key file, ...
        raise fail(f"cannot start the service: {exc}") from None
    ctx = app.state.service
    console.print(
        f"coopml marketplace on http://{host}:{port}  (data: {settings.data_dir})", soft_wrap=True
    )
    console.print(f"database: {ctx.db.dialect}; embedded worker: {'on' if worker else 'off'}")
    if ctx.operator_token_path is not None:
        console.print(
            f"operator token: in {ctx.operator_token_path} (keep it secret)", soft_wrap=True
        )
    elif settings.operator_token:
        console.print("operator token: from COOPML_OPERATOR_TOKEN")
    uvicorn.run(app, host=host, port=port, log_level="info")


def worker(
    data_dir: DataDirOpt = None,
    once: Annotated[
        bool, typer.Option("--once", help="Process the queued jobs, then exit.")
    ] = False,
    poll_interval: Annotated[float, typer.Option(help="Seconds between polls.", min=0.01)] = 0.5,
) -> None:
    """Run a job worker against the deployment's database (several may run at once)."""
    from coopml.service.jobs import run_worker
    from coopml.service.settings import Settings

    settings = _settings(data_dir, embedded_worker=False)
    assert isinstance(settings, Settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console.print(f"coopml worker on {settings.resolved_database_url.split('@')[-1]}")
    try:
        n = run_worker(settings, once=once, poll_interval=poll_interval, stop=stop)
    except Exception as exc:
        raise fail(f"worker stopped: {exc}") from None
    if once:
        console.print(f"processed {n} job(s)")
