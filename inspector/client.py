"""A typed Python client for a running inspector's JSON API, sync (``Client``) and async
(``AsyncClient``), on httpx.

The one place outside ``api/`` that knows the API's shape: the pytest plugin and every CLI
command that talks to a running server go through it. Answers are the ``TypedDict``s the
server declares (``store/*.py``, ``shapes.py``); an error answer raises the
``InspectorError`` of its status (``BadRequest``, ``NotFound``, ``Busy``, ...) with the
server's ``error`` code and ``detail``; a server that cannot be reached raises httpx's
``TransportError``. ``token`` is sent as ``Authorization: Bearer`` on every call.

    with Client("http://127.0.0.1:8765") as api:
        api.configure("orders", secret="s3cret", response={"status": 503})
        got = api.wait("orders", count=2, timeout=10)
        detail = api.request(got["requests"][0]["id"])

Each call is built once (``_Call``: method, path, query, body, how to read the answer) and
sent by either class, so the two cannot disagree about the API.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar, Unpack

import httpx

from inspector import errors
from inspector.jsontypes import JSONObject, JSONValue
from inspector.shapes import (
    Catalog,
    CreatedDelivery,
    Deleted,
    DeliveryOrder,
    DeliveryPage,
    EndpointList,
    EndpointSettingsView,
    EventPage,
    ReplayChange,
    ReplayList,
    ReplayResult,
    RequestPage,
    SettingsChange,
    WaitResult,
)
from inspector.store.deliveries import DeliveryDetail, DeliveryItem
from inspector.store.replays import ReplayDetail
from inspector.store.requests import RequestDetail
from inspector.timeline import TimelineReport

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8765"
TIMEOUT = 30.0
# A wait's HTTP read timeout is its own timeout plus this.
WAIT_SLACK = 15.0

_ERRORS: dict[int, type[errors.InspectorError]] = {
    400: errors.BadRequest,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    413: errors.PayloadTooLarge,
    421: errors.MisdirectedHost,
}


class Filters(TypedDict, total=False):
    """The request filters of ``/api/requests`` and its wait."""

    method: str
    status: int
    signature: str  # valid, invalid, malformed, missing, no_secret, expired, or none
    event_type: str
    q: str  # search


def error_from(response: httpx.Response) -> errors.InspectorError:
    """The ``InspectorError`` an error answer stands for."""
    try:
        data = response.json()
        code, detail = str(data["error"]), data["detail"]
    except (ValueError, KeyError, TypeError):
        code, detail = "http_error", response.text[:500] or response.reason_phrase
    status = response.status_code
    if status == 503 and code == "busy":
        busy = errors.Busy(str(detail), retry_after=int(response.headers.get("retry-after", 1)))
        return busy
    if status == 503:
        return errors.StoreUnavailable(detail, error=code)
    kind = _ERRORS.get(status)
    if kind is not None:
        return kind(detail, error=code)
    other = errors.InspectorError(detail, error=code)
    other.status = status
    return other


# A query parameter's value (None: left out).
QueryValue = str | int | float | bool | None


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, QueryValue] = field(default_factory=dict)
    body: Mapping[str, object] | None = None  # sent as JSON
    timeout: float | None = None  # None: the client's


def _json(response: httpx.Response) -> Any:
    # The trust boundary: each call declares the type its route documents (``_Call[T]``).
    return response.json()


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def _text(response: httpx.Response) -> str:
    return response.text


def _query(**params: QueryValue) -> dict[str, QueryValue]:
    return {k: v for k, v in params.items() if v is not None}


def _filters(endpoint: str | None, filters: Filters) -> dict[str, QueryValue]:
    return _query(endpoint=endpoint, **filters)


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event of a stream (``data`` is JSON text)."""

    event: str
    id: str | None
    data: str

    def json(self) -> JSONValue:
        value: JSONValue = json.loads(self.data)
        return value


class EventReader:
    """Server-sent events, one line at a time (comments and unknown fields skipped)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """The event this line completes, if any."""
        if not line:
            done = None
            if self.data:
                fields = self.fields
                done = ServerEvent(
                    fields.get("event", "message"), fields.get("id"), "\n".join(self.data)
                )
            self.fields, self.data = {}, []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self.data.append(value)
        elif name in ("event", "id"):
            self.fields[name] = value
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[ServerEvent]:
    """Server-sent events from a stream's lines."""
    reader = EventReader()
    for line in lines:
        event = reader.feed(line)
        if event is not None:
            yield event


class _Calls:
    """Every API call, built (not sent): shared by ``Client`` and ``AsyncClient``."""

    @staticmethod
    def requests(
        endpoint: str | None, limit: int, before: int | None, filters: Filters
    ) -> _Call[RequestPage]:
        params = {**_filters(endpoint, filters), **_query(limit=limit, before=before)}
        return _Call("GET", "/api/requests", _json, params)

    @staticmethod
    def wait(
        endpoint: str | None, count: int, after: int, timeout: float, filters: Filters
    ) -> _Call[WaitResult]:
        params = {**_filters(endpoint, filters), "count": count, "after": after}
        params["timeout"] = timeout
        return _Call("GET", "/api/requests/wait", _json, params, timeout=timeout + WAIT_SLACK)


class Client:
    """The API of the inspector at ``url``, over a pooled ``httpx.Client``."""

    def __init__(
        self, url: str = DEFAULT_URL, *, token: str | None = None, timeout: float = TIMEOUT
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, trust_env=False
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _run(self, call: _Call[T]) -> T:
        response = self.http.request(
            call.method,
            call.path,
            params=call.params,
            json=call.body,
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code >= 400:
            raise error_from(response)
        return call.read(response)

    # -- requests ------------------------------------------------------------------------

    def requests(
        self,
        endpoint: str | None = None,
        *,
        limit: int = 50,
        before: int | None = None,
        **filters: Unpack[Filters],
    ) -> RequestPage:
        """Captured requests, newest first (``endpoint="ci-*"``: every ``ci-`` endpoint)."""
        return self._run(_Calls.requests(endpoint, limit, before, filters))

    def wait(
        self,
        endpoint: str | None = None,
        *,
        count: int = 1,
        after: int = 0,
        timeout: float = 30.0,
        **filters: Unpack[Filters],
    ) -> WaitResult:
        """Block until ``count`` matching requests with id > ``after`` are stored (oldest
        first), or ``timeout`` seconds pass (``timed_out``)."""
        return self._run(_Calls.wait(endpoint, count, after, timeout, filters))

    def request(self, request_id: int) -> RequestDetail:
        return self._run(_Call[RequestDetail]("GET", f"/api/requests/{request_id}", _json))

    def body(self, request_id: int) -> bytes:
        """A request's exact body bytes."""
        return self._run(_Call("GET", f"/api/requests/{request_id}/body", _bytes))

    def delete(self, request_id: int) -> Deleted:
        return self._run(_Call[Deleted]("DELETE", f"/api/requests/{request_id}", _json))

    def clear(self, endpoint: str | None = None) -> Deleted:
        """Delete every request of ``endpoint`` (of every endpoint when None)."""
        params = {"endpoint": endpoint} if endpoint else {"all": "true"}
        return self._run(_Call[Deleted]("DELETE", "/api/requests", _json, params))

    # -- endpoints -----------------------------------------------------------------------

    def endpoints(self) -> EndpointList:
        return self._run(_Call[EndpointList]("GET", "/api/endpoints", _json))

    def endpoint(self, name: str) -> EndpointSettingsView:
        return self._run(_Call[EndpointSettingsView]("GET", f"/api/endpoints/{name}", _json))

    def configure(self, name: str, **changes: Unpack[SettingsChange]) -> EndpointSettingsView:
        """Change the settings named (``None`` resets one); in effect when this returns."""
        return self._run(
            _Call[EndpointSettingsView]("PUT", f"/api/endpoints/{name}", _json, body=changes)
        )

    def events(self, endpoint: str, *, limit: int = 50) -> EventPage:
        return self._run(
            _Call[EventPage]("GET", "/api/events", _json, {"endpoint": endpoint, "limit": limit})
        )

    def event(self, endpoint: str, event_key: str) -> TimelineReport:
        return self._run(_Call[TimelineReport]("GET", f"/api/events/{endpoint}/{event_key}", _json))

    # -- replays -------------------------------------------------------------------------

    def replay(self, request_id: int, **change: Unpack[ReplayChange]) -> ReplayResult:
        return self._run(
            _Call[ReplayResult]("POST", f"/api/requests/{request_id}/replay", _json, body=change)
        )

    def replays(self, request_id: int) -> ReplayList:
        return self._run(_Call[ReplayList]("GET", f"/api/requests/{request_id}/replays", _json))

    def replay_detail(self, replay_id: int) -> ReplayDetail:
        return self._run(_Call[ReplayDetail]("GET", f"/api/replays/{replay_id}", _json))

    def curl(self, request_id: int, url: str | None = None) -> str:
        path = f"/api/requests/{request_id}/curl"
        return self._run(_Call("GET", path, _text, _query(url=url)))

    def export(self, endpoint: str | None = None, *, format: str = "jsonl") -> bytes:
        return self._run(
            _Call("GET", "/api/export", _bytes, _query(endpoint=endpoint, format=format))
        )

    # -- deliveries ----------------------------------------------------------------------

    def deliver(self, **order: Unpack[DeliveryOrder]) -> CreatedDelivery:
        """Hand an event to the server's sender (signed, retried on its schedule)."""
        return self._run(_Call[CreatedDelivery]("POST", "/api/deliveries", _json, body=order))

    def deliveries(
        self, *, limit: int = 50, before: int | None = None, state: str | None = None
    ) -> DeliveryPage:
        params = _query(limit=limit, before=before, state=state)
        return self._run(_Call[DeliveryPage]("GET", "/api/deliveries", _json, params))

    def delivery(self, delivery_id: int) -> DeliveryDetail:
        return self._run(_Call[DeliveryDetail]("GET", f"/api/deliveries/{delivery_id}", _json))

    def cancel(self, delivery_id: int) -> DeliveryItem:
        return self._run(
            _Call[DeliveryItem]("POST", f"/api/deliveries/{delivery_id}/cancel", _json)
        )

    def catalog(self) -> Catalog:
        return self._run(_Call[Catalog]("GET", "/api/catalog", _json))

    def openapi(self) -> JSONObject:
        return self._run(_Call[JSONObject]("GET", "/api/openapi.json", _json))

    # -- streams -------------------------------------------------------------------------

    def stream(
        self, path: str = "/api/stream", *, last_event_id: int | None = None, **params: str
    ) -> Generator[ServerEvent, None, None]:
        """The events of a server-sent stream, until the server ends it."""
        headers = {"accept": "text/event-stream"}
        if last_event_id is not None:
            headers["last-event-id"] = str(last_event_id)
        timeout = httpx.Timeout(10, read=45)  # pings come every 15 s
        with self.http.stream("GET", path, params=params, headers=headers, timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                raise error_from(r)
            yield from parse_sse(r.iter_lines())


class AsyncClient:
    """``Client``'s calls, awaitable, over an ``httpx.AsyncClient``."""

    def __init__(
        self, url: str = DEFAULT_URL, *, token: str | None = None, timeout: float = TIMEOUT
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, trust_env=False
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _run(self, call: _Call[T]) -> T:
        response = await self.http.request(
            call.method,
            call.path,
            params=call.params,
            json=call.body,
            timeout=call.timeout if call.timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        if response.status_code >= 400:
            raise error_from(response)
        return call.read(response)

    async def requests(
        self,
        endpoint: str | None = None,
        *,
        limit: int = 50,
        before: int | None = None,
        **filters: Unpack[Filters],
    ) -> RequestPage:
        return await self._run(_Calls.requests(endpoint, limit, before, filters))

    async def wait(
        self,
        endpoint: str | None = None,
        *,
        count: int = 1,
        after: int = 0,
        timeout: float = 30.0,
        **filters: Unpack[Filters],
    ) -> WaitResult:
        return await self._run(_Calls.wait(endpoint, count, after, timeout, filters))

    async def request(self, request_id: int) -> RequestDetail:
        return await self._run(_Call[RequestDetail]("GET", f"/api/requests/{request_id}", _json))

    async def body(self, request_id: int) -> bytes:
        return await self._run(_Call("GET", f"/api/requests/{request_id}/body", _bytes))

    async def clear(self, endpoint: str | None = None) -> Deleted:
        params = {"endpoint": endpoint} if endpoint else {"all": "true"}
        return await self._run(_Call[Deleted]("DELETE", "/api/requests", _json, params))

    async def endpoint(self, name: str) -> EndpointSettingsView:
        return await self._run(_Call[EndpointSettingsView]("GET", f"/api/endpoints/{name}", _json))

    async def configure(self, name: str, **changes: Unpack[SettingsChange]) -> EndpointSettingsView:
        return await self._run(
            _Call[EndpointSettingsView]("PUT", f"/api/endpoints/{name}", _json, body=changes)
        )

    async def deliver(self, **order: Unpack[DeliveryOrder]) -> CreatedDelivery:
        call = _Call[CreatedDelivery]("POST", "/api/deliveries", _json, body=order)
        return await self._run(call)

    async def delivery(self, delivery_id: int) -> DeliveryDetail:
        return await self._run(
            _Call[DeliveryDetail]("GET", f"/api/deliveries/{delivery_id}", _json)
        )

    async def cancel(self, delivery_id: int) -> DeliveryItem:
        return await self._run(
            _Call[DeliveryItem]("POST", f"/api/deliveries/{delivery_id}/cancel", _json)
        )

    async def stream(
        self, path: str = "/api/stream", *, last_event_id: int | None = None, **params: str
    ) -> AsyncGenerator[ServerEvent, None]:
        headers = {"accept": "text/event-stream"}
        if last_event_id is not None:
            headers["last-event-id"] = str(last_event_id)
        timeout = httpx.Timeout(10, read=45)
        async with self.http.stream(
            "GET", path, params=params, headers=headers, timeout=timeout
        ) as r:
            if r.status_code >= 400:
                await r.aread()
                raise error_from(r)
            reader = EventReader()
            async for line in r.aiter_lines():
                event = reader.feed(line)
                if event is not None:
                    yield event
