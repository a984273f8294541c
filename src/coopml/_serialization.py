"""Turning results into JSON-serialisable Python objects."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["to_jsonable"]


def to_jsonable(obj: Any) -> Any:
    """Convert NumPy arrays and scalars (also inside dicts, lists and tuples) to Python.

    >>> to_jsonable({"a": np.arange(2), "b": (np.float64(1.5),)})
    {'a': [0, 1], 'b': [1.5]}
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
