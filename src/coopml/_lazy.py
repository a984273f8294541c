"""Package names resolved on first use (PEP 562).

A parties-custody agent answers every Flower message in a fresh process, and the HTTP
client and ``coopml client`` should not pay for scikit-learn either: a package lists
where each of its public names lives, and the module is imported when a name is first
read (``from coopml.data import Party`` imports :mod:`coopml.data.party` only).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``where[name]`` is the module that
    defines ``name`` (relative to ``package``, or absolute when it starts with
    ``coopml.``), imported on first access.

    Examples
    --------
    >>> getattr_ = exports("coopml.data", {"Party": "party"})
    >>> getattr_("Party").__module__
    'coopml.data.party'
    >>> getattr_("Partty")
    Traceback (most recent call last):
    ...
    AttributeError: module 'coopml.data' has no attribute 'Partty'
    """
    modules = {
        name: module if module.startswith("coopml.") else f"{package}.{module}"
        for name, module in where.items()
    }

    def __getattr__(name: str) -> Any:
        if name in modules:
            return getattr(importlib.import_module(modules[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
