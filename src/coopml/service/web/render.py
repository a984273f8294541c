"""Jinja2 environment of the dashboard: package templates, autoescape on, filters.

Every template is rendered with autoescaping, so any text from the database (market,
party and dataset names, messages, audit entries) is HTML-escaped; only the SVG charts
of :mod:`coopml.service.web.svg`, which escape their own text, are marked safe.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2

import coopml

__all__ = ["environment", "format_number", "format_time", "render", "static_css"]

STATIC_URL = "/ui/static/style.css"


def format_number(value: Any, decimals: int = 4) -> str:
    """A number with fixed decimals for the tables (``–`` for missing, ``n/a`` for NaN).

    Examples
    --------
    >>> format_number(0.123456), format_number(3), format_number(None), format_number(-0.0)
    ('0.1235', '3', '–', '0.0000')
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e9:
        return f"{x:.4g}"
    text = f"{x:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_time(value: Any) -> str:
    """An ISO 8601 timestamp or datetime as ``YYYY-MM-DD HH:MM:SS UTC`` (``–`` if missing).

    Examples
    --------
    >>> format_time("2026-01-02T03:04:05.678+00:00")
    '2026-01-02 03:04:05 UTC'
    >>> format_time(None)
    '–'
    """
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


@cache
def environment() -> jinja2.Environment:
    """The (cached) template environment with autoescaping and strict undefineds."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("coopml.service.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["when"] = format_time
    env.globals["static_url"] = STATIC_URL
    env.globals["version"] = coopml.__version__
    return env


def render(template: str, **context: Any) -> str:
    """Render one template; ``user``, ``nav`` and ``breadcrumbs`` default to empty."""
    context.setdefault("user", None)
    context.setdefault("nav", "")
    context.setdefault("breadcrumbs", [])
    return environment().get_template(template).render(**context)


@cache
def static_css() -> bytes:
    """The dashboard's stylesheet (package data)."""
    from importlib.resources import files

    return (files("coopml.service.web") / "static" / "style.css").read_bytes()
