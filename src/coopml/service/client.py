"""A Python client for the coopml marketplace service's HTTP API (``/api/v1``).

:class:`CoopmlClient` wraps one ``httpx.Client`` and offers one method per endpoint;
every method returns the decoded JSON body, typed as the ``TypedDict`` of the API's
response model (:mod:`coopml.service.responses`: ``MarketDict`` for ``MarketOut``, ...),
or ``bytes`` for downloads. An error body ``{"error": {"code", "message", "request_id"}}`` becomes a
:class:`ServiceError` carrying the HTTP status, the error code, the server's message and
the request id, so a failure can be quoted back to the operator.

Tests and in-process use pass the FastAPI app instead of a network address: either a
``transport`` (any ``httpx.BaseTransport``) or a ready ``http_client`` such as
``fastapi.testclient.TestClient(app)`` (which is an ``httpx.Client``).

Examples
--------
>>> client = CoopmlClient("http://127.0.0.1:8000", "my-token", timeout=5.0)
>>> client.base_url
'http://127.0.0.1:8000'
>>> err = ServiceError(404, "not_found", "round 'abc' does not exist", "req-1")
>>> str(err)
"404 not_found: round 'abc' does not exist (request id req-1)"
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import httpx

if TYPE_CHECKING:
    from coopml.service.responses import (
        AuditDict,
        AuditLogEntryDict,
        DatasetDict,
        HealthDict,
        LedgerEntryDict,
        MarketDict,
        MeDict,
        PageDict,
        PartyCreatedDict,
        PartyDict,
        PartyTokenDict,
        RoundDict,
        SettlementDict,
    )

__all__ = ["API_PREFIX", "CoopmlClient", "ServiceError"]

API_PREFIX = "/api/v1"
#: Round states after which a round never changes again.
FINAL_STATES = frozenset({"completed", "failed"})


class ServiceError(Exception):
    """An error answered by the service (or the service could not be reached).

    Attributes
    ----------
    status : int
        The HTTP status code; ``0`` when no response came back (connection refused,
        timeout).
    code : str
        The machine-readable error code (``"not_found"``, ``"validation_error"``, ...).
    message : str
        The server's human-readable message.
    request_id : str or None
        The ``X-Request-ID`` of the failed request, to quote to the operator.
    retry_after : float or None
        Seconds to wait before retrying (the ``Retry-After`` header of a 429 or 503).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        retry_after: float | None = None,
    ):
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.status} {self.code}" if self.status else self.code
        tail = f" (request id {self.request_id})" if self.request_id else ""
        return f"{head}: {self.message}{tail}"

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.status, self.code, self.message, self.request_id, self.retry_after)
        return (type(self), args)

    @classmethod
    def from_response(cls, response: httpx.Response) -> ServiceError:
        """Build the error from an error response, whatever its body looks like."""
        request_id = response.headers.get("x-request-id")
        code, message = f"http_{response.status_code}", response.reason_phrase or "error"
        try:
            body = response.json()
        except ValueError:
            text = response.text.strip()
            if text:
                message = text[:500]
        else:
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code = str(error.get("code") or code)
                message = str(error.get("message") or message)
                request_id = str(error.get("request_id") or request_id or "") or None
            elif isinstance(body, dict) and "detail" in body:
                message = str(body["detail"])
        retry_after = None
        try:
            retry_after = float(response.headers.get("retry-after", ""))
        except ValueError:
            pass
        return cls(response.status_code, code, message, request_id, retry_after)


class CoopmlClient:
    """Client for the coopml marketplace service.

    Parameters
    ----------
    base_url : str
        The service's address, e.g. ``"http://127.0.0.1:8000"`` (without ``/api/v1``).
    token : str or None
        The operator's or a party's API token (sent as ``Authorization: Bearer``).
    timeout : float, default 30.0
        Seconds to wait for each request.
    transport : httpx.BaseTransport, optional
        A custom transport (e.g. ``httpx.MockTransport``, or a WSGI transport).
    http_client : httpx.Client, optional
        A ready client to send requests through, e.g.
        ``fastapi.testclient.TestClient(app)`` to talk to the app in-process. The client
        is not closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with 'http://' or 'https://'; got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds; got {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = float(timeout)
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else httpx.Client(transport=transport, timeout=self.timeout)
        )

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        """Close the underlying connection pool (unless it was passed in)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> CoopmlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def with_token(self, token: str | None) -> CoopmlClient:
        """A client for the same service and connection pool acting as another principal."""
        other = CoopmlClient(self.base_url, token, timeout=self.timeout, http_client=self._http)
        return other

    def url(self, path: str) -> str:
        """The absolute URL of an API path such as ``"/markets"``."""
        return f"{self.base_url}{API_PREFIX}{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request to ``/api/v1{path}``; raise :class:`ServiceError` unless 2xx."""
        sent = {"Accept": "application/json"}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        sent.update(headers or {})
        try:
            response = self._http.request(
                method,
                self.url(path),
                json=json,
                params={k: v for k, v in (params or {}).items() if v is not None},
                data=data,
                files=files,
                headers=sent,
            )
        except httpx.TimeoutException as exc:
            raise ServiceError(
                0, "timeout", f"no answer from {self.base_url} within {self.timeout:g} s ({exc})"
            ) from exc
        except httpx.TransportError as exc:
            raise ServiceError(
                0, "unreachable", f"cannot reach the coopml service at {self.base_url}: {exc}"
            ) from exc
        if response.status_code >= 400:
            raise ServiceError.from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        return response.json()

    @staticmethod
    def _page(limit: int | None, offset: int | None) -> dict[str, int | None]:
        return {"limit": limit, "offset": offset}

    def iter_pages(
        self, path: str, *, page_size: int = 500, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a paginated list endpoint, fetching ``page_size`` at a time."""
        offset = 0
        while True:
            page = self._json(
                "GET", path, params={**(params or {}), "limit": page_size, "offset": offset}
            )
            items = page["items"]
            yield from items
            offset += len(items)
            if not items or offset >= int(page["total"]):
                return

    # ------------------------------------------------------------------ endpoints
    def health(self) -> HealthDict:
        """``GET /health``: ``{"status": "ok", "database": ...}`` (no token needed)."""
        result: HealthDict = self._json("GET", "/health")
        return result

    def me(self) -> MeDict:
        """``GET /me``: who the token belongs to (role, party id, market id, name)."""
        result: MeDict = self._json("GET", "/me")
        return result

    def create_market(
        self,
        name: str,
        task: str = "classification",
        description: str = "",
        *,
        release_policy: str | None = None,
        predict_quota: int | None = None,
        predict_window_seconds: int | None = None,
        schema: Mapping[str, Any] | None = None,
        quotas: Mapping[str, int | None] | None = None,
        custody: str | None = None,
    ) -> MarketDict:
        """``POST /markets`` (operator): create a market for a classification or
        regression task. ``release_policy`` (``"query_only"``, the service's default;
        ``"aggregate_only"``; ``"full"``) says which model files parties may download;
        ``predict_quota`` rows per party and round within ``predict_window_seconds``
        (``None``: the service's defaults). ``schema`` declares the data every upload
        must match (``target``, ``label_type``, optional ``classes``, ``features``:
        ``[{"name", "type"}]``; ``None``: the first upload fixes it); ``quotas``:
        ``max_datasets_per_party`` and ``max_bytes_per_party`` (``None``: the service's);
        ``custody``: ``"operator"`` (the default) or ``"parties"`` (no row is uploaded)."""
        body: dict[str, Any] = {"name": name, "task": task, "description": description}
        options = {
            "release_policy": release_policy,
            "predict_quota": predict_quota,
            "predict_window_seconds": predict_window_seconds,
            "schema": None if schema is None else dict(schema),
            "quotas": None if quotas is None else dict(quotas),
            "custody": custody,
        }
        body.update({k: v for k, v in options.items() if v is not None})
        result: MarketDict = self._json("POST", "/markets", json=body)
        return result

    def list_markets(
        self, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[MarketDict]:
        """``GET /markets``: one page ``{"items", "total", "limit", "offset"}``."""
        result: PageDict[MarketDict] = self._json(
            "GET", "/markets", params=self._page(limit, offset)
        )
        return result

    def get_market(self, market_id: str) -> MarketDict:
        """``GET /markets/{market_id}``."""
        result: MarketDict = self._json("GET", f"/markets/{_seg(market_id)}")
        return result

    def agent_check_in(self, market_id: str) -> dict[str, Any]:
        """``POST /markets/{market_id}/agent`` (a party of a parties-custody market):
        the SuperLink's Fleet API address for ``coopml agent``; marks it connected."""
        result: dict[str, Any] = self._json("POST", f"/markets/{_seg(market_id)}/agent")
        return result

    def add_party(self, market_id: str, name: str) -> PartyCreatedDict:
        """``POST /markets/{market_id}/parties`` (operator). The answer holds the party's
        ``token``, shown this once only."""
        result: PartyCreatedDict = self._json(
            "POST", f"/markets/{_seg(market_id)}/parties", json={"name": name}
        )
        return result

    def list_parties(
        self, market_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[PartyDict]:
        """``GET /markets/{market_id}/parties`` (a party sees only itself)."""
        result: PageDict[PartyDict] = self._json(
            "GET", f"/markets/{_seg(market_id)}/parties", params=self._page(limit, offset)
        )
        return result

    def revoke_party_token(self, market_id: str, party_id: str) -> None:
        """``DELETE /markets/{market_id}/parties/{party_id}/token`` (operator): every
        token of the party stops working (401) and its dashboard sessions end."""
        self.request("DELETE", f"/markets/{_seg(market_id)}/parties/{_seg(party_id)}/token")

    def rotate_party_token(self, market_id: str, party_id: str) -> PartyTokenDict:
        """``POST /markets/{market_id}/parties/{party_id}/token`` (operator): a new
        ``token`` for the party, shown this once only; its older tokens are revoked."""
        result: PartyTokenDict = self._json(
            "POST", f"/markets/{_seg(market_id)}/parties/{_seg(party_id)}/token"
        )
        return result

    def upload_dataset(
        self,
        market_id: str,
        file: str | os.PathLike[str] | bytes | BinaryIO,
        *,
        role: str,
        target: str,
        name: str | None = None,
        filename: str | None = None,
        replaces: str | None = None,
    ) -> DatasetDict:
        """``POST /markets/{market_id}/datasets`` (party): upload a CSV or Parquet file as
        ``role`` ``"train"`` or ``"validation"`` data with target column ``target``.

        ``file`` is a path, the file's bytes or an open binary file; ``filename`` (which
        tells CSV from Parquet by extension) defaults to the path's name, or
        ``"data.csv"`` for bytes. ``replaces``: the id of one of the party's datasets
        that the new one replaces (stored and deleted in one step).
        """
        data = {"role": role, "target": target}
        if name is not None:
            data["name"] = name
        params = {"replaces": replaces}
        path_ = f"/markets/{_seg(market_id)}/datasets"
        if isinstance(file, str | os.PathLike):
            path = Path(file)
            with path.open("rb") as handle:
                files: dict[str, Any] = {
                    "file": (filename or path.name, handle, _content_type(path.name))
                }
                result: DatasetDict = self._json(
                    "POST", path_, data=data, files=files, params=params
                )
            return result
        fname = filename or getattr(file, "name", None) or "data.csv"
        fname = Path(str(fname)).name
        files = {"file": (fname, file, _content_type(fname))}
        result = self._json("POST", path_, data=data, files=files, params=params)
        return result

    def delete_dataset(self, dataset_id: str) -> None:
        """``DELETE /datasets/{dataset_id}`` (its owner party or the operator): delete
        the dataset and erase its stored copy (audited)."""
        self.request("DELETE", f"/datasets/{_seg(dataset_id)}")

    def list_datasets(
        self, market_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[DatasetDict]:
        """``GET /markets/{market_id}/datasets`` (operator: all; party: its own)."""
        result: PageDict[DatasetDict] = self._json(
            "GET", f"/markets/{_seg(market_id)}/datasets", params=self._page(limit, offset)
        )
        return result

    def get_dataset(self, dataset_id: str) -> DatasetDict:
        """``GET /datasets/{dataset_id}``: the dataset's metadata."""
        result: DatasetDict = self._json("GET", f"/datasets/{_seg(dataset_id)}")
        return result

    def dataset_content(self, dataset_id: str) -> bytes:
        """``GET /datasets/{dataset_id}/content`` (owner only): the uploaded bytes."""
        return self.request("GET", f"/datasets/{_seg(dataset_id)}/content").content

    def open_round(
        self,
        market_id: str,
        learner: str,
        params: Mapping[str, Any] | None = None,
        *,
        payment_rule: str | None = None,
        fee_price: float | None = None,
        tasks: str | None = None,
        **options: Any,
    ) -> RoundDict:
        """``POST /markets/{market_id}/rounds`` (operator): queue a round training
        ``learner`` (from the service's allow-list) with ``params``.

        ``payment_rule``, ``fee_price``, ``tasks`` (``"single"`` or ``"per_party"``) and
        any further round ``options`` (e.g. ``duplicates``, ``random_state``,
        ``replication_party``) are sent only when given; otherwise the service's defaults
        apply.
        """
        body: dict[str, Any] = {"learner": {"name": learner, "params": dict(params or {})}}
        given = {"payment_rule": payment_rule, "fee_price": fee_price, "tasks": tasks, **options}
        body.update({k: v for k, v in given.items() if v is not None})
        result: RoundDict = self._json("POST", f"/markets/{_seg(market_id)}/rounds", json=body)
        return result

    def list_rounds(
        self, market_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[RoundDict]:
        """``GET /markets/{market_id}/rounds``."""
        result: PageDict[RoundDict] = self._json(
            "GET", f"/markets/{_seg(market_id)}/rounds", params=self._page(limit, offset)
        )
        return result

    def get_round(self, round_id: str) -> RoundDict:
        """``GET /rounds/{round_id}``: status, progress (0..1) and message."""
        result: RoundDict = self._json("GET", f"/rounds/{_seg(round_id)}")
        return result

    def wait_round(
        self,
        round_id: str,
        *,
        timeout: float = 600.0,
        poll_interval: float = 0.5,
        on_update: Callable[[RoundDict], None] | None = None,
    ) -> RoundDict:
        """Poll :meth:`get_round` until the round is ``completed`` or ``failed``.

        Raises
        ------
        TimeoutError
            If the round is still queued or running after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = self.get_round(round_id)
            if on_update is not None:
                on_update(state)
            if state.get("status") in FINAL_STATES:
                return state
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"round {round_id} is still {state.get('status')!r} after {timeout:g} s"
                )
            time.sleep(poll_interval)

    def settlement(self, round_id: str) -> SettlementDict:
        """``GET /rounds/{round_id}/settlement`` (a party sees its own line only)."""
        result: SettlementDict = self._json("GET", f"/rounds/{_seg(round_id)}/settlement")
        return result

    def audit(self, round_id: str) -> AuditDict:
        """``GET /rounds/{round_id}/audit`` (operator): balance, verification, duplicate
        data and replication findings."""
        result: AuditDict = self._json("GET", f"/rounds/{_seg(round_id)}/audit")
        return result

    def ledger(
        self, round_id: str, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[LedgerEntryDict]:
        """``GET /rounds/{round_id}/ledger`` (operator): one page of the append-only money
        ledger (``fee_collected``, ``fee_returned`` and ``payout`` entries)."""
        result: PageDict[LedgerEntryDict] = self._json(
            "GET", f"/rounds/{_seg(round_id)}/ledger", params=self._page(limit, offset)
        )
        return result

    def download_model(self, round_id: str) -> bytes:
        """``GET /rounds/{round_id}/model`` (party): its customised model as a skops file,
        when the market's release policy releases it (a 403 ``model_not_released``
        ServiceError says why not)."""
        return self.request("GET", f"/rounds/{_seg(round_id)}/model").content

    def predict(self, round_id: str, rows: Sequence[Sequence[float]]) -> list[Any]:
        """``POST /rounds/{round_id}/predict`` (party): predictions of its own model. Over
        the market's prediction quota: a 429 ServiceError whose ``retry_after`` says
        when to try again."""
        body = {"rows": [[float(v) for v in row] for row in rows]}
        result = self._json("POST", f"/rounds/{_seg(round_id)}/predict", json=body)
        return list(result["predictions"])

    def audit_log(
        self, *, limit: int | None = None, offset: int | None = None
    ) -> PageDict[AuditLogEntryDict]:
        """``GET /audit-log``: who accessed which dataset, model or prediction endpoint."""
        result: PageDict[AuditLogEntryDict] = self._json(
            "GET", "/audit-log", params=self._page(limit, offset)
        )
        return result


def _seg(value: str) -> str:
    """One URL path segment, percent-encoded so an id can never change the route."""
    from urllib.parse import quote

    return quote(str(value), safe="")


def _content_type(filename: str) -> str:
    parquet = filename.lower().endswith((".parquet", ".pq"))
    return "application/octet-stream" if parquet else "text/csv"
