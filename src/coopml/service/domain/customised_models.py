"""A party's customised models: downloading one under the market's release policy,
and predictions under the market's quota.

Only the party a model was trained for may use it. A download is released or refused
by :mod:`coopml.service.domain.release` (either way audited); a prediction request is
checked against the quota before predicting and counted under a lock afterwards
(audited with its number of rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml._serialization import to_jsonable
from coopml.service.artifacts import cached_model, load_model
from coopml.service.context import ServiceContext, record_audit
from coopml.service.domain import release
from coopml.service.domain.errors import Conflict, Forbidden, Invalid, NotFound, Throttled
from coopml.service.domain.parties import Principal, require_party
from coopml.service.domain.rounds import visible_round
from coopml.service.storage.models import Market, ModelArtifact

__all__ = ["download_model", "own_model", "predict"]


def own_model(s: Session, principal: Principal, round_id: str, action: str) -> ModelArtifact:
    """The caller's model of a completed round (parties only: models belong to the party
    they were trained for)."""
    rnd = visible_round(s, principal, round_id)
    require_party(principal, f"{action} (models belong to the party they were trained for)")
    if rnd.status != "completed":
        raise Conflict(f"round {rnd.id} is {rnd.status}; no models yet", code="round_not_settled")
    artifact = s.scalar(
        select(ModelArtifact).where(
            ModelArtifact.round_id == rnd.id, ModelArtifact.party_id == principal.party_id
        )
    )
    if artifact is None:
        raise NotFound(f"round {rnd.id} trained no model for this party")
    return artifact


def _market(s: Session, principal: Principal) -> Market:
    market = s.get(Market, principal.market_id)
    assert market is not None
    return market


def _audit(s: Session, principal: Principal, action: str, artifact: ModelArtifact) -> Any:
    return record_audit(
        s,
        principal.actor,
        action,
        "model",
        artifact.id,
        market_id=principal.market_id,
        party_id=principal.party_id,
    )


def download_model(ctx: ServiceContext, s: Session, principal: Principal, round_id: str) -> bytes:
    """The skops bytes of the caller's model, when the market's release policy releases
    it (``Forbidden``, code ``model_not_released``, naming the policy and the reason
    otherwise); audited and committed either way."""
    artifact = own_model(s, principal, round_id, "download models")
    try:
        release.require_release(_market(s, principal), artifact)
    except release.ReleaseRefused as exc:
        _audit(s, principal, "model_download_refused", artifact)
        s.commit()
        raise Forbidden(str(exc), code="model_not_released") from None
    _audit(s, principal, "model_downloaded", artifact)
    s.commit()
    return ctx.blobs.get(artifact.blob)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _throttled(exc: release.QuotaExceeded) -> Throttled:
    return Throttled(str(exc), retry_after=exc.retry_after)


def predict(
    ctx: ServiceContext,
    s: Session,
    principal: Principal,
    round_id: str,
    rows: Sequence[Sequence[float]],
) -> list[Any]:
    """Predictions of the caller's model for ``rows`` (features in the order of the
    round's ``config.features``), counted against the market's quota (``Throttled``
    with ``retry_after`` when it is used up for now; ``Invalid`` for a request larger
    than the whole quota or rows the model cannot use); audited and committed."""
    artifact = own_model(s, principal, round_id, "query models")
    widths = {len(r) for r in rows}
    if widths != {artifact.n_features}:
        bad = next(i for i, r in enumerate(rows) if len(r) != artifact.n_features)
        raise Invalid(
            f"rows: every row must have {artifact.n_features} features; row {bad} has "
            f"{len(rows[bad])}"
        )
    market = _market(s, principal)
    n_rows = len(rows)
    try:  # refuse early, before predicting; enforced again below, under a lock
        release.check_predict_quota(s, market, artifact, n_rows)
    except release.RequestOverQuota as exc:
        raise Invalid(str(exc)) from None
    except release.QuotaExceeded as exc:
        raise _throttled(exc) from None
    model = cached_model(artifact.blob, lambda: load_model(ctx.blobs.get(artifact.blob)))
    X = np.asarray(rows, dtype=np.float64)
    try:
        with np.errstate(all="ignore"):
            raw = np.asarray(model.predict(X))
    except (ValueError, FloatingPointError, OverflowError) as exc:
        raise Invalid(f"rows: the model cannot use them: {exc}") from None
    predictions = [_finite_or_none(v) for v in to_jsonable(raw)]
    entry = _audit(s, principal, "model_queried", artifact)
    assert principal.party_id is not None
    try:
        release.record_prediction(
            s, market, artifact, principal.party_id, n_rows, getattr(entry, "id", None)
        )
    except release.QuotaExceeded as exc:
        s.rollback()
        raise _throttled(exc) from None
    s.commit()
    return predictions
