"""Query helpers shared by the domain modules: the shape of an id, one page of rows."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

__all__ = ["paginate", "valid_id"]

_ID = re.compile(r"^[0-9a-f]{32}$")


def valid_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id (uuid4 hex).

    Examples
    --------
    >>> valid_id("0" * 32), valid_id("../etc")
    (True, False)
    """
    return bool(_ID.match(value))


def paginate(
    s: Session, query: Select[Any], limit: int | None, offset: int = 0
) -> tuple[list[Any], int]:
    """The rows of one page (``limit`` None: every row from ``offset``) and the total."""
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    if limit is not None:
        query = query.limit(limit)
    rows = list(s.scalars(query.offset(offset) if offset else query))
    return rows, int(total)
