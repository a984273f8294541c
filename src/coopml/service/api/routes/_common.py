"""Shared pieces of the route modules: paging parameters and the page body."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1..500).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The body of one page of a list (``Page`` in the schemas)."""
    return {"items": items, "total": total, "limit": limit, "offset": offset}
