"""Defences for the control routes (the page and ``/api``); capture routes never pass here.

* **DNS rebinding:** a hostile page can make ``evil.example`` resolve to 127.0.0.1; the browser
  then sends ``Host: evil.example``. Only loopback names (and ``--allow-host``) are served;
  anything else gets 421.
* **CSRF:** a page the user visits can still *send* requests to localhost. Writes (POST, PUT,
  PATCH, DELETE) must be same-origin by ``Origin`` and ``Sec-Fetch-Site``, and must not use a
  content type an HTML form can send without a preflight. Otherwise 403.
* **Inert content:** every control response carries a strict CSP (no inline script), nosniff,
  no framing, no referrer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; frame-src 'self'; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def host_name(host: str) -> str:
    """``localhost:8765`` -> ``localhost``; ``[::1]:8765`` -> ``[::1]``; lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class ControlGuard:
    def __init__(self, app: ASGIApp, allow_hosts: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = LOOPBACK_NAMES | {host_name(h) for h in allow_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host_name(host) not in self.allowed:
            await _refuse(
                send,
                421,
                "misdirected_request",
                f"Host {host!r} is not allowed: this inspector answers to loopback names only. "
                "Start it with --allow-host NAME to serve another name.",
            )
            return
        if scope["method"] in WRITE_METHODS:
            problem = cross_origin_problem(headers, host)
            if problem is not None:
                await _refuse(send, 403, "cross_origin", problem)
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in SECURITY_HEADERS if h[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def cross_origin_problem(headers: dict[str, str], host: str) -> str | None:
    """Why a write must be refused as cross-site, or None if it is same-origin."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Cross-site write refused (Sec-Fetch-Site: {site})."
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != host.strip().lower():
            return f"Cross-origin write refused (Origin {origin!r} does not match Host {host!r})."
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in FORM_TYPES:
        return (
            f"Writes must not use {content_type}, which any web page can send: "
            "use application/json."
        )
    return None


async def _refuse(send: Send, status: int, error: str, detail: str) -> None:
    body = json.dumps({"error": error, "detail": detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
