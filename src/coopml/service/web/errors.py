"""The dashboard's error pages: which paths are pages, and the page for an error.

The app factory (:mod:`coopml.service.app`) hands these to the API's error handlers, so
that an error on a dashboard path is an HTML page carrying the request id, while the
API keeps its JSON error body.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import HTMLResponse

from coopml.service.context import request_id_var
from coopml.service.web.render import render

__all__ = ["error_page", "is_page"]


def is_page(path: str) -> bool:
    """Whether ``path`` belongs to the dashboard (errors there are HTML pages).

    Examples
    --------
    >>> is_page("/ui/markets"), is_page("/"), is_page("/api/v1/markets")
    (True, True, False)
    """
    return path == "/" or path == "/ui" or path.startswith("/ui/")


def error_page(status: int, message: str, headers: Any = None) -> HTMLResponse:
    """The dashboard's error page, with the request id to quote to the operator."""
    try:
        heading = HTTPStatus(status).phrase
    except ValueError:
        heading = "Error"
    body = render(
        "error.html",
        status_code=status,
        heading=heading,
        message=f"{message} (request {request_id_var.get()})",
    )
    return HTMLResponse(body, status_code=status, headers=headers)
