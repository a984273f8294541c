"""Rounds: open, list and read them; settlements, audits, ledgers, models, predictions.

The rules and queries live in :mod:`coopml.service.domain.rounds` and
:mod:`coopml.service.domain.customised_models`; these handlers translate HTTP.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from coopml.service.api.deps import Caller, Ctx, Db
from coopml.service.api.routes._common import Limit, Offset, page
from coopml.service.api.schemas import (
    AuditOut,
    LedgerEntryOut,
    Page,
    PredictIn,
    PredictOut,
    RoundIn,
    RoundOut,
    SettlementOut,
)
from coopml.service.domain import customised_models, rounds

router = APIRouter(tags=["rounds"])


@router.post("/markets/{market_id}/rounds", status_code=202, response_model=RoundOut)
def open_round(market_id: str, body: RoundIn, caller: Caller, s: Db) -> dict[str, Any]:
    """Open a round (operator): validate, snapshot the data and queue the job."""
    rnd = rounds.open_round(s, caller, market_id, body.learner.name, body.learner.params, body)
    return rounds.round_view(rnd, caller)


@router.get("/markets/{market_id}/rounds", response_model=Page[RoundOut])
def list_rounds(
    market_id: str, caller: Caller, s: Db, limit: Limit = 50, offset: Offset = 0
) -> dict[str, Any]:
    """Rounds of a market, newest first."""
    items, total = rounds.list_rounds(s, caller, market_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get("/rounds/{round_id}", response_model=RoundOut)
def read_round(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """A round's status and progress (operator; parties of its market)."""
    return rounds.read_round(s, caller, round_id)


@router.get("/rounds/{round_id}/settlement", response_model=SettlementOut)
def read_settlement(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """The settlement: every line (operator) or the caller's own line (party)."""
    return rounds.settlement_view(s, caller, round_id)


@router.get("/rounds/{round_id}/audit", response_model=AuditOut)
def read_audit(round_id: str, caller: Caller, s: Db) -> dict[str, Any]:
    """The round's audit (operator): balance (recomputed from the ledger), verification,
    duplicate-data report and, when requested, the replication audit."""
    return rounds.audit_view(s, caller, round_id)


@router.get("/rounds/{round_id}/ledger", response_model=Page[LedgerEntryOut])
def read_ledger(
    round_id: str, caller: Caller, s: Db, limit: Limit = 500, offset: Offset = 0
) -> dict[str, Any]:
    """The round's append-only ledger (operator)."""
    items, total = rounds.round_ledger(s, caller, round_id, limit=limit, offset=offset)
    return page(items, total, limit, offset)


@router.get(
    "/rounds/{round_id}/model",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_model(round_id: str, caller: Caller, s: Db, ctx: Ctx) -> Response:
    """The caller's customised model as a skops file (party; audited), when the market's
    release policy releases it (403 naming the policy and the reason otherwise). Load it
    with ``skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))`` after
    reviewing the listed types."""
    data = customised_models.download_model(ctx, s, caller, round_id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="model-{round_id}.skops"'},
    )


@router.post("/rounds/{round_id}/predict", response_model=PredictOut)
def predict(round_id: str, body: PredictIn, caller: Caller, s: Db, ctx: Ctx) -> dict[str, Any]:
    """Predictions of the caller's customised model (party; audited, with the number of
    rows); each row lists the features in the order of the round's ``config.features``.
    At most the market's ``predict_quota`` rows per party and round within
    ``predict_window_seconds``: beyond, 429 with ``Retry-After``."""
    return {"predictions": customised_models.predict(ctx, s, caller, round_id, body.rows)}
