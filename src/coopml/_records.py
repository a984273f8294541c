"""The base of the records that cross a boundary (a JSON file, the service's database).

A record is a pydantic model: it defines the JSON Schema of what coopml writes and
reads (``Model.model_json_schema()``), validates what is read, and turns NumPy values
into JSON ones when it is written. Reading errors become one ``ValueError`` that names
each field path, what is allowed and what was received (:func:`validation_message`).
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = ["Record", "dump_record", "read_record", "validation_message"]

R = TypeVar("R", bound="Record")

#: Errors listed in a message before "and N more".
MAX_LISTED = 3


class Record(BaseModel):
    """A JSON record: no unknown keys, non-finite floats kept as the JSON constants
    ``NaN``/``Infinity`` that :func:`json.dumps` writes (as the records always had)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, ser_json_inf_nan="constants", protected_namespaces=()
    )


def _plain(value: Any) -> Any:
    """Serialisation fallback for what pydantic does not know: NumPy arrays and scalars
    become lists and numbers, a callable (a scorer in a provenance block) its qualified
    name, anything else its ``repr`` (as the service has always stored such values)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


def dump_record(record: Record) -> dict[str, Any]:
    """The JSON form of ``record``: keys it was given only (so an optional block that was
    absent stays absent), NumPy arrays and scalars as lists and numbers, callables as
    their qualified names.

    Examples
    --------
    >>> class Point(Record):
    ...     x: float
    ...     extra: dict[str, Any] = {}
    >>> dump_record(Point.model_validate({"x": 1, "extra": {"v": np.arange(2)}}))
    {'x': 1.0, 'extra': {'v': [0, 1]}}
    """
    return record.model_dump(mode="json", exclude_unset=True, fallback=_plain)


def _path(loc: tuple[int | str, ...], data: Any, missing: bool) -> str:
    """The field path of an error in ``data``: the keys and indices of ``loc`` found in
    the data, and the missing key that ends it (pydantic also names each member of a
    union it tried: those are dropped)."""
    if data is None:
        return ".".join(str(key) for key in loc)
    parts, at = [], data
    for k, key in enumerate(loc):
        if isinstance(at, dict) and key in at:
            at = at[key]
        elif isinstance(at, list) and isinstance(key, int) and 0 <= key < len(at):
            at = at[key]
        elif not (missing and k == len(loc) - 1):
            continue
        parts.append(str(key))
    return ".".join(parts)


def validation_message(exc: ValidationError, data: Any = None) -> str:
    """The errors of validating ``data`` (at most :data:`MAX_LISTED` fields): each
    field path, what is allowed and what was received.

    Examples
    --------
    >>> from typing import Literal
    >>> class Point(Record):
    ...     x: float
    ...     label: Literal["a", "b"] | int = "a"
    >>> data = {"x": "near", "label": "c"}
    >>> try:
    ...     Point.model_validate(data)
    ... except ValidationError as exc:
    ...     print(validation_message(exc, data))
    field 'x': Input should be a valid number, unable to parse string as a number; got \
'near'; field 'label': Input should be 'a' or 'b', or Input should be a valid integer, \
unable to parse string as an integer; got 'c'
    """
    by_path: dict[str, list[str]] = {}
    received: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = _path(tuple(error["loc"]), data, error["type"] == "missing")
        message = error["msg"].removeprefix("Value error, ")
        if message not in by_path.setdefault(path, []):
            by_path[path].append(message)
        if path and path not in received:
            got = "no value" if error["type"] == "missing" else repr(error.get("input"))
            received[path] = got if len(got) <= 80 else got[:77] + "..."
    parts = [
        f"field '{path}': {', or '.join(messages)}; got {received[path]}"
        if path
        else "; ".join(messages)
        for path, messages in list(by_path.items())[:MAX_LISTED]
    ]
    if len(by_path) > MAX_LISTED:
        parts.append(f"and {len(by_path) - MAX_LISTED} more")
    return "; ".join(parts)


def read_record(model: type[R], data: Any, what: str) -> R:
    """``data`` validated as ``model`` in pydantic's strict mode; a ValueError
    ``"not a coopml {what}: ..."`` naming the fields otherwise.

    Strict: a boolean is not a number and a string is neither a number nor a boolean
    (``"price": true`` or ``"values": ["1"]`` are refused, not coerced); an integer is
    still read as a float, and ``NaN``/``Infinity`` are read where a float field allows
    them (as :func:`json.dumps` writes them).

    Examples
    --------
    >>> class Price(Record):
    ...     price: float
    >>> read_record(Price, {"price": 2}, "price").price
    2.0
    >>> read_record(Price, {"price": True}, "price")
    Traceback (most recent call last):
    ...
    ValueError: not a coopml price: field 'price': Input should be a valid number; got True
    """
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ValueError(f"not a coopml {what}: {validation_message(exc, data)}") from None
