"""The replay engine: send a built request through ``inspector.outbound``, record the exchange.

One ``Replayer`` per server (created in the lifespan; it is also the receiver's mirror
hook and proxy) and one per CLI ``replay`` run. Every exchange becomes a ``replays`` row
(``store/replays.py``) linked to the captured request: kind ``replay``, ``mirror`` or
``proxy``. Redirects are never followed; a response body is kept up to 1 MiB (a proxy relays
up to ``max_relay``). Network trouble never raises: it is the exchange's ``error``, worded by
``outbound.describe`` as everywhere else (``connection refused: ...``, ``timeout: ...``,
``refused: ...``).

Mirror and proxy add ``Via: 1.1 webhook-inspector-<id>``; a capture that carries this
engine's own token came back from one of its forwards and is not forwarded again.

Certificates of https:// targets are verified. What to trust comes from, first to last: the
replay's own options (``ca_file``, ``insecure``), the endpoint's settings, the engine's
``trust`` (``serve --ca-file``/``--insecure``); the local CA is trusted for this machine. An
exchange sent without verification is recorded as ``insecure``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets as _random
import time
from collections.abc import Awaitable
from pathlib import Path

from inspector.broadcast import Broadcaster
from inspector.capture import CapturedRequest, ResponseRecord, utc_timestamp
from inspector.endpoints import Endpoint
from inspector.errors import BadRequest, InspectorError
from inspector.outbound import (
    VERIFY,
    Exchange,
    GuardedBackend,
    Resolver,
    TlsOptions,
    exact_request,
    open_client,
    parse_target,
    send,
)
from inspector.receiver import plain
from inspector.replay.rebuild import (
    Outgoing,
    ReplayOptions,
    Source,
    build_request,
    relay_headers,
)
from inspector.shapes import ReplayResult
from inspector.signatures import SignatureConfig
from inspector.store import Store, replays
from inspector.store.requests import RequestDetail

log = logging.getLogger("inspector.replay")

RESPONSE_CAP = replays.RESPONSE_CAP


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
        trust: TlsOptions = VERIFY,
        own_ca: Path | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.hub = hub
        self.max_relay = max_relay
        self.max_pending = max_pending
        self.trust = trust
        self.backend = GuardedBackend(resolve)
        self.client = open_client(keepalive=8, backend=self.backend, trust=trust, own_ca=own_ca)
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
        self,
        out: Outgoing,
        *,
        timeout: float | None = None,
        cap: int = RESPONSE_CAP,
        whole: bool = False,
        tls: TlsOptions | None = None,
    ) -> Exchange:
        """Send ``out`` exactly; read at most ``cap`` body bytes (``whole``: an answer over
        ``cap`` is a failure). ``tls``: how the target's certificate is checked (default: the
        engine's ``trust``). Never raises for network trouble."""
        request = exact_request(out.method, out.base, out.target, out.headers, out.body)
        limit = self.timeout if timeout is None else timeout
        return await send(self.client, request, timeout=limit, cap=cap, whole=whole, tls=tls)

    def tls_for(self, *choices: TlsOptions | None) -> TlsOptions:
        """The TLS options that apply: each of ``choices`` (the most specific first) falls
        back on the next, and the last on the engine's ``trust``."""
        options = self.trust
        for choice in reversed(choices):
            if choice is not None:
                options = choice.merged(options)
        return options

    async def record(
        self,
        request_id: int,
        kind: str,
        out: Outgoing,
        exchange: Exchange,
        *,
        publish: bool = True,
        tls: TlsOptions = VERIFY,
    ) -> ReplayResult:
        """Store the exchange, tell the page, and return it as the API shows it."""
        insecure = tls.insecure and out.base.scheme == "https"
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
            insecure=insecure,
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
            "tls": exchange.tls,
            "insecure": insecure,
        }

    # -- replay ----------------------------------------------------------------------------

    async def replay(
        self,
        detail: RequestDetail,
        options: ReplayOptions,
        signature: SignatureConfig | None,
        endpoint_tls: TlsOptions | None = None,
    ) -> ReplayResult:
        """Replay a stored request (``captures.get_request``'s shape) to ``options.url``.

        ``signature`` is the endpoint's config, needed for ``resign``; ``endpoint_tls`` its
        TLS options (``options.tls`` wins over them). Raises ``BadRequest`` /
        ``TargetRefused`` before sending; network trouble is reported in the result.
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
        tls = self.tls_for(options.tls, endpoint_tls)
        exchange = await self.send(out, timeout=options.timeout, tls=tls)
        return await self.record(detail["id"], "replay", out, exchange, tls=tls)

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
        self._spawn(self._mirror(settings.forward_to, rec, request_id, self.tls_for(settings.tls)))

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def guarded() -> None:
            try:
                await coro
            except Exception:
                log.exception("mirror of a captured request failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mirror(
        self, url: str, rec: CapturedRequest, request_id: int, tls: TlsOptions
    ) -> None:
        try:
            out = self._forward_request(url, rec)
        except InspectorError as exc:
            await self._record_unsent(request_id, "mirror", url, rec, str(exc.detail))
            return
        async with self._slots:
            exchange = await self.send(out, tls=tls)
        await self.record(request_id, "mirror", out, exchange, tls=tls)

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
        tls = self.tls_for(endpoint.settings.tls)
        exchange = await self.send(out, cap=self.max_relay, whole=True, tls=tls)
        await self.record(request_id, "proxy", out, exchange, publish=False, tls=tls)
        if exchange.error is not None or exchange.status is None:
            status = 504 if exchange.timed_out else 502
            return plain(status, f"Bad gateway: forwarding to {url} failed: {exchange.error}\n")
        return ResponseRecord(exchange.status, relay_headers(exchange.headers), exchange.body)
