"""The marketplace application: ``create_app(settings)`` composes the HTTP API
(:mod:`coopml.service.api`) and the dashboard (:mod:`coopml.service.web`).

The API package knows nothing of the dashboard: this factory builds the API, gives its
error handlers the dashboard's error pages (errors on ``/`` and ``/ui/...`` are HTML
pages, elsewhere the API's JSON body) and mounts the dashboard at the root.
``app.state.service`` holds the :class:`~coopml.service.context.ServiceContext`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from coopml.service.api import create_api
from coopml.service.api.errors import ErrorPages
from coopml.service.context import ServiceContext
from coopml.service.settings import Settings
from coopml.service.web import error_page, is_page
from coopml.service.web import router as web_router

if TYPE_CHECKING:
    from coopml.service.jobs.worker import BeforeSettle

__all__ = ["create_app"]


def create_app(
    settings: Settings,
    *,
    context: ServiceContext | None = None,
    before_settle: BeforeSettle | None = None,
) -> FastAPI:
    """The marketplace application for ``settings``: API under ``/api/v1``, dashboard at
    ``/``, docs at ``/docs``.

    Creating the app prepares the deployment (data directory, key file, database
    migrations, operator token). With ``settings.embedded_worker`` the app's lifespan
    runs a job worker thread (``before_settle``: see
    :class:`coopml.service.jobs.worker.Worker`).
    """
    app = create_api(
        settings,
        context=context,
        error_pages=ErrorPages(owns=is_page, render=error_page),
        before_settle=before_settle,
    )
    app.include_router(web_router)
    return app
