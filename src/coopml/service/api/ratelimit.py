"""A per-token request rate limit (token bucket), as ASGI middleware.

Each bearer token (the ``Authorization`` header, or the dashboard's session cookie;
without either, the client's address) has a bucket of ``burst`` requests that refills at
``rate`` requests per second. A request finding its bucket empty is answered ``429``
with ``Retry-After`` (whole seconds until one request's worth has refilled) before the
application sees it, so a refused upload is not read. Buckets are kept per process and
by the SHA-256 of the token, never the token itself; idle full buckets are forgotten.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from coopml.service.api.errors import ErrorPages

__all__ = ["RateLimitMiddleware", "TokenBuckets"]

#: Buckets kept before full (idle) ones are dropped.
MAX_BUCKETS = 10_000


class TokenBuckets:
    """Token buckets by key.

    Examples
    --------
    >>> now = [0.0]
    >>> buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    >>> [buckets.take("k") for _ in range(4)]
    [0.0, 0.0, 0.0, 0.5]
    >>> now[0] = 0.5
    >>> buckets.take("k")
    0.0
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self.clock = float(rate), float(burst), clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one request from ``key``'s bucket: 0 when allowed, else the seconds to
        wait before one is available."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > MAX_BUCKETS:
                    self._forget_full(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        full = [
            k
            for k, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) > MAX_BUCKETS:  # all busy: drop the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k][1])
            for k in oldest[: len(oldest) // 2]:
                del self._buckets[k]


def _key(scope: Scope, cookie_names: tuple[str, ...]) -> str:
    token = ""
    cookie = b""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                token = rest.strip()
        elif name == b"cookie":
            cookie = value
    if not token and cookie:
        for part in cookie.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k in cookie_names and v:
                token = v
                break
    if token:
        return "t:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    client = scope.get("client") or ("", 0)
    return f"a:{client[0]}"


class RateLimitMiddleware:
    """429 with ``Retry-After`` when a token exceeds its rate (``rate`` 0: no limit).

    Static files of the dashboard and the interactive docs are not counted; on
    ``pages``' paths the 429 is a page."""

    def __init__(
        self,
        app: ASGIApp,
        rate: float,
        burst: int,
        cookie_names: tuple[str, ...] = ("coopml_session", "coopml_token"),
        pages: ErrorPages | None = None,
    ) -> None:
        self.app = app
        self.buckets = TokenBuckets(rate, burst) if rate > 0 else None
        self.cookie_names = cookie_names
        self.pages = pages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (
            self.buckets is None
            or scope["type"] != "http"
            or path.startswith(("/static/", "/docs/static/"))
        ):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(_key(scope, self.cookie_names))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        from coopml.service.api.errors import error_response

        seconds = max(1, math.ceil(wait))
        message = (
            f"too many requests: at most {self.buckets.rate:g} per second on average "
            f"(bursts of {self.buckets.burst:g}) per token; retry after {seconds} s"
        )
        headers = {"Retry-After": str(seconds)}
        pages = self.pages
        response = (
            pages.render(429, message, headers)
            if pages is not None and pages.owns(path)
            else error_response(429, "rate_limited", message, headers)
        )
        await response(scope, receive, send)
