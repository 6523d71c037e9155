"""One attempt: sign, POST once, and judge the answer as the platform would."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from inspector import __version__
from inspector.capture import header_value, text_pairs
from inspector.replay.targets import GuardedBackend, GuardedTransport, TargetRefused, read_capped
from inspector.sender.delivery import DEFAULT_TIMEOUT
from inspector.signatures import sign
from inspector.store import deliveries

RESPONSE_CAP = 64 * 1024  # response bytes kept per attempt
USER_AGENT = f"webhook-inspector/{__version__} (platform sender)"


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
                result.response_headers = text_pairs(response.headers.raw)
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
        location = header_value(result.response_headers, "location")
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
