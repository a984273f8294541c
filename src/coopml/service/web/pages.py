"""The dashboard's pages: login/logout, markets, one market, one round, the audit log.

Pages are rendered on the server (Jinja2, autoescape on) and need no JavaScript; the
charts are inline SVG from :mod:`coopml.service.web.svg`. Login posts a token (the
operator's or a party's API token) and opens a server-side session
(:mod:`coopml.service.domain.tokens`): the cookie ``coopml_session`` carries only the
session's random id, never the token, and is ``HttpOnly``, ``SameSite=Strict`` (no other
site can make the browser send it) and ``Secure`` over TLS. Logout revokes the session;
so do its expiry and the revocation of its token. The only forms are login and logout,
and both refuse a cross-origin ``Origin``.

Visibility follows the API: the operator sees everything; a party sees its own market,
its own party and datasets, the rounds of its market and only its own settlement line.
Another party's items answer 404, exactly like an item that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from coopml.service.web import data
from coopml.service.web.render import render, static_css
from coopml.service.web.views import (
    Viewer,
    dataset_row,
    market_row,
    party_rows,
    round_row,
    settlement_charts,
    settlement_view,
)

__all__ = ["COOKIE", "router"]

#: Name of the session cookie: a random session id (the API does not read it).
COOKIE = "coopml_session"
#: ``WWW-Authenticate`` of the login form's 401 (the dashboard authenticates with a
#: session cookie set by this form, not with a bearer token).
LOGIN_CHALLENGE = f'Cookie realm="coopml dashboard", form-action="/login", cookie-name="{COOKIE}"'

router = APIRouter(include_in_schema=False)

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class _NotFound(Exception):
    pass


def _html(body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status_code, headers=_SECURITY_HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_SECURITY_HEADERS)


def _safe_next(target: str | None) -> str:
    """Only same-site dashboard paths are followed after login (no open redirect)."""
    if not target:
        return "/ui/markets"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/ui/") or "\\" in target:
        return "/ui/markets"
    return target


def _same_origin(request: Request) -> bool:
    """A form post is accepted without an ``Origin``/``Referer`` header or with this
    server's own origin; a foreign origin is refused (CSRF defence besides SameSite)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    hosts = {request.headers.get("host", ""), request.headers.get("x-forwarded-host", "")}
    return urlsplit(origin).netloc in hosts - {""}


def _viewer(request: Request) -> Viewer | None:
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    return data.session_viewer(request, session_id)


def _over_tls(request: Request) -> bool:
    """Whether the browser talks TLS to us: an https request, or (``trust_proxy``) a
    reverse proxy's ``X-Forwarded-Proto: https``."""
    if request.url.scheme == "https":
        return True
    ctx = getattr(request.app.state, "service", None)
    if ctx is None or not ctx.settings.trust_proxy:
        return False
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return proto == "https"


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect(f"/?next={quote(target, safe='/')}")


def _not_found(viewer: Viewer | None, what: str) -> HTMLResponse:
    body = render(
        "error.html",
        user=viewer,
        status_code=404,
        heading="Not found",
        message=f"There is no {what} with this id that you may see.",
    )
    return _html(body, 404)


def _cross_site_refused(action: str) -> HTMLResponse:
    body = render(
        "error.html",
        status_code=403,
        heading="Forbidden",
        message=f"Cross-site {action} requests are refused.",
    )
    return _html(body, 403)


# ---------------------------------------------------------------------- login / logout
@router.get("/", response_class=HTMLResponse)
def home(request: Request, next: Annotated[str | None, Query()] = None) -> Response:
    """The login form, or the markets when already logged in."""
    if _viewer(request) is not None:
        return _redirect(_safe_next(next))
    return _html(render("login.html", error=None, next=_safe_next(next)))


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    token: Annotated[str, Form(max_length=512)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    """Check the token and open a session: its id goes into the HttpOnly,
    SameSite=Strict (and, over TLS, Secure) cookie; the token goes nowhere."""
    if not _same_origin(request):
        return _cross_site_refused("login")
    token = token.strip()
    opened = data.open_session(request, token) if token else None
    if opened is None:
        body = render("login.html", error="Invalid token.", next=_safe_next(next))
        refused = _html(body, 401)
        refused.headers["WWW-Authenticate"] = LOGIN_CHALLENGE
        return refused
    previous = request.cookies.get(COOKIE)
    if previous:  # a new login replaces the browser's old session
        data.close_session(request, previous)
    session_id, _ = opened
    response = _redirect(_safe_next(next))
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="strict",
        secure=_over_tls(request),
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session (its id no longer works, whoever replays it) and clear the
    cookie."""
    if not _same_origin(request):
        return _cross_site_refused("logout")
    session_id = request.cookies.get(COOKIE)
    if session_id:
        data.close_session(request, session_id)
    response = _redirect("/")
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=_over_tls(request)
    )
    return response


@router.get("/ui/static/style.css")
def stylesheet() -> Response:
    """The dashboard's stylesheet (served by the app; no CDN)."""
    return Response(
        static_css(),
        media_type="text/css",
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# ---------------------------------------------------------------------------- pages
@router.get("/ui", response_class=HTMLResponse)
@router.get("/ui/", response_class=HTMLResponse)
def ui_root() -> Response:
    return _redirect("/ui/markets")


@router.get("/ui/markets", response_class=HTMLResponse)
def markets_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Markets, a page at a time: all of them for the operator, its own for a party."""
    viewer = _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    rows, total = data.list_markets(request, viewer, limit=limit, offset=offset)
    markets = [market_row(m) for m in rows]
    if not viewer.is_operator:
        markets = [m for m in markets if m["id"] == viewer.get("market_id")]
    body = render(
        "markets.html",
        user=viewer,
        nav="markets",
        markets=markets,
        breadcrumbs=[],
        limit=limit,
        offset=offset,
        total=total,
    )
    return _html(body)


@router.get("/ui/markets/{market_id}", response_class=HTMLResponse)
def market_page(request: Request, market_id: str) -> Response:
    """A market: its parties, datasets and rounds (a party sees only its own rows)."""
    viewer = _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    if not viewer.is_operator and market_id != viewer.get("market_id"):
        return _not_found(viewer, "market")
    market = data.get_market(request, viewer, market_id)
    if market is None:
        return _not_found(viewer, "market")
    parties = [p for p in data.list_parties(request, viewer, market_id) if viewer.owns(p["id"])]
    names = {str(p["id"]): str(p["name"]) for p in parties}
    datasets = [
        dataset_row(d, names)
        for d in data.list_datasets(request, viewer, market_id)
        if viewer.owns(d.get("party_id"))
    ]
    rounds = [round_row(r) for r in data.list_rounds(request, viewer, market_id)]
    m = market_row(market)
    body = render(
        "market.html",
        user=viewer,
        nav="markets",
        market=m,
        parties=party_rows(parties, market),
        datasets=datasets,
        rounds=rounds,
        breadcrumbs=[("Markets", "/ui/markets"), (m["name"], None)],
    )
    return _html(body)


@router.get("/ui/rounds/{round_id}", response_class=HTMLResponse)
def round_page(request: Request, round_id: str) -> Response:
    """A round: status and progress; when completed the settlement with its charts, and
    for the operator the audit (balance, verification, duplicates, replication)."""
    viewer = _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    round_ = data.get_round(request, viewer, round_id)
    if round_ is None or (
        not viewer.is_operator and round_.get("market_id") != viewer.get("market_id")
    ):
        return _not_found(viewer, "round")
    market = data.get_market(request, viewer, str(round_.get("market_id"))) or {}
    r = round_row(round_, progress_width=240.0)
    settlement: dict[str, Any] | None = None
    charts: list[Any] = []
    audit: dict[str, Any] | None = None
    if r["status"] == "completed":
        raw = data.get_settlement(request, viewer, round_id)
        if raw is not None:
            settlement = settlement_view(raw, viewer)
            if settlement["lines"]:
                charts = settlement_charts(settlement["lines"])
            else:
                settlement = None
        if viewer.is_operator:
            audit = data.get_audit(request, viewer, round_id)
    m = market_row(market)
    body = render(
        "round.html",
        user=viewer,
        nav="markets",
        round=r,
        market=m,
        settlement=settlement,
        charts=charts,
        audit=audit,
        breadcrumbs=[
            ("Markets", "/ui/markets"),
            (m["name"] or "market", f"/ui/markets/{quote(m['id'], safe='')}"),
            (f"round {r['id'][:8]}", None),
        ],
    )
    return _html(body)


@router.get("/ui/audit-log", response_class=HTMLResponse)
def audit_log_page(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """The audit log: everything for the operator, entries about its own items for a
    party; newest first, paginated."""
    viewer = _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    entries, total = data.audit_log(request, viewer, limit=limit, offset=offset)
    body = render(
        "audit_log.html",
        user=viewer,
        nav="audit",
        entries=entries,
        total=total,
        limit=limit,
        offset=offset,
    )
    return _html(body)
