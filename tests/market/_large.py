"""What the large-market tests share: the two datasets' module fixtures and the stored
sample's encoding (zlib-compressed, base64 masks and float64 values, their SHA-256),
undone and redone by hand to tamper with a record (not with the code under test)."""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from coopml.data import load_dataset, train_validation_split


@pytest.fixture(scope="module")
def cancer() -> tuple[NDArray[Any], NDArray[Any], tuple[NDArray[Any], NDArray[Any]]]:
    ds = load_dataset("breast_cancer")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    return X, y, (X_val, y_val)


@pytest.fixture(scope="module")
def digits() -> tuple[NDArray[Any], NDArray[Any], tuple[NDArray[Any], NDArray[Any]]]:
    ds = load_dataset("digits")
    X, X_val, y, y_val = train_validation_split(ds.X, ds.y, random_state=0)
    return X, y, (X_val, y_val)


def sample_arrays(sample: dict[str, Any]) -> tuple[bytes, NDArray[np.float64]]:
    """A record's sample: its masks (raw bytes) and a writable copy of its values."""
    masks = zlib.decompress(base64.b64decode(sample["masks"]))
    values = np.frombuffer(zlib.decompress(base64.b64decode(sample["values"])), "<f8").copy()
    return masks, values


def store_sample(sample: dict[str, Any], masks: bytes, values: NDArray[np.float64]) -> None:
    """Write ``masks`` and ``values`` back into ``sample`` with a matching hash."""
    raw_values = values.astype("<f8").tobytes()
    sample["masks"] = base64.b64encode(zlib.compress(masks)).decode()
    sample["values"] = base64.b64encode(zlib.compress(raw_values)).decode()
    sample["sha256"] = hashlib.sha256(masks + raw_values).hexdigest()
