"""``/markets/{market_id}/datasets`` (upload, list) and ``/datasets/{dataset_id}``.

Uploads are read from the request stream into a temporary file with the size limit
enforced while reading (413 as soon as the body exceeds it), parsed and validated
(CSV or Parquet), and stored encrypted only when valid: a rejected upload writes
nothing.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select, update
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartParser
from starlette.types import Message

from coopml.service.api.deps import Caller, Ctx, Db, require_party
from coopml.service.api.errors import ApiError
from coopml.service.api.routes._common import (
    Limit,
    Offset,
    dataset_out,
    get_dataset,
    get_market,
    page,
    paginate,
)
from coopml.service.api.schemas import DatasetOut, Page
from coopml.service.context import record_audit
from coopml.service.storage.models import Dataset, Market
from coopml.service.tables import TableError, parse_table

router = APIRouter(tags=["datasets"])

#: Room for the multipart framing and the small form fields around the file.
FORM_OVERHEAD = 64 * 1024
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


class _TooLarge(Exception):
    pass


async def _read_form(request: Request, limit: int) -> Any:
    """The multipart form, reading at most ``limit + FORM_OVERHEAD`` body bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
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
    received = 0
    receive = request.receive

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit + FORM_OVERHEAD:
                raise _TooLarge
        return message

    limited = Request(request.scope, counting_receive)
    parser = MultiPartParser(limited.headers, limited.stream(), max_files=1, max_fields=8)
    # Keep the file in memory (it is read whole below anyway): a plaintext upload never
    # touches the disk; only its encrypted blob is written.
    parser.spool_max_size = limit + FORM_OVERHEAD
    try:
        return await parser.parse()
    except _TooLarge:
        raise ApiError(
            413, "payload_too_large", f"file: uploads are limited to {limit} bytes"
        ) from None
    except Exception as exc:  # malformed multipart bodies
        detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
        raise ApiError(
            422, "malformed_body", f"body: not a valid multipart form: {detail}"
        ) from None


def _field(form: Any, name: str, *, required: bool = True, max_length: int = 200) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise ApiError(422, "validation_error", f"form field '{name}' is required")
        return None
    if not isinstance(value, str):
        raise ApiError(422, "validation_error", f"form field '{name}' must be text, not a file")
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
async def upload_dataset(market_id: str, request: Request, ctx: Ctx) -> dict[str, Any]:
    """Upload a training or validation dataset (party): multipart ``file`` (CSV or
    Parquet), ``role`` (train|validation), ``target`` (column), optional ``name``."""
    await anyio.to_thread.run_sync(_authorise_upload, ctx, request, market_id)
    return await _upload(market_id, request, ctx)


def _authorise_upload(ctx: Any, request: Request, market_id: str) -> None:
    from coopml.service.api.deps import require_principal

    with ctx.db.sessions() as s:
        caller = require_principal(s, request)
        require_party(caller, "upload datasets")
        get_market(s, caller, market_id)
        request.state.caller = caller


async def _upload(market_id: str, request: Request, ctx: Any) -> dict[str, Any]:
    limit = ctx.settings.max_upload_bytes
    form = await _read_form(request, limit)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "validation_error", "form field 'file' (a file) is required")
        role = _field(form, "role")
        if role not in ("train", "validation"):
            raise ApiError(
                422,
                "validation_error",
                f"form field 'role' must be 'train' or 'validation'; received {role!r}",
            )
        target = _field(form, "target")
        name = _field(form, "name", required=False) or (upload.filename or "dataset")[:200]
        if _CONTROL.search(name):
            name = "dataset"
        if upload.size is not None and upload.size > limit:
            raise ApiError(
                413,
                "payload_too_large",
                f"file: uploads are limited to {limit} bytes; received {upload.size}",
            )
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise ApiError(413, "payload_too_large", f"file: uploads are limited to {limit} bytes")
    finally:
        await form.close()
    assert target is not None
    return await anyio.to_thread.run_sync(
        _store,
        ctx,
        request.state.caller,
        market_id,
        data,
        upload.filename or "",
        role,
        target,
        name,
    )


def _store(
    ctx: Any,
    caller: Any,
    market_id: str,
    data: bytes,
    filename: str,
    role: str,
    target: str,
    name: str,
) -> dict[str, Any]:
    with ctx.db.sessions() as s:
        market = get_market(s, caller, market_id)
        try:
            table = parse_table(data, filename, target, market.task)
        except TableError as exc:
            raise ApiError(422, "invalid_dataset", str(exc)) from None
        # The first upload fixes the market's schema: take the market's write lock (a row
        # lock on PostgreSQL, the database's on SQLite) before looking, so concurrent first
        # uploads are serialised and cannot each fix a different schema.
        s.execute(update(Market).where(Market.id == market.id).values(id=Market.id))
        first = s.scalars(
            select(Dataset).where(Dataset.market_id == market.id).order_by(Dataset.created_at)
        ).first()
        if first is not None:
            expected = [c for c in first.columns if c != first.target]
            if sorted(expected) != sorted(table.features) or first.target != target:
                raise ApiError(
                    422,
                    "schema_mismatch",
                    "file: every dataset of this market must have the feature columns "
                    f"{expected[:20]} and target {first.target!r} (fixed by the first upload); "
                    f"received features {table.features[:20]} and target {target!r}",
                )
        address = ctx.blobs.put(data)
        ds = Dataset(
            market_id=market.id,
            party_id=caller.party_id,
            name=name,
            role=role,
            format=table.format,
            n_rows=table.n_rows,
            n_features=len(table.features),
            columns=[str(c) for c in table.frame.columns],
            target=target,
            sha256=hashlib.sha256(data).hexdigest(),
            blob=address,
            size_bytes=len(data),
        )
        s.add(ds)
        s.flush()
        record_audit(
            s,
            caller.actor,
            "dataset_uploaded",
            "dataset",
            ds.id,
            market_id=market.id,
            party_id=caller.party_id,
        )
        s.commit()
        return dataset_out(ds)


@router.get("/markets/{market_id}/datasets", response_model=Page[DatasetOut])
def list_datasets(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Datasets of a market: all (operator) or the caller's own (party)."""
    market = get_market(s, caller, market_id)
    query = (
        select(Dataset)
        .where(Dataset.market_id == market.id)
        .order_by(Dataset.created_at, Dataset.id)
    )
    if not caller.is_operator:
        query = query.where(Dataset.party_id == caller.party_id)
    rows, total = paginate(s, query, limit, offset)
    return page([dataset_out(d) for d in rows], total, limit, offset)


@router.get("/datasets/{dataset_id}", response_model=DatasetOut)
def read_dataset(dataset_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """A dataset's metadata (operator, or the owner party; audited)."""
    ds = get_dataset(s, caller, dataset_id)
    record_audit(
        s,
        caller.actor,
        "dataset_read",
        "dataset",
        ds.id,
        market_id=ds.market_id,
        party_id=ds.party_id,
    )
    s.commit()
    return dataset_out(ds)


@router.get(
    "/datasets/{dataset_id}/content",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def dataset_content(dataset_id: str, caller: Caller, s: Db, ctx: Ctx) -> Response:
    """The original bytes of a dataset (its owner party only; audited)."""
    ds = get_dataset(s, caller, dataset_id)
    require_party(caller, "download dataset contents (only the owner party can)")
    record_audit(
        s,
        caller.actor,
        "dataset_downloaded",
        "dataset",
        ds.id,
        market_id=ds.market_id,
        party_id=ds.party_id,
    )
    s.commit()
    data = ctx.blobs.get(ds.blob)
    suffix = "parquet" if ds.format == "parquet" else "csv"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{ds.id}.{suffix}"'},
    )
