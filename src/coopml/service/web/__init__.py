"""Server-rendered web dashboard of the coopml marketplace service.

``router`` (a :class:`fastapi.APIRouter`) serves the login form at ``/``, ``POST /login``
and ``POST /logout``, and the pages under ``/ui/``: markets, one market, one round
(settlement table and SVG charts; the audit for the operator) and the audit log. The
service's app factory includes it at the root.
"""

from __future__ import annotations

from coopml.service.web.pages import COOKIE, router

__all__ = ["COOKIE", "router"]
