"""Server-rendered web dashboard of the coopml marketplace service."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()

__all__ = ["router"]
