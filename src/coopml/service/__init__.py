"""The marketplace as a service: HTTP API, database, durable jobs, dashboard.

A thin shell over :mod:`coopml.market`: routes validate and render, the worker calls
:func:`coopml.market.run_market`. ``create_app(Settings(data_dir))`` builds the app;
``coopml serve`` runs it.
"""

from coopml.service.api import create_app
from coopml.service.settings import Settings

__all__ = ["Settings", "create_app"]
