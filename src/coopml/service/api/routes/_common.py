"""Shared pieces of the route modules: lookups that hide other parties' items,
pagination and serialisers."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Query
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from coopml.service.api.deps import Principal, valid_id
from coopml.service.api.errors import ApiError
from coopml.service.domain.rounds import Liveness
from coopml.service.storage.models import Dataset, Market, Party, Round, utc

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="Page size (1..500).")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip.")]


def not_found(kind: str, item_id: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} {item_id!r} not found")


def paginate(s: Session, query: Select[Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """The rows of one page and the total count."""
    total = s.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(s.scalars(query.limit(limit).offset(offset)))
    return rows, int(total)


def page(items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def get_market(s: Session, principal: Principal, market_id: str) -> Market:
    """The market, if the caller may see it (the operator: any; a party: its own)."""
    market = s.get(Market, market_id) if valid_id(market_id) else None
    if market is None or (not principal.is_operator and principal.market_id != market.id):
        raise not_found("market", market_id)
    return market


def get_round(s: Session, principal: Principal, round_id: str) -> Round:
    """The round, if the caller may see it (parties: rounds of their market)."""
    rnd = s.get(Round, round_id) if valid_id(round_id) else None
    if rnd is None or (not principal.is_operator and principal.market_id != rnd.market_id):
        raise not_found("round", round_id)
    return rnd


def get_dataset(s: Session, principal: Principal, dataset_id: str) -> Dataset:
    """The dataset, if the caller may see it (parties: their own only)."""
    ds = s.get(Dataset, dataset_id) if valid_id(dataset_id) else None
    if ds is None or (not principal.is_operator and principal.party_id != ds.party_id):
        raise not_found("dataset", dataset_id)
    return ds


def market_out(s: Session, m: Market) -> dict[str, Any]:
    n = s.scalar(select(func.count()).select_from(Party).where(Party.market_id == m.id)) or 0
    return {
        "id": m.id,
        "name": m.name,
        "task": m.task,
        "description": m.description,
        "created_at": utc(m.created_at),
        "n_parties": int(n),
        "release_policy": m.release_policy,
        "predict_quota": int(m.predict_quota),
        "predict_window_seconds": int(m.predict_window_seconds),
        "schema": m.data_schema,
        "quotas": {
            "max_datasets_per_party": m.max_datasets_per_party,
            "max_bytes_per_party": m.max_bytes_per_party,
        },
    }


def party_out(p: Party) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "market_id": p.market_id, "created_at": utc(p.created_at)}


def dataset_out(d: Dataset) -> dict[str, Any]:
    return {
        "id": d.id,
        "party_id": d.party_id,
        "market_id": d.market_id,
        "name": d.name,
        "role": d.role,
        "format": d.format,
        "n_rows": d.n_rows,
        "n_features": d.n_features,
        "columns": list(d.columns),
        "target": d.target,
        "sha256": d.sha256,
        "size_bytes": d.size_bytes,
        "created_at": utc(d.created_at),
    }


def round_out(
    r: Round, caller: Principal | None = None, live: Liveness | None = None
) -> dict[str, Any]:
    """A round as the API shows it; to a party (``caller``) without other parties' names
    (``replication_party``) or failure details. ``live``: its worker's liveness (from
    :func:`coopml.service.domain.rounds.liveness`); a running round whose worker's lease
    expired shows as ``stalled`` with the time since the last heartbeat."""
    config = {k: v for k, v in dict(r.config).items() if not k.startswith("_")}
    # The market's feature columns in the order its models expect (the schema every
    # party uploads; no party's data): predict rows must follow it.
    features = (dict(r.config).get("_inputs") or {}).get("features")
    if features is not None:
        config["features"] = [str(c) for c in features]
    message = r.message
    if caller is not None and not caller.is_operator:
        if config.get("replication_party") not in (None, caller.name):
            config["replication_party"] = "(another party)"
        if r.status == "failed":
            # a party whose own dataset made the round fail is told which and why
            failure = r.failure or {}
            if failure.get("party_id") == caller.party_id and failure.get("message"):
                message = str(failure["message"])
            else:
                message = "failed (the operator sees the details)"
    status = r.status
    if live is not None and live.stalled and status == "running":
        status, message = "stalled", live.describe()
    return {
        "id": r.id,
        "market_id": r.market_id,
        "status": status,
        "progress": float(r.progress),
        "message": message,
        "created_at": utc(r.created_at),
        "started_at": utc(r.started_at),
        "finished_at": utc(r.finished_at),
        "heartbeat_at": None if live is None else live.heartbeat_at,
        "seconds_since_heartbeat": None if live is None else live.seconds_since_heartbeat,
        "config": config,
    }
