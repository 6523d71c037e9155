"""The delivery engine: play the platform — send signed events, retry them on its schedule.

One engine serves the server (started in the lifespan; the API and the page submit to it)
and ``webhook-inspector send --wait`` (run in the CLI process against the same store).

A delivery, as the platform makes it:

* ``POST`` with ``Content-Type: application/json``, the exact body bytes, signed with
  ``X-Webhook-Signature: sha256=<hex>`` (or another scheme from ``inspector.signatures``);
  the whole exchange must finish within ``timeout`` (30 s). Redirects are not followed.
* 2xx is success. Any other status, a timeout, a connection error or a redirect is a
  failure, retried after each wait of ``schedule`` (60, 300, 1800 s), each multiplied by
  ``time_scale``; after the last retry fails the delivery is ``failed``. Waits are measured
  between attempt *starts* — the spacing a receiver sees and ``events.build_timeline``
  judges — so a retry whose wait has already passed (a slow failure under a small time
  scale) goes at once.
* Every attempt sends the same bytes; only timestamped schemes (Stripe, Slack, Standard
  Webhooks) sign again, and Standard Webhooks keeps one ``webhook-id`` for all attempts.

Durability: a delivery is committed before its first attempt, every finished attempt is
committed together with the next due time (``next_attempt_ts``), and the engine sleeps until
the soonest due delivery (or until ``notify()``). A restart resumes each delivery on time;
an attempt that was in flight when the process died was never logged, so it is sent again
(at-least-once, like the platform: receivers must be idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets as _random
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from inspector import __version__, catalog, events
from inspector.errors import BadRequest
from inspector.replay.targets import (
    GuardedBackend,
    GuardedTransport,
    TargetRefused,
    parse_target,
    read_capped,
)
from inspector.signatures import SCHEMES, sign
from inspector.store import Store, deliveries
from inspector.stream import Broadcaster

log = logging.getLogger("inspector.sender")

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
MAX_RETRIES = 20
MAX_WAIT = 7 * 86_400.0
MAX_TIME_SCALE = 100.0
MAX_BODY = 16 * 1024 * 1024
MAX_URL = 2048
RESPONSE_CAP = 64 * 1024  # response bytes kept per attempt
USER_AGENT = f"webhook-inspector/{__version__} (platform sender)"
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


# -- what to send ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRequest:
    """A validated delivery, ready to store (``prepare`` builds one)."""

    event: str
    url: str
    secret: str
    body: bytes
    scheme: str = "platform"
    schedule: tuple[float, ...] = events.DEFAULT_SCHEDULE
    timeout: float = DEFAULT_TIMEOUT
    time_scale: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()


def prepare(
    event: Any,
    url: Any,
    secret: Any,
    *,
    body: bytes | str | None = None,
    overrides: Iterable[tuple[str, Any]] | Mapping[str, Any] | None = None,
    scheme: Any = "platform",
    schedule: Any = events.DEFAULT_SCHEDULE,
    timeout: Any = DEFAULT_TIMEOUT,
    time_scale: Any = 1.0,
    headers: Any = (),
) -> DeliveryRequest:
    """Validate what the CLI or the API asked for; ``BadRequest`` says what is wrong.

    Without ``body`` the event's catalog sample is generated (``overrides`` applied) and
    ``event`` must be one of the four types. With ``body`` (bytes, or text sent as UTF-8)
    the bytes are sent as they are; ``event`` then only labels the log and defaults to the
    body's own ``"event"`` field.
    """
    if body is not None:
        if overrides:
            raise BadRequest("Overrides (set) edit generated bodies; a given body is sent as is.")
        raw = body.encode("utf-8") if isinstance(body, str) else body
        if not isinstance(raw, bytes):
            raise BadRequest("body: must be a string (sent byte-exact as UTF-8).")
        if len(raw) > MAX_BODY:
            raise BadRequest(f"body: at most {MAX_BODY} bytes, got {len(raw)}.")
        if event is None or event == "":
            event = events.event_type(raw, None) or "custom"
        if not isinstance(event, str) or len(event) > 200:
            raise BadRequest("event: must be a string of at most 200 characters.")
    else:
        event = catalog.check_event(event)
        raw = catalog.build(event, overrides or ())
    return DeliveryRequest(
        event=event,
        url=check_url(url),
        secret=check_secret(secret),
        body=raw,
        scheme=check_scheme(scheme),
        schedule=check_schedule(schedule),
        timeout=_number("timeout", timeout, 0.0, MAX_TIMEOUT),
        time_scale=_number("time_scale", time_scale, 0.0, MAX_TIME_SCALE),
        headers=check_headers(headers),
    )


def check_url(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("url: the receiver's URL is required (http:// or https://).")
    url: str = value.strip()
    if len(url) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise BadRequest("url: must be a URL without spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise BadRequest(f"url: {url[:100]!r} is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"url: must be an http:// or https:// URL with a host, got {url[:100]!r}.")
    if port == 0:
        raise BadRequest("url: port 0 cannot be connected to.")
    parse_target(url)  # refuses link-local and cloud-metadata literals, in every spelling
    return url


def check_secret(secret: Any) -> str:
    if not isinstance(secret, str) or not secret:
        raise BadRequest(
            "secret: the webhook secret to sign with is required (--secret or WEBHOOK_SECRET)."
        )
    return secret


def check_scheme(scheme: Any) -> str:
    if scheme not in SCHEMES:
        raise BadRequest(f"scheme: unknown {scheme!r}; use one of: {', '.join(SCHEMES)}.")
    return str(scheme)


def check_schedule(schedule: Any) -> tuple[float, ...]:
    if isinstance(schedule, str):
        schedule = [s for s in schedule.replace(" ", "").split(",") if s]
    if not isinstance(schedule, list | tuple) or len(schedule) > MAX_RETRIES:
        raise BadRequest(
            f"schedule: a list of 0 to {MAX_RETRIES} waits in seconds (60,300,1800), one per retry."
        )
    return tuple(_number("schedule", s, 0.0, MAX_WAIT, allow_zero=True) for s in schedule)


def check_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for pair in pairs or ():
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise BadRequest("headers: pairs of [name, value].")
        name, value = pair
        if not isinstance(name, str) or not name or not name.isascii() or ":" in name:
            raise BadRequest(f"headers: invalid header name {name!r}.")
        if name.lower() in _RESERVED_HEADERS:
            raise BadRequest(f"headers: {name} is set by the sender.")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise BadRequest(f"headers: invalid value for {name}.")
        out.append((name, value))
    return tuple(out)


def _number(name: str, value: Any, lo: float, hi: float, *, allow_zero: bool = False) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    ok = number is not None and math.isfinite(number) and number <= hi
    ok = ok and number is not None and (number >= lo if allow_zero else number > lo)
    if not ok or number is None:
        low = f"{lo:g} or more" if allow_zero else f"more than {lo:g}"
        raise BadRequest(f"{name}: must be a number of seconds, {low} and at most {hi:g}.")
    return number


# -- one attempt -----------------------------------------------------------------------------


@dataclass
class AttemptResult:
    """What happened to one POST: the status, or the error that stood in for it."""

    sent_ts: float
    status: int | None
    elapsed_ms: float
    error: str | None
    request_headers: list[tuple[str, str]]
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytes = b""
    response_truncated: bool = False

    @property
    def ok(self) -> bool:
        """The platform's notion of success: a complete 2xx answer in time."""
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    @property
    def timed_out(self) -> bool:
        return self.error is not None and self.error.startswith("timed out")

    def describe(self) -> str:
        """``"200 in 3 ms"``, ``"500 in 2 ms"``, ``"timed out after 30 s"``."""
        if self.status is None:
            return self.error or "no answer"
        text = f"{self.status} in {_ms(self.elapsed_ms)}"
        return f"{text} ({self.error})" if self.error else text

    def record(self, attempt: int) -> deliveries.AttemptRecord:
        return deliveries.AttemptRecord(
            attempt=attempt,
            sent_ts=self.sent_ts,
            status=self.status,
            elapsed_ms=self.elapsed_ms,
            error=self.error,
            request_headers=self.request_headers,
            response_headers=self.response_headers,
            response_body=self.response_body,
            response_truncated=self.response_truncated,
        )


def _ms(ms: float) -> str:
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def make_client() -> httpx.AsyncClient:
    """The platform's HTTP client: no redirects, no proxies from the environment, a fresh
    connection per attempt (as separate deliveries would be), and the same address guard as
    replays (never link-local or cloud-metadata addresses, checked when connecting)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(GuardedBackend(), keepalive=0),
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
    )


def signed_headers(
    scheme: str,
    secret: str,
    body: bytes,
    *,
    msg_id: str,
    extra: Sequence[tuple[str, str]] = (),
    timestamp: int | None = None,
) -> list[tuple[str, str]]:
    """The request headers of one attempt: content type, signature, then any extras."""
    signature = sign(scheme, secret, body, msg_id=msg_id, timestamp=timestamp)
    return [("Content-Type", "application/json"), *signature, *extra]


async def send_once(
    client: httpx.AsyncClient,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> AttemptResult:
    """POST ``body`` once and judge the answer; never raises for network trouble.

    The whole exchange (connect, send, response, up to ``RESPONSE_CAP`` bytes of body) must
    finish within ``timeout``; the rest of a large response is not read.
    """
    sent_ts = time.time()
    started = time.perf_counter()
    result = AttemptResult(sent_ts, None, 0.0, None, list(headers))
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST", url, content=body, headers=list(headers), timeout=timeout
            )
            response = await client.send(request, stream=True)
            try:
                result.status = response.status_code
                result.response_headers = [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw
                ]
                result.response_body, result.response_truncated = await read_capped(
                    response, RESPONSE_CAP, decoded=True
                )
            finally:
                await response.aclose()
    except (TimeoutError, httpx.TimeoutException) as exc:
        what = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
        if result.status is not None:
            what = "reading the answer's body"
        result.error = f"timed out after {timeout:g} s ({what})"
    except TargetRefused as exc:
        result.error = str(exc.detail)
    except httpx.ConnectError as exc:
        result.error = f"connection failed: {_reason(exc)}"
    except httpx.RemoteProtocolError as exc:
        result.error = f"connection closed without a complete answer: {_reason(exc)}"
    except httpx.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {_reason(exc)}"
    except OSError as exc:
        result.error = f"network error: {exc}"
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    if result.status is not None and 300 <= result.status < 400 and result.error is None:
        location = _header(result.response_headers, "location")
        where = location if location is not None else "(no Location header)"
        result.error = f"redirect to {where} not followed"
    return result


def _reason(exc: BaseException) -> str:
    """The most telling message: the socket error under httpx's ("connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return f"cannot resolve the host ({seen.strerror})"
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"{os.strerror(seen.errno).lower()} (errno {seen.errno})"
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if text else type(exc).__name__


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


# -- carriers --------------------------------------------------------------------------------


def cli_carrier() -> str:
    """The carrier name of this process when it sends in the foreground (``send --wait``)."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def carrier_alive(carrier: str) -> bool:
    """False only when ``carrier`` is certainly a process of this host that has exited."""
    kind, _, rest = carrier.partition(":")
    host, _, pid_text = rest.rpartition(":")
    if kind != "cli" or host != socket.gethostname() or not pid_text.isdigit():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) is not a probe there
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# -- the engine ------------------------------------------------------------------------------

Listener = Callable[[dict[str, Any]], None]


class DeliveryEngine:
    """Sends due deliveries and schedules their retries; one asyncio task plus one task per
    attempt in flight.

    ``carrier`` None is the server's engine: it sends deliveries nobody else carries and
    adopts those of ``send --wait`` processes that have exited. A CLI engine passes its own
    ``cli_carrier()`` and sends only the deliveries it created.

    Every change is reported as ``{"change", "delivery", "attempt"}`` — ``change`` one of
    ``created``, ``sending``, ``attempt``, ``succeeded``, ``failed``, ``cancelled`` — to the
    broadcaster (kind ``"delivery"``) and to ``listeners``.
    """

    def __init__(
        self,
        store: Store,
        *,
        hub: Broadcaster | None = None,
        carrier: str | None = None,
        client: httpx.AsyncClient | None = None,
        max_in_flight: int = 32,
        rescan: float = 10.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.carrier = carrier
        self.listeners: list[Listener] = []
        self.max_in_flight = max_in_flight
        self.rescan = rescan
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._backoff: dict[int, float] = {}
        self._next_adoption = 0.0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start sending: pending deliveries that are due go at once (resume)."""
        if self._client is None:
            self._client = make_client()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="delivery-engine")

    async def stop(self) -> None:
        """Stop at once. Attempts in flight are abandoned unlogged: they are sent again when
        an engine next runs on this store."""
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._in_flight.clear()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def notify(self) -> None:
        """Look at the schedule again now (a delivery was added or changed)."""
        self._wake.set()

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, request: DeliveryRequest) -> dict[str, Any]:
        """Store a new delivery (due now) and wake the engine; returns its item."""
        msg_id = "msg_" + _random.token_hex(12)
        # The key a receiver (and our capture route) will group the attempts under.
        id_headers = [("webhook-id", msg_id)] if request.scheme == "standard" else []
        key = events.event_key(id_headers, request.body)
        new = deliveries.NewDelivery(
            event=request.event,
            event_key=key,
            url=request.url,
            scheme=request.scheme,
            secret=request.secret,
            headers=request.headers,
            body=request.body,
            schedule=request.schedule,
            timeout=request.timeout,
            time_scale=request.time_scale,
            msg_id=msg_id,
            carrier=self.carrier,
            created_ts=time.time(),
        )
        created = await self.store.write(deliveries.insert_delivery, new)
        self._emit("created", created, None)
        self.notify()
        return created

    async def cancel(self, delivery_id: int) -> dict[str, Any] | None:
        """Stop a delivery's retries; an attempt this engine has in flight is abandoned."""
        found = await self.store.write(deliveries.cancel_delivery, delivery_id, time.time())
        if found is not None and found["state"] == "cancelled":
            task = self._in_flight.get(delivery_id)
            if task is not None:
                task.cancel()
            self._emit("cancelled", found, None)
        return found

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self._dispatch()
            except Exception:
                log.exception("the delivery engine could not read its schedule")
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start every due delivery; return how long to sleep until the next one is due."""
        if self.carrier is None and time.monotonic() >= self._next_adoption:
            # Not on every wake: the read would delay deliveries that are due right now.
            self._next_adoption = time.monotonic() + self.rescan
            await self._adopt_orphans()
        room = self.max_in_flight - len(self._in_flight)
        rows = await self.store.read(
            deliveries.due_schedule, self.carrier, len(self._in_flight) + max(room, 0) + 1
        )
        now = time.time()
        monotonic = time.monotonic()
        wait = self.rescan
        for delivery_id, due in rows:
            if delivery_id in self._in_flight:
                continue
            if self._backoff.get(delivery_id, 0.0) > monotonic:
                wait = min(wait, self._backoff[delivery_id] - monotonic)
                continue
            if due > now:
                wait = min(wait, due - now)
                break
            if len(self._in_flight) >= self.max_in_flight:
                break  # a finishing attempt wakes us
            self._in_flight[delivery_id] = asyncio.get_running_loop().create_task(
                self._attempt(delivery_id), name=f"delivery-{delivery_id}"
            )
        return max(wait, 0.0)

    async def _adopt_orphans(self) -> None:
        carriers = await self.store.read(deliveries.foreign_carriers)
        gone = [c for c in carriers if not carrier_alive(c)]
        if gone:
            count = await self.store.write(deliveries.adopt, gone)
            log.info("resumed %d delivery(ies) left by stopped send processes", count)

    async def _attempt(self, delivery_id: int) -> None:
        try:
            # One read for the row and its item: the time from due to sent stays small.
            found = await self.store.read(deliveries.load_pending, delivery_id)
            if found is None:
                return
            pending, item = found
            if pending.state != "pending" or pending.carrier != self.carrier:
                return
            await self._send(pending, item)
            self._backoff.pop(delivery_id, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery %d: attempt failed unexpectedly; retrying in 5 s", delivery_id)
            self._backoff[delivery_id] = time.monotonic() + 5.0
        finally:
            self._in_flight.pop(delivery_id, None)
            self._wake.set()

    async def _send(self, pending: deliveries.Pending, item: dict[str, Any]) -> None:
        assert self._client is not None
        number = pending.attempts + 1
        headers = signed_headers(
            pending.scheme,
            pending.secret,
            pending.body,
            msg_id=pending.msg_id,
            extra=pending.headers,
        )
        self._emit("sending", item, {"attempt": number, "url": pending.url})
        result = await send_once(
            self._client, pending.url, headers, pending.body, timeout=pending.timeout
        )
        if result.ok:
            state, next_ts = "succeeded", None
        elif number > len(pending.schedule):
            state, next_ts = "failed", None
        else:
            state = "pending"
            next_ts = result.sent_ts + pending.schedule[number - 1] * pending.time_scale
        recorded = await self.store.write(
            deliveries.record_attempt, pending.id, result.record(number), state, next_ts
        )
        if recorded is None:
            return  # cancelled meanwhile, or recorded by another engine
        updated, attempt = recorded
        self._emit("attempt", updated, attempt)
        if state != "pending":
            self._emit(state, updated, attempt)

    def _emit(self, change: str, item: dict[str, Any], attempt: dict[str, Any] | None) -> None:
        data = {"change": change, "delivery": item, "attempt": attempt}
        if self.hub is not None:
            self.hub.publish("delivery", data, id=item["id"])
        for listener in self.listeners:
            try:
                listener(data)
            except Exception:
                log.exception("a delivery listener failed")


def describe_schedule(schedule: Sequence[float], time_scale: float) -> str:
    """``"retries after 60 s, 300 s, 1800 s"`` (scaled), or ``"no retries"``."""
    if not schedule:
        return "no retries"
    waits = ", ".join(f"{s * time_scale:g} s" for s in schedule)
    return f"retries after {waits}"
