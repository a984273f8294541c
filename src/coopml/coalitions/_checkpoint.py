"""Checkpoints of interrupted computations: partial value tables and estimator states.

A checkpoint is one ``.partial.npz`` file in the ``cache_dir`` of a computation, named
by a key that covers everything the result depends on (a utility's fingerprint, the
estimator, its parameters and its seed), so a changed job never resumes a stale state.
Files hold NumPy arrays and one JSON document (no pickles), are written atomically (a
temporary file renamed over the old one), and are removed when the computation ends.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["atomic_write", "load_checkpoint", "partial_path", "save_checkpoint", "state_key"]

#: Seconds between two checkpoints of a running computation (one is also written when
#: it is interrupted by an exception or Ctrl-C).
CHECKPOINT_SECONDS = 10.0

_META = "__meta__"


def partial_path(cache_dir: str | Path, key: str) -> Path:
    """The checkpoint file of ``key`` in ``cache_dir``.

    >>> partial_path("cache", "abc").name
    'abc.partial.npz'
    """
    return Path(cache_dir) / f"{key}.partial.npz"


def state_key(spec: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON-serialisable description of a computation.

    >>> state_key({"a": 1}) == state_key({"a": 1}) != state_key({"a": 2})
    True
    """
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through ``write(file)`` so that readers see the old or the new file,
    never a truncated one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: Path, arrays: Mapping[str, NDArray[Any]], meta: Mapping[str, Any]
) -> None:
    """Store ``arrays`` and the JSON document ``meta`` in ``path``, atomically."""
    payload: dict[str, Any] = {**arrays, _META: np.array(json.dumps(meta, default=_plain))}
    atomic_write(path, lambda fh: np.savez(fh, **payload))


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as plain Python values for JSON."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint")


def load_checkpoint(path: Path) -> tuple[dict[str, NDArray[Any]], dict[str, Any]] | None:
    """The arrays and JSON document of ``path``; ``None`` if there is no usable file.

    A file that cannot be read is reported (a warning) and ignored: the computation
    starts afresh, which costs time but never gives a wrong result.
    """
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != _META}
            meta = json.loads(str(data[_META]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring unreadable checkpoint {path}: {exc}", stacklevel=3)
        return None
    return arrays, meta
