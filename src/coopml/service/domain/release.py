"""Model release policy and prediction quota of a market.

What a party may take away from a round besides its settlement line: the operator sets
both when creating the market; every party reads them on the market.

Release policy
    * ``query_only`` (the default): a party gets predictions of its customised model
      through the API and never the model file (``GET /rounds/{id}/model`` answers 403
      naming the policy).
    * ``aggregate_only``: the model file is released only when the release check found no
      training row of another party in the model's fitted state. The worker runs
      :func:`coopml.market.release.check_release` on each party's model when it stores
      the round's models (:func:`check_models`), against the training rows of every other
      party (the recipient's own training and validation rows are excluded), and records
      the verdict and its reason on the model (``releasable``, ``release_check``). kNN
      models (they store the rows), trees and forests grown to single-row leaves (a
      leaf's value is one row's label) are refused; linear models, ridge, naive Bayes and
      LDA are released. What the check cannot see is in :mod:`coopml.market.release`.
    * ``full``: every model file is released, even one that holds other parties' rows;
      an explicit opt-in, written to the audit log when the market is created
      (``release_policy_full``) and shown next to the market on the dashboard.

Prediction quota
    Predictions are the other extraction channel. Each party may send at most
    ``predict_quota`` rows to the predict endpoint of its model of one round within any
    ``predict_window_seconds`` (a sliding window; defaults: the service's
    ``Settings.predict_quota`` and ``Settings.predict_window_seconds``, 10,000 rows per
    hour). Beyond it the API answers 429 with ``Retry-After`` (seconds until enough of the
    window's rows have aged out); a request with more rows than the quota can never pass
    and is a 422. Every call is counted in ``prediction_queries`` and its row count is
    shown with its ``model_queried`` audit-log entry.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from coopml.market.release import check_release
from coopml.service.storage.models import Market, ModelArtifact, PredictionQuery, utcnow

__all__ = [
    "DEFAULT_RELEASE_POLICY",
    "POLICY_DESCRIPTIONS",
    "RELEASE_POLICIES",
    "QuotaExceeded",
    "ReleaseRefused",
    "RequestOverQuota",
    "check_models",
    "check_predict_quota",
    "configure_market",
    "record_prediction",
    "release_decision",
    "require_release",
]

#: The release policies, most restrictive first.
RELEASE_POLICIES = ("query_only", "aggregate_only", "full")
DEFAULT_RELEASE_POLICY = "query_only"

#: What each policy means, in one sentence (API docs, dashboard, CLI).
POLICY_DESCRIPTIONS = {
    "query_only": "parties get predictions through the API; no model file is released",
    "aggregate_only": "a party downloads its model file only when the model holds no "
    "training row of another party (checked when the round settles); otherwise "
    "predictions only",
    "full": "every party downloads its model file, even one that holds other parties' "
    "training rows (kNN, trees): opted in by the operator",
}


class ReleaseRefused(Exception):
    """The market's release policy refuses this model file (the message says why)."""


class QuotaExceeded(Exception):
    """The party's prediction quota is used up for now; retry after ``retry_after`` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestOverQuota(ValueError):
    """One request with more rows than the whole quota: it can never pass."""


# ----------------------------------------------------------------------------- markets
def configure_market(
    market: Market,
    release_policy: str,
    predict_quota: int | None,
    predict_window_seconds: int | None,
    *,
    default_quota: int,
    default_window_seconds: int,
) -> list[str]:
    """Set a new market's policy and quota (``None``: the service's defaults); returns
    the audit actions its creation must also record (``release_policy_full``)."""
    if release_policy not in RELEASE_POLICIES:
        raise ValueError(
            f"release_policy must be one of {', '.join(RELEASE_POLICIES)}; "
            f"received {release_policy!r}"
        )
    market.release_policy = release_policy
    market.predict_quota = int(predict_quota if predict_quota is not None else default_quota)
    market.predict_window_seconds = int(
        predict_window_seconds if predict_window_seconds is not None else default_window_seconds
    )
    return ["release_policy_full"] if release_policy == "full" else []


# ----------------------------------------------------------------------------- release
def check_models(parties: Sequence[Any], models: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The release check of each party's model (by party name): ``{"releasable",
    "reason", "exposures", ...}`` against every other party's training rows.

    ``parties`` are :class:`coopml.data.Party` objects (training data ``X``, ``y`` and,
    for per-party tasks, the party's own validation data); ``models`` maps names to
    :class:`coopml.market.CustomModel`. A check that fails is recorded as not
    releasable, with the error as its reason; it never fails the round.
    """
    out: dict[str, dict[str, Any]] = {}
    for party in parties:
        model = models.get(party.name)
        if model is None:
            continue
        others = [p for p in parties if p.name != party.name]
        try:
            if not others:
                out[party.name] = {"releasable": True, "reason": "no other party"}
                continue
            X = np.vstack([np.asarray(p.X, dtype=np.float64) for p in others])
            y = np.concatenate([np.asarray(p.y) for p in others])
            own_X, own_y = [np.asarray(party.X, np.float64)], [np.asarray(party.y)]
            if getattr(party, "X_val", None) is not None and party.y_val is not None:
                own_X.append(np.asarray(party.X_val, np.float64))
                own_y.append(np.asarray(party.y_val))
            check = check_release(
                model.estimator, X, y, X_own=np.vstack(own_X), y_own=np.concatenate(own_y)
            )
            out[party.name] = check.to_dict()
            out[party.name]["summary"] = check.summary()
        except Exception as exc:
            out[party.name] = {
                "releasable": False,
                "reason": f"the release check failed: {type(exc).__name__}: {exc}",
            }
    return out


def release_decision(policy: str, artifact: ModelArtifact) -> tuple[bool, str]:
    """Whether ``policy`` releases the model file of ``artifact``, and why."""
    if policy == "full":
        return True, "release policy 'full': every model file is released"
    if policy == "aggregate_only":
        if artifact.releasable is None:
            return False, (
                "this market's release policy is 'aggregate_only' and this model was "
                "stored before models were checked for other parties' rows, so it is not "
                "released; use the predict endpoint"
            )
        reason = str((artifact.release_check or {}).get("reason", ""))
        if artifact.releasable:
            return True, f"release policy 'aggregate_only': {reason}"
        return False, (
            "this market's release policy is 'aggregate_only' and this model is not "
            f"released: {reason}; use the predict endpoint"
        )
    return False, (
        f"this market's release policy is {policy!r}: models are not released as files; "
        "use the predict endpoint (POST /api/v1/rounds/{round_id}/predict)"
    )


def require_release(market: Market, artifact: ModelArtifact) -> None:
    """Raise :class:`ReleaseRefused` unless the market's policy releases the file."""
    allowed, reason = release_decision(market.release_policy, artifact)
    if not allowed:
        raise ReleaseRefused(reason)


# ----------------------------------------------------------------------------- quota
def _utc(value: datetime.datetime) -> datetime.datetime:
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _window(
    s: Session, model_id: str, since: datetime.datetime, exclude: str | None = None
) -> list[tuple[datetime.datetime, int]]:
    """``(at, n_rows)`` of the model's predict calls after ``since``, oldest first."""
    query = (
        select(PredictionQuery.at, PredictionQuery.n_rows)
        .where(PredictionQuery.model_id == model_id, PredictionQuery.at > since)
        .order_by(PredictionQuery.at)
    )
    if exclude is not None:
        query = query.where(PredictionQuery.id != exclude)
    rows = s.execute(query).all()
    return [(_utc(at), int(n)) for at, n in rows]


def _refuse(
    market: Market,
    entries: list[tuple[datetime.datetime, int]],
    n_rows: int,
    now: datetime.datetime,
) -> QuotaExceeded:
    quota, window = market.predict_quota, market.predict_window_seconds
    used = sum(n for _, n in entries)
    need, freed, retry = used + n_rows - quota, 0, float(window)
    for at, n in entries:
        freed += n
        if freed >= need:
            retry = (at + datetime.timedelta(seconds=window) - now).total_seconds()
            break
    return QuotaExceeded(
        f"prediction quota exceeded: at most {quota} rows per party and round every "
        f"{window} s; {used} used in the last {window} s, this request has {n_rows}",
        max(1, math.ceil(retry)),
    )


def check_predict_quota(
    s: Session,
    market: Market,
    artifact: ModelArtifact,
    n_rows: int,
    now: datetime.datetime | None = None,
) -> None:
    """Refuse a predict request of ``n_rows`` rows that the quota cannot take now
    (:class:`QuotaExceeded`) or ever (:class:`RequestOverQuota`). A cheap check before
    predicting; :func:`record_prediction` enforces the quota under a lock."""
    if n_rows > market.predict_quota:
        raise RequestOverQuota(
            f"rows: {n_rows} rows in one request exceed this market's prediction quota of "
            f"{market.predict_quota} rows per party and round every "
            f"{market.predict_window_seconds} s; send at most {market.predict_quota}"
        )
    now = now or utcnow()
    since = now - datetime.timedelta(seconds=market.predict_window_seconds)
    entries = _window(s, artifact.id, since)
    if sum(n for _, n in entries) + n_rows > market.predict_quota:
        raise _refuse(market, entries, n_rows, now)


def record_prediction(
    s: Session,
    market: Market,
    artifact: ModelArtifact,
    party_id: str,
    n_rows: int,
    audit_id: str | None,
) -> None:
    """Count a predict call against the quota, in the caller's transaction; raises
    :class:`QuotaExceeded` (the caller rolls back) when concurrent calls used it up.

    The model's row is locked first (PostgreSQL; on SQLite the insert takes the
    database's write lock), so concurrent calls of one party are counted one after
    the other and the quota is never exceeded.
    """
    s.execute(select(ModelArtifact.id).where(ModelArtifact.id == artifact.id).with_for_update())
    now = utcnow()
    since = now - datetime.timedelta(seconds=market.predict_window_seconds)
    query = PredictionQuery(
        at=now, model_id=artifact.id, party_id=party_id, n_rows=n_rows, audit_id=audit_id
    )
    s.add(query)
    s.flush()  # SQLite: the write lock, before the window is read
    entries = _window(s, artifact.id, since, exclude=query.id)
    if sum(n for _, n in entries) + n_rows > market.predict_quota:
        raise _refuse(market, entries, n_rows, now)
