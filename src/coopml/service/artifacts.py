"""Models as skops files: never pickle, never load a type outside an allow-list.

The worker writes each party's customised model with :func:`dump_model`; the API
reads it back with :func:`load_model`, which refuses any type that is not part of
scikit-learn or NumPy (skops reports such types instead of executing them).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import skops.io as sio

__all__ = ["cached_model", "dump_model", "load_model"]

_ALLOWED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")
_ALLOWED_EXACT = {"builtins.slice", "builtins.bytes", "builtins.bytearray", "builtins.set"}


def dump_model(estimator: Any) -> bytes:
    """The skops bytes of a fitted estimator."""
    return sio.dumps(estimator)


def load_model(data: bytes) -> Any:
    """A fitted estimator from skops bytes, allowing scikit-learn and NumPy types only."""
    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not (t.startswith(_ALLOWED_PREFIXES) or t in _ALLOWED_EXACT)]
    if refused:
        raise ValueError(f"model file holds types outside the allow-list: {refused}")
    return sio.loads(data, trusted=untrusted)


_cache: OrderedDict[str, Any] = OrderedDict()
_lock = threading.Lock()


def cached_model(address: str, load: Any, size: int = 32) -> Any:
    """``load()``'s model, cached by blob address (LRU of ``size`` models)."""
    with _lock:
        if address in _cache:
            _cache.move_to_end(address)
            return _cache[address]
    model = load()
    with _lock:
        _cache[address] = model
        while len(_cache) > size:
            _cache.popitem(last=False)
    return model
