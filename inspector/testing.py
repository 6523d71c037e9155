"""The inspector inside a test suite: what the pytest fixtures hand a test.

``WebhookInspector`` (fixture ``webhook_inspector``) and ``AsyncWebhookInspector`` (fixture
``async_webhook_inspector``) talk to the process's inspector server through the typed client.

**Isolation.** Each test gets its own endpoint namespace: ``url("orders")`` is the capture
URL of the endpoint ``t17.orders`` for the 17th test of the process (``t17.`` is the test's
*prefix*). Every call of a test — ``url``, ``configure``, ``wait_for``, ``captures`` — names
its endpoints through that prefix, and ``wait_for()`` without an endpoint waits on
``t17.*``. So a test sees only what was sent to its own URLs: a sender of an earlier test
that is still retrying reaches that test's endpoints, never this one's; settings and the
attempt counters behind ``fail=N`` start fresh too, with nothing to clear between tests.
A ``Capture`` shows the endpoint name the test used (``orders``); its ``path`` is the path as
received (``/h/t17.orders``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from typing import Unpack
from urllib.parse import urlencode

import httpx

from inspector import faults
from inspector.capture import ENDPOINT_RE
from inspector.client import AsyncClient, Client, Filters, ServerEvent
from inspector.endpoints import SettingsDict
from inspector.evidence import Answer, Attempt, Capture, Delivery, Signature
from inspector.jsontypes import JSONValue
from inspector.shapes import DeliveryOrder, SettingsChange
from inspector.store.requests import ListedRequest

FINAL = frozenset({"succeeded", "failed", "cancelled"})
# Tests want retries in milliseconds: the platform's 1, 5 and 30 minutes become 60 ms, 300 ms
# and 1.8 s unless a test asks for another scale.
TIME_SCALE = 0.001
_TESTS = itertools.count(1)

__all__ = [
    "Answer",
    "AsyncWebhookInspector",
    "Attempt",
    "Capture",
    "CaptureTimeout",
    "Delivery",
    "DeliveryTimeout",
    "Signature",
    "WebhookInspector",
]


class CaptureTimeout(AssertionError):
    """``wait_for`` ran out of time: the message lists what did arrive."""


class DeliveryTimeout(AssertionError):
    """``send`` ran out of time before the delivery succeeded or failed."""


# -- what both flavours share ----------------------------------------------------------------


class _Namespace:
    """A test's view of the server: its prefix, and the calls' arguments built from it."""

    def __init__(self, url: str, *, token: str | None = None, prefix: str | None = None) -> None:
        self.base_url = url.rstrip("/")
        self.token = token
        self.prefix = prefix if prefix is not None else f"t{next(_TESTS)}."

    def endpoint_name(self, endpoint: str) -> str:
        name = self.prefix + endpoint
        if not ENDPOINT_RE.fullmatch(name):
            room = 64 - len(self.prefix)
            raise ValueError(
                f"Invalid endpoint name {endpoint!r}: use 1 to {room} characters from "
                "A-Z a-z 0-9 . _ -."
            )
        return name

    def url(
        self, endpoint: str = "default", path: str = "", **failure_modes: faults.FaultValue
    ) -> str:
        """The capture URL of ``endpoint``, with failure modes (``fail=2``, ``status=503``,
        ``delay=1.5``, ``drop=True``...) as query parameters."""
        unknown = sorted(set(failure_modes) - set(faults.PARAMS))
        if unknown:
            raise ValueError(
                f"Unknown failure mode(s) {unknown}; known: {', '.join(faults.PARAMS)}"
            )
        if path and not path.startswith("/"):
            path = "/" + path
        query = urlencode({k: _param(v) for k, v in failure_modes.items()})
        return f"{self.base_url}/h/{self.endpoint_name(endpoint)}{path}" + (
            f"?{query}" if query else ""
        )

    def selector(self, endpoint: str | None) -> str:
        return self.endpoint_name(endpoint) if endpoint is not None else self.prefix + "*"

    def timeout_message(
        self,
        endpoint: str | None,
        count: int,
        timeout: float,
        filters: Filters,
        matched: Sequence[ListedRequest],
        arrived: Sequence[ListedRequest],
    ) -> str:
        where = f"endpoint {endpoint!r}" if endpoint is not None else "any endpoint of this test"
        wanted = ", ".join(f"{k}={v!r}" for k, v in filters.items())
        lines = [
            f"Waited {timeout:g} s for {count} capture(s) at {where}"
            + (f" matching {wanted}" if wanted else "")
            + f": {len(matched)} matched.",
        ]
        if not arrived:
            lines.append(
                f"Nothing arrived at this test's endpoints ({self.base_url}/h/{self.prefix}...)."
            )
        else:
            lines.append(f"What did arrive ({len(arrived)}, oldest first):")
            lines += [f"  {self.describe(item)}" for item in arrived]
        return "\n".join(lines)

    def describe(self, item: ListedRequest) -> str:
        answer = item["response"]
        status = answer["status"] if answer["status"] is not None else "no answer"
        verdict = item["signature"]["status"] if item["signature"] else "none"
        query = f"?{item['query']}" if item["query"] else ""
        parts = [
            f"#{item['id']} {item['method']} {item['path']}{query}",
            f"endpoint={item['endpoint'].removeprefix(self.prefix)}",
            f"answered {status}",
            f"signature={verdict}",
        ]
        if item["event_type"]:
            parts.append(f"event_type={item['event_type']}")
        if item["attempt"] > 1:
            parts.append(f"attempt {item['attempt']}")
        return "  ".join(parts)


def _param(value: object) -> str:
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


def _order(
    event: str | None,
    to: str,
    secret: str,
    body: str | bytes | None,
    overrides: dict[str, JSONValue] | None,
    scheme: str,
    schedule: Sequence[float] | None,
    time_scale: float,
    timeout: float,
    headers: dict[str, str] | Sequence[tuple[str, str]] | None,
) -> DeliveryOrder:
    order: DeliveryOrder = {
        "event": event,
        "url": to,
        "secret": secret,
        "scheme": scheme,
        "time_scale": time_scale,
        "timeout": timeout,
    }
    if body is not None:
        order["body"] = body.decode("utf-8") if isinstance(body, bytes) else body
    if overrides:
        order["set"] = overrides
    if schedule is not None:
        order["schedule"] = list(schedule)
    if headers:
        order["headers"] = headers if isinstance(headers, dict) else [(k, v) for k, v in headers]
    return order


def _within(order: DeliveryOrder, within: float | None) -> float:
    """How long a delivery may take: every wait of its schedule, scaled, and every attempt's
    timeout, with room to spare."""
    if within is not None:
        return within
    schedule = order.get("schedule", [60.0, 300.0, 1800.0])
    waits = sum(schedule) * order.get("time_scale", 1.0)
    return waits + (len(schedule) + 1) * order.get("timeout", 30.0) + 10.0


# -- the sync flavour ------------------------------------------------------------------------


class WebhookInspector(_Namespace):
    """A test's inspector: capture URLs, settings, waits and deliveries, isolated per test."""

    def __init__(self, url: str, *, token: str | None = None, prefix: str | None = None) -> None:
        super().__init__(url, token=token, prefix=prefix)
        self.client = Client(self.base_url, token=token)

    def close(self) -> None:
        self.client.close()

    def configure(self, endpoint: str, **settings: Unpack[SettingsChange]) -> SettingsDict:
        """Change ``endpoint``'s settings (``secret``, ``scheme``, ``enforce``, ``response``
        rules...); in effect for every request sent after this returns."""
        changed = self.client.configure(self.endpoint_name(endpoint), **settings)
        return changed["settings"]

    def wait_for(
        self,
        endpoint: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
        **filters: Unpack[Filters],
    ) -> list[Capture]:
        """The first ``count`` captures (oldest first) at ``endpoint`` (any of this test's
        when None) matching ``filters`` (``method``, ``status``, ``signature``,
        ``event_type``, ``q``), once they have arrived; fails the test after ``timeout``
        seconds with a list of what did arrive."""
        got = self.client.wait(self.selector(endpoint), count=count, timeout=timeout, **filters)
        if got["timed_out"]:
            arrived = self.client.requests(self.prefix + "*", limit=200)["requests"]
            message = self.timeout_message(
                endpoint, count, timeout, filters, got["requests"], arrived[::-1]
            )
            raise CaptureTimeout(message)
        return [self._capture(item["id"]) for item in got["requests"]]

    def captures(self, endpoint: str | None = None, **filters: Unpack[Filters]) -> list[Capture]:
        """What has arrived so far (oldest first), without waiting."""
        page = self.client.requests(self.selector(endpoint), limit=1000, **filters)
        return [self._capture(item["id"]) for item in reversed(page["requests"])]

    def _capture(self, request_id: int) -> Capture:
        return Capture.from_detail(self.client.request(request_id), self.prefix)

    def send(
        self,
        event: str | None,
        *,
        to: str,
        secret: str,
        body: str | bytes | None = None,
        overrides: dict[str, JSONValue] | None = None,
        scheme: str = "platform",
        schedule: Sequence[float] | None = None,
        time_scale: float = TIME_SCALE,
        timeout: float = 30.0,
        headers: dict[str, str] | Sequence[tuple[str, str]] | None = None,
        wait: bool = True,
        within: float | None = None,
    ) -> Delivery:
        """Play the platform: send ``event`` (its sample body, ``overrides`` applied, or
        ``body`` byte-exact) to ``to``, signed with ``secret``, retried on ``schedule`` (the
        platform's 60, 300, 1800 s) times ``time_scale``. Returns the delivery once it has
        succeeded or failed (``wait=False``: at once), with every attempt."""
        order = _order(
            event, to, secret, body, overrides, scheme, schedule, time_scale, timeout, headers
        )
        if not wait:
            return Delivery.from_detail(self.client.delivery(self.client.deliver(**order)["id"]))
        deadline = time.monotonic() + _within(order, within)
        events = self.client.stream("/api/deliveries/stream")
        try:
            next(events)  # ready: subscribed, so no change of this delivery can be missed
            created = self.client.deliver(**order)
            if created["state"] not in FINAL:
                _until_final(events, created["id"], deadline)
        finally:
            events.close()
        return Delivery.from_detail(self.client.delivery(created["id"]))


def _is_final(change: JSONValue, delivery_id: int) -> bool:
    """Whether a delivery stream event (``{"delivery": {...}, "change": ...}``) says that
    delivery ``delivery_id`` is over."""
    if not isinstance(change, dict):
        return False
    delivery = change.get("delivery")
    return (
        isinstance(delivery, dict)
        and delivery.get("id") == delivery_id
        and change.get("change") in FINAL
    )


def _until_final(events: Iterator[ServerEvent], delivery_id: int, deadline: float) -> None:
    try:
        _follow(events, delivery_id, deadline)
    except httpx.ReadTimeout:  # no event at all for a while (pings are not events)
        raise DeliveryTimeout(f"Delivery #{delivery_id} did not finish in time.") from None


def _follow(events: Iterator[ServerEvent], delivery_id: int, deadline: float) -> None:
    for event in events:
        if event.event == "delivery" and _is_final(event.json(), delivery_id):
            return
        if event.event == "resync":
            raise DeliveryTimeout("The delivery stream fell behind; the state is unknown.")
        if time.monotonic() > deadline:
            break
    raise DeliveryTimeout(f"Delivery #{delivery_id} did not finish in time.")


# -- the async flavour -----------------------------------------------------------------------


class AsyncWebhookInspector(_Namespace):
    """``WebhookInspector`` for async tests (pytest-asyncio, anyio): the same calls, awaited.

    Each call opens its own connection, so the object works on whatever event loop the test
    runs on."""

    def _client(self) -> AsyncClient:
        return AsyncClient(self.base_url, token=self.token)

    async def configure(self, endpoint: str, **settings: Unpack[SettingsChange]) -> SettingsDict:
        async with self._client() as client:
            changed = await client.configure(self.endpoint_name(endpoint), **settings)
        return changed["settings"]

    async def wait_for(
        self,
        endpoint: str | None = None,
        count: int = 1,
        timeout: float = 5.0,
        **filters: Unpack[Filters],
    ) -> list[Capture]:
        async with self._client() as client:
            selector = self.selector(endpoint)
            got = await client.wait(selector, count=count, timeout=timeout, **filters)
            if got["timed_out"]:
                arrived = (await client.requests(self.prefix + "*", limit=200))["requests"]
                message = self.timeout_message(
                    endpoint, count, timeout, filters, got["requests"], arrived[::-1]
                )
                raise CaptureTimeout(message)
            details = [await client.request(item["id"]) for item in got["requests"]]
        return [Capture.from_detail(d, self.prefix) for d in details]

    async def captures(
        self, endpoint: str | None = None, **filters: Unpack[Filters]
    ) -> list[Capture]:
        async with self._client() as client:
            page = await client.requests(self.selector(endpoint), limit=1000, **filters)
            details = [await client.request(item["id"]) for item in reversed(page["requests"])]
        return [Capture.from_detail(d, self.prefix) for d in details]

    async def send(
        self,
        event: str | None,
        *,
        to: str,
        secret: str,
        body: str | bytes | None = None,
        overrides: dict[str, JSONValue] | None = None,
        scheme: str = "platform",
        schedule: Sequence[float] | None = None,
        time_scale: float = TIME_SCALE,
        timeout: float = 30.0,
        headers: dict[str, str] | Sequence[tuple[str, str]] | None = None,
        wait: bool = True,
        within: float | None = None,
    ) -> Delivery:
        order = _order(
            event, to, secret, body, overrides, scheme, schedule, time_scale, timeout, headers
        )
        deadline = time.monotonic() + _within(order, within)
        async with self._client() as client:
            if not wait:
                created = await client.deliver(**order)
                return Delivery.from_detail(await client.delivery(created["id"]))
            events = client.stream("/api/deliveries/stream")
            try:
                await anext(events)  # ready: subscribed, so no change can be missed
                created = await client.deliver(**order)
                finished = created["state"] in FINAL
                while not finished and time.monotonic() < deadline:
                    item = await anext(events)
                    if item.event == "resync":
                        raise DeliveryTimeout("The delivery stream fell behind.")
                    if item.event == "delivery":
                        finished = _is_final(item.json(), created["id"])
            except (StopAsyncIteration, httpx.ReadTimeout):
                finished = False
            finally:
                await events.aclose()
            if not finished:
                raise DeliveryTimeout(f"Delivery #{created['id']} did not finish in time.")
            return Delivery.from_detail(await client.delivery(created["id"]))
