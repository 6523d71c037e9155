"""One attempt: sign, POST once through ``inspector.outbound``, judge the answer as the
platform would, and log it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx

from inspector import __version__
from inspector.outbound import Exchange, Resolver, TlsOptions, open_client, send
from inspector.sender.delivery import DEFAULT_TIMEOUT
from inspector.signatures import sign
from inspector.store import deliveries

RESPONSE_CAP = 64 * 1024  # response bytes kept per attempt
USER_AGENT = f"webhook-inspector/{__version__} (platform sender)"


def make_client(
    resolve: Resolver | None = None, *, own_ca: Path | None = None
) -> httpx.AsyncClient:
    """The platform's HTTP client: ``outbound.open_client`` with a fresh connection per
    attempt (as separate deliveries would be) and the sender's User-Agent. ``own_ca``: the
    inspector's local CA, trusted for receivers on this machine."""
    return open_client(
        keepalive=0, headers={"user-agent": USER_AGENT}, resolve=resolve, own_ca=own_ca
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
    tls: TlsOptions | None = None,
) -> Exchange:
    """POST ``body`` once and judge the answer; never raises for network trouble.

    The whole exchange (connect, send, response, up to ``RESPONSE_CAP`` bytes of the decoded
    body) must finish within ``timeout``; the rest of a large response is not read. A 3xx
    is a failure (redirects are not followed); ``Exchange.ok`` is the platform's success.
    ``tls`` says how an https:// receiver's certificate is checked (default: verified
    against the public CAs; see ``outbound.TlsOptions``).
    """
    request = client.build_request("POST", url, content=body, headers=list(headers))
    return await send(
        client,
        request,
        timeout=timeout,
        cap=RESPONSE_CAP,
        decoded=True,
        redirects_fail=True,
        tls=tls,
    )


def attempt_record(
    number: int, headers: Sequence[tuple[str, str]], result: Exchange
) -> deliveries.AttemptRecord:
    """The log row of attempt ``number``, sent with ``headers``."""
    return deliveries.AttemptRecord(
        attempt=number,
        sent_ts=result.sent_ts,
        status=result.status,
        elapsed_ms=result.elapsed_ms,
        error=result.error,
        request_headers=list(headers),
        response_headers=result.headers,
        response_body=result.body,
        response_truncated=result.truncated,
    )
