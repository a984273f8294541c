"""One error body for every failure, the one map from domain errors to HTTP, and the
``X-Request-ID`` middleware.

Every error is ``{"error": {"code", "message", "request_id"}}``; every response carries
``X-Request-ID`` (the client's, when it sent a well-formed one). The domain's refusals
(:mod:`coopml.service.domain.errors`, and the dataset rules of
:mod:`coopml.service.domain.datasets`) become statuses here and nowhere else
(:func:`domain_status`). A front end mounted beside the API (the dashboard) shows the
errors of its own paths as pages: the app factory passes its :class:`ErrorPages`.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coopml.service.context import request_id_var
from coopml.service.domain import datasets, errors

__all__ = [
    "ApiError",
    "ErrorBody",
    "ErrorPages",
    "RequestIdMiddleware",
    "api_error",
    "domain_status",
    "install_error_handlers",
]

log = logging.getLogger("coopml.service")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Largest request body except dataset uploads (limited by ``max_upload_bytes``); a
#: 10,000-row prediction request fits comfortably.
MAX_JSON_BODY = 32 * 1024 * 1024
_UPLOAD = re.compile(r"/markets/[^/]+/datasets/?$")

_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


#: The HTTP status of each kind of domain refusal (the most specific class wins).
DOMAIN_STATUS: dict[type[Exception], int] = {
    errors.NotFound: 404,
    errors.Forbidden: 403,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.Throttled: 429,
    datasets.DatasetRuleError: 422,
    datasets.InvalidDataset: 422,
    datasets.SchemaMismatch: 422,
    datasets.InvalidSchema: 422,
    datasets.DuplicateDataset: 409,
    datasets.DatasetInUse: 409,
    datasets.QuotaExceeded: 429,
    datasets.DatasetTooLarge: 413,
    datasets.DatasetNotFound: 404,
}

DomainRefusal = errors.DomainError | datasets.DatasetRuleError


def domain_status(exc: DomainRefusal) -> int:
    """The HTTP status of a domain refusal.

    Examples
    --------
    >>> domain_status(errors.NotFound("round 'x' not found"))
    404
    >>> domain_status(datasets.DuplicateDataset("the same file twice"))
    409
    """
    for kind in type(exc).__mro__:
        if kind in DOMAIN_STATUS:
            return DOMAIN_STATUS[kind]
    return 422


@dataclass(frozen=True)
class ErrorPages:
    """How a front end mounted beside the API shows the errors of its own paths:
    ``owns(path)`` says whether a path is one of its pages, ``render(status, message,
    headers)`` renders the error page."""

    owns: Callable[[str], bool]
    render: Callable[[int, str, Any], Response]


class ApiError(Exception):
    """An error the API reports to the client."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        #: Response headers (e.g. ``WWW-Authenticate`` on a 401).
        self.headers = headers


def api_error(exc: DomainRefusal) -> ApiError:
    """The HTTP answer to a domain refusal (``Retry-After`` when waiting helps)."""
    headers = None if exc.retry_after is None else {"Retry-After": str(exc.retry_after)}
    return ApiError(domain_status(exc), exc.code, exc.message, headers)


def error_response(status: int, code: str, message: str, headers: Any = None) -> JSONResponse:
    rid = request_id_var.get()
    body = {"error": {"code": code, "message": message, "request_id": rid}}
    return JSONResponse(body, status_code=status, headers=headers)


def _malformed_json(err: dict[str, Any], doc: Any) -> str:
    """``body: malformed JSON at line L, column C: <reason>`` (the parser reports a
    character offset; the location is its line and column in the body)."""
    position = err.get("loc", ("body", 0))[-1]
    reason = (err.get("ctx") or {}).get("error") or "not valid JSON"
    if isinstance(position, int) and isinstance(doc, str | bytes):
        text = doc if isinstance(doc, str) else doc.decode("utf-8", "replace")
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        return f"body: malformed JSON at line {line}, column {column}: {reason}"
    return f"body: malformed JSON: {reason}"


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return _malformed_json(err, getattr(exc, "body", None))
        loc = [str(p) for p in err.get("loc", ())]
        if loc == ["body"]:  # a rule across fields of the body
            where = "body"
        elif loc and loc[0] in ("body", "query", "path", "header", "cookie"):
            where = f"{loc[0]} field '{'.'.join(loc[1:]) or loc[0]}'"
        else:
            where = "'" + ".".join(loc) + "'"
        received = ""
        if "input" in err and err.get("type") != "missing":
            shown = repr(err["input"])
            received = f" (received {shown[:80]}{'...' if len(shown) > 80 else ''})"
        parts.append(f"{where}: {err.get('msg', 'invalid')}{received}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI, pages: ErrorPages | None = None) -> None:
    """Route every exception to the common error body (a page, on ``pages``' paths)."""

    def respond(
        request: Request, status: int, code: str, message: str, headers: Any = None
    ) -> Response:
        if pages is not None and pages.owns(request.url.path):
            return pages.render(status, message, headers)
        return error_response(status, code, message, headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return respond(request, exc.status, exc.code, exc.message, exc.headers)

    async def _domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.DomainError | datasets.DatasetRuleError)
        err = api_error(exc)
        return respond(request, err.status, err.code, err.message, err.headers)

    app.add_exception_handler(errors.DomainError, _domain_error)
    app.add_exception_handler(datasets.DatasetRuleError, _domain_error)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return respond(request, 422, "validation_error", _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _CODES.get(exc.status_code, "http_error")
        return respond(request, exc.status_code, code, str(exc.detail), exc.headers)


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit (an HTTPException, so that FastAPI's body parsing
    lets it through and it is rendered as a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body: at most {limit} bytes are accepted")


class RequestIdMiddleware:
    """Pure ASGI middleware: set the request id and echo it in ``X-Request-ID``; bound
    request bodies (except dataset uploads, which their route limits) to ``max_body``.
    An unhandled error is a 500: the common error body, or on ``pages``' paths a page."""

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_JSON_BODY, pages: ErrorPages | None = None
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if _CLIENT_ID.match(text):
                    rid = text
                break
        rid = rid or uuid.uuid4().hex
        token = request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        started = False
        limited = scope.get("method") != "POST" or not _UPLOAD.search(scope.get("path", ""))
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), b"")
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send_with_id(message)

        try:
            if limited and declared.isdigit() and int(declared) > self.max_body:
                raise BodyTooLarge(self.max_body)
            await self.app(scope, bounded_receive if limited else receive, send_tracking)
        except BodyTooLarge as exc:
            if started:
                raise
            response = error_response(413, "payload_too_large", str(exc.detail))
            await response(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", rid)
            if started:
                raise
            pages = self.pages
            failure: Response = (
                pages.render(500, "Something went wrong on the server.", None)
                if pages is not None and pages.owns(scope.get("path", ""))
                else error_response(500, "internal_error", "internal server error")
            )
            await failure(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
