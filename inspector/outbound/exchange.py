"""One outbound exchange: send a request, bound it in time, read a capped answer, and say
what happened in an ``Exchange`` (never an exception)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import httpx

from inspector.capture import text_pairs, utc_timestamp
from inspector.outbound.failure import Failure, describe, redirect, too_large, where
from inspector.outbound.transport import TLS
from inspector.outbound.trust import TlsOptions

log = logging.getLogger("inspector.outbound")


@dataclass
class Exchange:
    """What happened when a request was sent: an answer, or the failure that stood in for
    it (or both: an answer whose body broke midway, a redirect a delivery does not take)."""

    sent_ts: float
    status: int | None = None
    elapsed_ms: float = 0.0
    failure: Failure | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    truncated: bool = False  # the answer had more than the ``cap`` bytes read
    tls: str | None = None  # the TLS version of an https:// exchange ("TLSv1.3")

    @property
    def error(self) -> str | None:
        """The failure's sentence, as stored and shown."""
        return None if self.failure is None else self.failure.text

    @property
    def sent_at(self) -> str:
        return utc_timestamp(self.sent_ts)

    @property
    def timed_out(self) -> bool:
        return self.failure is not None and self.failure.kind == "timeout"

    @property
    def ok(self) -> bool:
        """A complete 2xx answer in time (what the platform counts as delivered)."""
        return self.status is not None and 200 <= self.status < 300 and self.failure is None


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    timeout: float,
    cap: int,
    decoded: bool = False,
    whole: bool = False,
    redirects_fail: bool = False,
    tls: TlsOptions | None = None,
) -> Exchange:
    """Send ``request`` through ``client`` (from ``open_client``) and read at most ``cap``
    bytes of the answer. Never raises for network trouble: that is the exchange's failure.

    The whole exchange (connect, send, answer, the body read) must finish within
    ``timeout``; the rest of a larger body is not read. ``decoded`` undoes Content-Encoding
    (for a log a person reads); otherwise the body is the bytes on the wire (for relaying and
    replay records). ``whole``: an answer over ``cap`` is a failure (a proxy cannot relay
    part of one). ``redirects_fail``: a 3xx is a failure (the platform's rule). ``tls``: how
    an https:// target's certificate is checked, when not the client's default.
    """
    exchange = Exchange(sent_ts=time.time())
    target = where(request.url)
    extensions = {**request.extensions, "timeout": httpx.Timeout(timeout).as_dict()}
    if tls is not None:
        extensions[TLS] = tls
    request.extensions = extensions
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            response = await client.send(request, stream=True)
            try:
                exchange.status = response.status_code
                exchange.headers = text_pairs(response.headers.raw)
                if request.url.scheme == "https":
                    exchange.tls = _tls_version(response)
                exchange.body, exchange.truncated = await read_capped(
                    response, cap, decoded=decoded
                )
            finally:
                await response.aclose()
    except Exception as exc:
        exchange.failure = describe(exc, target, timeout, answered=exchange.status is not None)
        if exchange.failure.kind == "error":
            log.exception("unexpected error sending to %s", request.url)
    exchange.elapsed_ms = (time.perf_counter() - started) * 1000
    if exchange.failure is None and exchange.status is not None:
        if whole and exchange.truncated:
            exchange.failure = too_large(target, cap)
        elif redirects_fail and 300 <= exchange.status < 400:
            exchange.failure = redirect(exchange.headers)
    return exchange


def _tls_version(response: httpx.Response) -> str | None:
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    version = ssl_object.version() if ssl_object is not None else None
    return str(version) if version else None


async def read_capped(response: httpx.Response, cap: int, *, decoded: bool) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of a streamed response body, and whether there was more.

    ``decoded`` undoes Content-Encoding (for a log a person reads); otherwise the bytes are
    the ones on the wire (for relaying and replay records).
    """
    chunks: list[bytes] = []
    size = 0
    stream = response.aiter_bytes() if decoded else response.aiter_raw()
    async for chunk in stream:
        chunks.append(chunk[: cap - size])
        size += len(chunk)
        if size > cap:
            return b"".join(chunks), True
    return b"".join(chunks), False
