"""The ``coopml`` command line: a thin typer shell over the library.

Each command group lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

from coopml.cli import value as _value  # noqa: F401  (registers `coopml value`)
from coopml.cli.app import app, main

__all__ = ["app", "main"]
