"""``/markets/{market_id}/datasets`` (upload, list) and ``/datasets/{dataset_id}`` (read,
content, delete).

An upload is read from the request stream straight into memory (the size limit
enforced while reading: 413 as soon as the file exceeds it; never a plaintext temporary
file), validated in chunks and stored encrypted only when every rule of
:mod:`coopml.service.domain.datasets` holds: a rejected upload writes nothing. At most
``Settings.max_concurrent_uploads`` uploads are received at once. The routes only
translate HTTP to those domain calls and the domain's errors back to HTTP.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from coopml.service.api.deps import Caller, Ctx, Db, Principal, require_party, valid_id
from coopml.service.api.errors import ApiError, api_error
from coopml.service.api.multipart import FileTooLarge, MalformedForm, read_form
from coopml.service.api.routes._common import Limit, Offset, page
from coopml.service.api.schemas import DatasetOut, Page
from coopml.service.domain import datasets as domain
from coopml.service.domain.markets import visible_market

router = APIRouter(tags=["datasets"])

#: Room for the multipart framing and the small form fields around the file.
FORM_OVERHEAD = 64 * 1024
#: How long an upload waits for a free slot before 429.
SLOT_WAIT_SECONDS = 10.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "role", "target"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "role": {"type": "string", "enum": ["train", "validation"]},
                        "target": {"type": "string", "minLength": 1, "maxLength": 200},
                        "name": {"type": "string", "maxLength": 200},
                    },
                }
            }
        },
    }
}


class _Slots:
    """Uploads being received now (per process), at most ``size``."""

    def __init__(self, size: int) -> None:
        self.size, self.used = size, 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.used >= self.size:
                return False
            self.used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.used -= 1


_SLOTS_LOCK = threading.Lock()


@asynccontextmanager
async def _upload_slot(request: Request, size: int) -> AsyncIterator[None]:
    state = request.app.state
    with _SLOTS_LOCK:
        slots = getattr(state, "upload_slots", None)
        if slots is None:
            slots = state.upload_slots = _Slots(size)
    deadline = time.monotonic() + SLOT_WAIT_SECONDS
    while not slots.try_acquire():
        if time.monotonic() >= deadline:
            raise ApiError(
                429,
                "too_many_uploads",
                f"the service is receiving {slots.size} uploads already; retry shortly",
                {"Retry-After": "2"},
            )
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        slots.release()


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


def _authorise_upload(
    ctx: Any, request: Request, market_id: str, declared: int | None, replaces: str | None
) -> Principal:
    """The calling party, after the checks that need no body (quotas included)."""
    from coopml.service.api.deps import require_principal

    with ctx.db.sessions() as s:
        caller = require_principal(s, request)
        require_party(caller, "upload datasets")
        market = visible_market(s, caller, market_id)
        if replaces is not None and not valid_id(replaces):
            raise ApiError(404, "not_found", f"dataset {replaces!r} not found")
        try:
            domain.precheck_upload(
                s,
                market,
                str(caller.party_id),
                ctx.settings,
                declared_bytes=declared,
                replaces=replaces,
            )
        except domain.DatasetRuleError as exc:
            raise api_error(exc) from None
        return caller


async def _limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + FORM_OVERHEAD:
            raise FileTooLarge(f"the body is over {limit + FORM_OVERHEAD} bytes")
        yield chunk


def _field(form: Any, name: str, *, required: bool = True, max_length: int = 200) -> str | None:
    if name in form.files:
        raise ApiError(422, "validation_error", f"form field '{name}' must be text, not a file")
    value = form.fields.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(422, "validation_error", f"form field '{name}' is required")
        return None
    if len(value) > max_length or _CONTROL.search(value):
        raise ApiError(
            422,
            "validation_error",
            f"form field '{name}' must be at most {max_length} printable characters; "
            f"received {value[:40]!r}",
        )
    return value


@router.post(
    "/markets/{market_id}/datasets",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=UPLOAD_SCHEMA,
)
async def upload_dataset(
    market_id: str,
    request: Request,
    ctx: Ctx,
    replaces: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Replace this dataset of yours: the new one is stored and the old "
            "one deleted in one step.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Upload a training or validation dataset (party): multipart ``file`` (CSV or
    Parquet), ``role`` (train|validation), ``target`` (column), optional ``name``.

    The file must match the market's schema; an identical file already uploaded with
    the same role is refused (409); the party's dataset and byte quotas apply (429)."""
    limit = ctx.settings.max_upload_bytes
    declared = _declared_length(request)
    caller = await anyio.to_thread.run_sync(
        _authorise_upload, ctx, request, market_id, declared, replaces
    )
    if declared is not None and declared > limit + FORM_OVERHEAD:
        raise ApiError(
            413,
            "payload_too_large",
            f"file: uploads are limited to {limit} bytes; the request declares {declared} bytes",
        )
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "body: send the dataset as multipart/form-data with fields 'file', 'role' and "
            f"'target'; received content type {ctype or 'none'!r}",
        )
    async with _upload_slot(request, ctx.settings.max_concurrent_uploads):
        try:
            form = await read_form(
                _limited(request, limit),
                ctype,
                max_file_bytes=limit,
                expected_bytes=declared,
            )
        except FileTooLarge:
            raise ApiError(
                413, "payload_too_large", f"file: uploads are limited to {limit} bytes"
            ) from None
        except MalformedForm as exc:
            raise ApiError(
                422, "malformed_body", f"body: not a valid multipart form: {exc}"
            ) from None
        received = form.files.get("file")
        if received is None:
            raise ApiError(422, "validation_error", "form field 'file' (a file) is required")
        role = _field(form, "role")
        if role not in ("train", "validation"):
            raise ApiError(
                422,
                "validation_error",
                f"form field 'role' must be 'train' or 'validation'; received {role!r}",
            )
        target = _field(form, "target")
        assert target is not None
        upload = domain.Upload(
            received.data,
            received.filename,
            role,
            target,
            _field(form, "name", required=False),
            replaces,
        )
        del form, received
        return await anyio.to_thread.run_sync(_store, ctx, caller, market_id, upload)


def _store(ctx: Any, caller: Principal, market_id: str, upload: domain.Upload) -> dict[str, Any]:
    try:
        ds = domain.store_upload(ctx, market_id, str(caller.party_id), caller.actor, upload)
    except domain.DatasetRuleError as exc:
        raise api_error(exc) from None
    return domain.dataset_view(ds)


@router.get("/markets/{market_id}/datasets", response_model=Page[DatasetOut])
def list_datasets(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Datasets of a market: all (operator) or the caller's own (party)."""
    market = visible_market(s, caller, market_id)
    rows, total = domain.list_datasets(s, caller, market, limit=limit, offset=offset)
    return page([domain.dataset_view(d) for d in rows], total, limit, offset)


@router.get("/datasets/{dataset_id}", response_model=DatasetOut)
def read_dataset(dataset_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """A dataset's metadata (operator, or the owner party; audited)."""
    return domain.dataset_view(domain.read_dataset(s, caller, dataset_id))


@router.delete("/datasets/{dataset_id}", status_code=204, response_class=Response)
def delete_dataset(dataset_id: str, caller: Caller, ctx: Ctx) -> Response:
    """Delete a dataset (its owner party or the operator; audited). Its encrypted blob
    is erased unless another dataset references the same content. 409 while a queued or
    running round reads it."""
    if not valid_id(dataset_id):
        raise ApiError(404, "not_found", f"dataset {dataset_id!r} not found")
    try:
        domain.delete_dataset(
            ctx,
            dataset_id,
            actor=caller.actor,
            party_id=None if caller.is_operator else caller.party_id,
        )
    except domain.DatasetRuleError as exc:
        raise api_error(exc) from None
    return Response(status_code=204)


@router.get(
    "/datasets/{dataset_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def dataset_content(dataset_id: str, caller: Caller, s: Db, ctx: Ctx) -> Response:
    """The original bytes of a dataset (its owner party only; audited)."""
    ds, data = domain.dataset_content(ctx, s, caller, dataset_id)
    suffix = "parquet" if ds.format == "parquet" else "csv"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{ds.id}.{suffix}"'},
    )
