"""Receiving a ``multipart/form-data`` upload into memory, once.

The file part is written straight into one ``bytearray`` (sized from ``Content-Length``
when the client sends it), so an upload of *n* bytes costs *n* bytes of memory to
receive, with no temporary file (the plaintext never touches the disk: only its
encrypted blob is written) and no second copy. Small text fields are kept as strings.
Limits (file size, number of files and fields, field size) are enforced while reading.

Parsing is done by ``python-multipart`` (the parser Starlette uses).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["FileTooLarge", "MalformedForm", "ReceivedFile", "ReceivedForm", "read_form"]

MAX_FIELD_BYTES = 64 * 1024


class MalformedForm(ValueError):
    """The body is not a usable multipart form."""


class FileTooLarge(ValueError):
    """The file part is over the limit."""


@dataclass
class ReceivedFile:
    """One file part: its form field, file name, content type and bytes."""

    field: str
    filename: str
    content_type: str
    data: bytearray


@dataclass
class ReceivedForm:
    """Text fields (first value of each name) and file parts (by field name)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, ReceivedFile] = field(default_factory=dict)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


async def read_form(
    stream: AsyncIterator[bytes],
    content_type: str,
    *,
    max_file_bytes: int,
    expected_bytes: int | None = None,
    max_files: int = 1,
    max_fields: int = 8,
) -> ReceivedForm:
    """Read a multipart body from ``stream``.

    ``expected_bytes`` (the request's ``Content-Length``) sizes the file's buffer up
    front; the buffer is trimmed to the file's length at the end (in place).

    Raises
    ------
    MalformedForm
        Not a multipart body (no boundary, bad framing, a part without a name, too many
        parts, a field over 64 KiB, or the body ends before the closing boundary).
    FileTooLarge
        The file part is longer than ``max_file_bytes``.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise MalformedForm("no boundary in the Content-Type header")
    form = ReceivedForm()
    header_name = bytearray()
    header_value = bytearray()
    headers: dict[bytes, bytes] = {}
    current: ReceivedFile | None = None
    text = bytearray()
    text_name = ""
    size = 0
    counts = {"files": 0, "fields": 0}
    ended = False

    def on_part_begin() -> None:
        nonlocal current, text_name, size
        headers.clear()
        current, text_name, size = None, "", 0
        text.clear()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        nonlocal current, text_name
        _, disposition = parse_options_header(headers.get(b"content-disposition", b""))
        if b"name" not in disposition:
            raise MalformedForm("a part has no name (Content-Disposition: form-data; name=...)")
        name = _decode(disposition[b"name"])
        if b"filename" in disposition:
            counts["files"] += 1
            if counts["files"] > max_files:
                raise MalformedForm(f"at most {max_files} file(s) may be sent")
            capacity = min(expected_bytes or 0, max_file_bytes + 1)
            current = ReceivedFile(
                name,
                _decode(disposition[b"filename"]),
                _decode(headers.get(b"content-type", b"")),
                bytearray(capacity),
            )
        else:
            counts["fields"] += 1
            if counts["fields"] > max_fields:
                raise MalformedForm(f"at most {max_fields} form fields may be sent")
            text_name = name

    def on_part_data(data: bytes, start: int, end: int) -> None:
        nonlocal size
        n = end - start
        if current is not None:
            if size + n > max_file_bytes:
                raise FileTooLarge(f"the file is over {max_file_bytes} bytes")
            current.data[size : size + n] = data[start:end]
            size += n
        else:
            if len(text) + n > MAX_FIELD_BYTES:
                raise MalformedForm(f"field {text_name!r} is over {MAX_FIELD_BYTES} bytes")
            text.extend(data[start:end])

    def on_part_end() -> None:
        if current is not None:
            del current.data[size:]  # trim the spare capacity, in place
            form.files.setdefault(current.field, current)
        else:
            form.fields.setdefault(text_name, _decode(bytes(text)))

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_end": on_end,
        },
    )
    try:
        async for chunk in stream:
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise MalformedForm(str(exc) or "invalid multipart framing") from None
    if not ended:
        raise MalformedForm("the body ended before the closing boundary")
    return form
