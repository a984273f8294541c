"""The marketplace as a service: HTTP API, database, durable jobs, dashboard.

A thin shell over :mod:`coopml.market`: routes validate and render, the worker calls
:func:`coopml.market.run_market`. ``create_app(Settings(data_dir))`` builds the app;
``coopml serve`` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coopml.service.app import create_app
    from coopml.service.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the HTTP client (coopml.service.client) needs neither.
    if name == "create_app":
        from coopml.service.app import create_app

        return create_app
    if name == "Settings":
        from coopml.service.settings import Settings

        return Settings
    raise AttributeError(f"module 'coopml.service' has no attribute {name!r}")
