"""The replay engine: send a built request with httpx, record the exchange.

One ``Replayer`` per server (created in the lifespan; it is also the receiver's mirror
hook and proxy) and one per CLI ``replay`` run. Every exchange becomes a ``replays`` row
(``store/replays.py``) linked to the captured request: kind ``replay``, ``mirror`` or
``proxy``. Redirects are never followed; a response body is kept up to 1 MiB (a proxy relays
up to ``max_relay``). Network trouble never raises: it is the exchange's ``error``, one
sentence led by its kind (``connection refused: ...``, ``timeout: ...``, ``refused: ...``).

Mirror and proxy add ``Via: 1.1 webhook-inspector-<id>``; a capture that carries this
engine's own token came back from one of its forwards and is not forwarded again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets as _random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from inspector.broadcast import Broadcaster
from inspector.capture import CapturedRequest, ResponseRecord, text_pairs, utc_timestamp
from inspector.endpoints import Endpoint
from inspector.errors import BadRequest, InspectorError
from inspector.receiver import plain
from inspector.replay.rebuild import (
    Outgoing,
    ReplayOptions,
    Source,
    build_request,
    relay_headers,
)
from inspector.replay.targets import (
    TARGET,
    GuardedBackend,
    GuardedTransport,
    Resolver,
    parse_target,
    read_capped,
)
from inspector.signatures import SignatureConfig
from inspector.store import Store, replays

log = logging.getLogger("inspector.replay")

RESPONSE_CAP = replays.RESPONSE_CAP


# -- the engine ------------------------------------------------------------------------------


@dataclass
class Exchange:
    """What happened when a request was sent: an answer, or an error (or both: an answer
    whose body failed midway)."""

    sent_at: str
    status: int | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    truncated: bool = False
    timed_out: bool = False


def describe(exc: BaseException, out: Outgoing, timeout: float) -> str:
    """One clear sentence for a failed exchange, led by its kind."""
    where = out.base.netloc.decode("ascii")
    text = str(exc) or type(exc).__name__
    if isinstance(exc, InspectorError):
        return str(exc.detail)
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return f"timeout: no complete answer from {where} within {timeout:g} s"
    if isinstance(exc, httpx.ConnectError):
        cause = _root_os_error(exc)
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused: nothing accepts connections at {where}"
        if "resolve" in text:
            return f"name not resolved: {text}"
        return f"connect failed: {where} ({cause or text})"
    if isinstance(exc, httpx.ProtocolError):
        return f"protocol error: {where} answered with invalid HTTP ({text})"
    if isinstance(exc, httpx.HTTPError):
        return f"network error: {where} ({text})"
    return f"error: {type(exc).__name__}: {text}"


def _root_os_error(exc: BaseException) -> OSError | None:
    """The innermost ``OSError`` behind a connect error (anyio wraps the real one)."""
    found: OSError | None = None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            found = seen
        seen = seen.__cause__ or seen.__context__
    return found


def _loop(rec: CapturedRequest, via: str) -> bool:
    return any(n == "via" and via in v for n, v in rec.headers)


class Replayer:
    """Sends captured requests to your app and records each exchange.

    One per server (created in the lifespan; also the receiver's mirror hook and proxy) and
    one per CLI ``replay`` run. ``hub`` (server only) gets an "update" for the request after
    each recorded replay or mirror.
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = 30.0,
        hub: Broadcaster | None = None,
        max_relay: int = 10 * 1024 * 1024,
        concurrency: int = 8,
        max_pending: int = 256,
        resolve: Resolver | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.hub = hub
        self.max_relay = max_relay
        self.max_pending = max_pending
        self.backend = GuardedBackend(resolve)
        self.client = httpx.AsyncClient(
            transport=GuardedTransport(self.backend), follow_redirects=False, trust_env=False
        )
        # Added to mirrored and proxied requests; seeing our own marks a forwarding loop.
        self.via = f"1.1 webhook-inspector-{_random.token_hex(4)}"
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def aclose(self, grace: float = 1.0) -> None:
        """Give background mirrors ``grace`` seconds, cancel the rest, close connections."""
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.client.aclose()

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self, out: Outgoing, *, timeout: float | None = None, cap: int = RESPONSE_CAP
    ) -> Exchange:
        """Send ``out``; read at most ``cap`` body bytes. Never raises for network trouble."""
        limit = self.timeout if timeout is None else timeout
        exchange = Exchange(sent_at=utc_timestamp(time.time()))
        started = time.perf_counter()
        try:
            request = httpx.Request(
                out.method,
                out.base,
                headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in out.headers],
                stream=httpx.ByteStream(out.body),
                extensions={"timeout": httpx.Timeout(limit).as_dict(), TARGET: out.target},
            )
            request.method = out.method  # httpx upper-cases; send the method as captured
            async with asyncio.timeout(limit):
                response = await self.client.send(request, stream=True)
                try:
                    exchange.status = response.status_code
                    exchange.headers = text_pairs(response.headers.raw)
                    exchange.body, exchange.truncated = await read_capped(
                        response, cap, decoded=False
                    )
                finally:
                    await response.aclose()
        except Exception as exc:
            exchange.timed_out = isinstance(exc, httpx.TimeoutException | TimeoutError)
            exchange.error = describe(exc, out, limit)
            if not isinstance(exc, InspectorError | httpx.HTTPError | TimeoutError):
                log.exception("unexpected error sending to %s", out.url)
        exchange.elapsed_ms = (time.perf_counter() - started) * 1000
        return exchange

    async def record(
        self,
        request_id: int,
        kind: str,
        out: Outgoing,
        exchange: Exchange,
        *,
        publish: bool = True,
    ) -> dict[str, Any]:
        """Store the exchange, tell the page, and return it as the API shows it."""
        rec = replays.ReplayRecord(
            request_id=request_id,
            kind=kind,
            url=out.url,
            method=out.method,
            request_headers=out.headers,
            request_body=out.body if out.edited else None,
            sent_at=exchange.sent_at,
            status=exchange.status,
            elapsed_ms=exchange.elapsed_ms,
            error=exchange.error,
            response_headers=exchange.headers,
            response_body=exchange.body,
            response_truncated=exchange.truncated,
        )
        replay_id = await self.store.write(replays.insert_replay, rec)
        if publish and self.hub is not None and self.hub.has_subscribers:
            item = await self.store.read(replays.request_item, request_id)
            if item is not None:
                self.hub.publish("update", item, id=request_id)
        body = exchange.body[:RESPONSE_CAP]
        return {
            "id": replay_id,
            "request_id": request_id,
            "kind": kind,
            "url": out.url,
            "method": out.method,
            "sent_at": exchange.sent_at,
            "status": exchange.status,
            "elapsed_ms": exchange.elapsed_ms,
            "error": exchange.error,
            "edited": out.edited,
            "response_size": len(body),
            "response_truncated": exchange.truncated or len(exchange.body) > RESPONSE_CAP,
            "request_headers": out.headers,
            "headers": exchange.headers,
            "body_base64": base64.b64encode(body).decode("ascii"),
        }

    # -- replay ----------------------------------------------------------------------------

    async def replay(
        self,
        detail: Mapping[str, Any],
        options: ReplayOptions,
        signature: SignatureConfig | None,
    ) -> dict[str, Any]:
        """Replay a stored request (``captures.get_request``'s shape) to ``options.url``.

        ``signature`` is the endpoint's config, needed for ``resign``. Raises ``BadRequest``
        / ``TargetRefused`` before sending; network trouble is reported in the result.
        """
        base = parse_target(options.url)
        source = Source.from_detail(detail)
        if source.truncated and options.body is None:
            raise BadRequest(
                f"Request {detail['id']} was not captured in full ({detail['note']}): "
                "there is no body to replay; send one with body_base64 or body_text.",
                error="truncated",
            )
        if options.resign and signature is None:
            raise BadRequest("resign: no signature settings for this endpoint.", error="no_secret")
        out = build_request(
            source,
            base,
            method=options.method,
            headers=options.headers,
            body=options.body,
            signature=signature if options.resign else None,
        )
        exchange = await self.send(out, timeout=options.timeout)
        return await self.record(detail["id"], "replay", out, exchange)

    # -- mirror and proxy ------------------------------------------------------------------

    def _forward_request(self, url: str, rec: CapturedRequest) -> Outgoing:
        if _loop(rec, self.via):
            raise BadRequest(
                f"not forwarded: loop: this request was forwarded by this inspector ({self.via})"
                " and came back; check forward_to.",
                error="loop",
            )
        if rec.truncated:
            raise BadRequest(f"not forwarded: the body was not captured in full ({rec.note})")
        out = build_request(Source.from_capture(rec), parse_target(url, "forward_to"))
        out.headers.append(("via", self.via))
        return out

    async def _record_unsent(
        self, request_id: int, kind: str, url: str, rec: CapturedRequest, error: str
    ) -> None:
        sent_at = utc_timestamp(time.time())
        record = replays.ReplayRecord(request_id, kind, url, rec.method, [], None, sent_at)
        record.error = error
        await self.store.write(replays.insert_replay, record)

    def after_capture(self, endpoint: Endpoint, rec: CapturedRequest, request_id: int) -> None:
        """The receiver's hook: start a mirror in the background (never delays the answer)."""
        settings = endpoint.settings
        if not settings.forward_to or settings.forward_mode != "mirror":
            return
        if len(self._tasks) >= self.max_pending:
            error = f"not forwarded: {len(self._tasks)} forwards already pending"
            self._spawn(self._record_unsent(request_id, "mirror", settings.forward_to, rec, error))
            return
        self._spawn(self._mirror(settings.forward_to, rec, request_id))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("mirror of a captured request failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror(self, url: str, rec: CapturedRequest, request_id: int) -> None:
        try:
            out = self._forward_request(url, rec)
        except InspectorError as exc:
            await self._record_unsent(request_id, "mirror", url, rec, str(exc.detail))
            return
        async with self._slots:
            exchange = await self.send(out)
        await self.record(request_id, "mirror", out, exchange)

    async def proxy(
        self, endpoint: Endpoint, rec: CapturedRequest, request_id: int
    ) -> ResponseRecord:
        """The receiver's proxy hook: send to ``forward_to`` and return the answer to relay
        (502 if the app cannot be reached, 504 on timeout, 508 on a loop)."""
        url = endpoint.settings.forward_to
        assert url is not None
        try:
            out = self._forward_request(url, rec)
        except InspectorError as exc:
            await self._record_unsent(request_id, "proxy", url, rec, str(exc.detail))
            status = 508 if exc.error == "loop" else 502
            return plain(status, f"Bad gateway: {exc.detail}\n")
        exchange = await self.send(out, cap=self.max_relay)
        if exchange.truncated and exchange.error is None:
            exchange.error = f"the app's answer is over {self.max_relay} bytes: not relayed"
        await self.record(request_id, "proxy", out, exchange, publish=False)
        if exchange.error is not None or exchange.status is None:
            status = 504 if exchange.timed_out else 502
            return plain(status, f"Bad gateway: {url} did not answer: {exchange.error}\n")
        return ResponseRecord(exchange.status, relay_headers(exchange.headers), exchange.body)
