"""The HTTP API: ``create_api(settings)``.

Routes live under ``/api/v1`` (OpenAPI at ``/openapi.json``, docs at ``/docs``); each
route module translates HTTP to calls of the domain layer (:mod:`coopml.service.domain`)
and back, and :mod:`coopml.service.api.errors` maps the domain's refusals to statuses.
``app.state.service`` holds the :class:`~coopml.service.context.ServiceContext`
(settings, database, blob store). This package never imports the dashboard: the app
factory :func:`coopml.service.app.create_app` composes the two.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from coopml import __version__
from coopml.service.api.errors import (
    ErrorBody,
    ErrorPages,
    RequestIdMiddleware,
    install_error_handlers,
)
from coopml.service.api.ratelimit import RateLimitMiddleware
from coopml.service.api.routes import datasets, markets, meta, rounds, tokens
from coopml.service.context import ServiceContext
from coopml.service.settings import Settings

if TYPE_CHECKING:
    from coopml.service.jobs.worker import BeforeSettle

__all__ = ["API_PREFIX", "create_api", "iter_routes"]

API_PREFIX = "/api/v1"

_ERRORS = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        401: "Missing or invalid token",
        403: "Not allowed for this caller",
        404: "Not found (or not the caller's)",
        409: "Conflicts with the current state",
        413: "Upload too large",
        422: "Invalid input",
        429: "Too many requests, or a quota is used up (Retry-After: when waiting helps)",
    }.items()
}


def create_api(
    settings: Settings,
    *,
    context: ServiceContext | None = None,
    error_pages: ErrorPages | None = None,
    before_settle: BeforeSettle | None = None,
) -> FastAPI:
    """The API application for ``settings`` (the marketplace without its dashboard).

    Creating it prepares the deployment (data directory, key file, database
    migrations, operator token). With ``settings.embedded_worker`` its lifespan runs a
    job worker thread (``before_settle``: see :class:`~coopml.service.jobs.worker.Worker`);
    unless ``settings.superlink`` is ``"off"``, it supervises Flower's SuperLink for
    parties-custody rounds (:class:`~coopml.service.custody.SuperLinkSupervisor`).
    ``error_pages``: how a front end mounted beside it shows errors on its own paths.
    """
    ctx = context or ServiceContext.open(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        if settings.embedded_worker:
            from coopml.service.jobs.worker import Worker

            worker = Worker(ctx, before_settle=before_settle)
            thread = threading.Thread(
                target=worker.run, args=(stop,), name="coopml-embedded-worker", daemon=True
            )
            thread.start()
        supervisor = None
        if settings.superlink != "off":  # parties custody: Flower's SuperLink
            from coopml.service.custody import SuperLinkSupervisor

            supervisor = SuperLinkSupervisor(ctx).start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=30)
            if supervisor is not None:
                supervisor.stop()

    app = FastAPI(
        title="coopml marketplace",
        version=__version__,
        description="Collaborative ML market (Ohrimenko, Tople & Tschiatschek 2019) as a "
        "service: markets, parties, datasets, rounds, settlements, models.",
        lifespan=lifespan,
        docs_url=None,
    )
    _self_hosted_docs(app)
    app.state.service = ctx
    # the rate limit runs inside the request-id middleware (its 429 carries the id)
    app.add_middleware(
        RateLimitMiddleware,
        rate=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
        pages=error_pages,
    )
    app.add_middleware(RequestIdMiddleware, max_body=settings.max_request_bytes, pages=error_pages)
    install_error_handlers(app, error_pages)
    for module in (meta, markets, datasets, rounds, tokens):
        app.include_router(module.router, prefix=API_PREFIX, responses=_ERRORS)  # type: ignore[arg-type]
    return app


def _self_hosted_docs(app: FastAPI) -> None:
    """Interactive docs at ``/docs`` from Swagger UI files shipped in a wheel
    (``swagger-ui-bundle``): no CDN, so they work on a machine without internet."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


def iter_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every route, descending into included routers (FastAPI
    >= 0.16x keeps ``app.include_router(...)`` as one nested entry of ``app.routes``).

    ``iter_routes(app.routes)`` lists the whole app; HEAD and OPTIONS are skipped.
    """
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            yield from iter_routes(original.routes, prefix + getattr(context, "prefix", ""))
            continue
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if path is not None and method not in {"HEAD", "OPTIONS"}:
                yield method, prefix + path
