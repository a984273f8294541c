"""Server-rendered web dashboard of the coopml marketplace service.

``router`` (a :class:`fastapi.APIRouter`) serves the login form at ``/``, ``POST /login``
and ``POST /logout``, and the pages under ``/ui/``: markets, one market, one round
(settlement table and SVG charts; the audit for the operator) and the audit log. Its
pages read through the domain layer (:mod:`coopml.service.domain`), never through the
API. The app factory (:mod:`coopml.service.app`) includes it at the root and shows
errors on its paths with :func:`error_page`.
"""

from __future__ import annotations

from coopml.service.web.errors import error_page, is_page
from coopml.service.web.pages import COOKIE, router

__all__ = ["COOKIE", "error_page", "is_page", "router"]
