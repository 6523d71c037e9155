"""Defences for the control routes (the page and ``/api``); capture routes never pass here.

* **DNS rebinding:** a hostile page can make ``evil.example`` resolve to 127.0.0.1; the browser
  then sends ``Host: evil.example``. Only loopback names (and ``--allow-host``) are served;
  anything else gets 421.
* **CSRF:** a page the user visits can still *send* requests to localhost. Writes (POST, PUT,
  PATCH, DELETE) must be same-origin by ``Origin`` and ``Sec-Fetch-Site``, and must not use a
  content type an HTML form can send without a preflight. Otherwise 403.
* **Inert content:** every control response carries a strict CSP (no inline script; scripts
  and styles only from ``/static/``, so a capture answer under ``/h/`` — same origin, any body
  — can never be loaded as one), nosniff, no framing, no referrer.
* **A token** (``access.py``), when in effect: checked after the Host and before the CSRF
  checks. It also widens the Host allow-list to the address the server is bound to (any IP
  literal when bound to all addresses) and the machine's name: a rebinding page's own name
  still gets 421, and it could not have the token's cookie anyway.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from inspector.access import Access, refuse

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")

CSP = (
    "default-src 'none'; script-src {static}; style-src {static}; img-src 'self' data:;"
    " connect-src 'self'; font-src 'self'; frame-src 'self'; form-action 'self';"
    " base-uri 'none'; frame-ancestors 'none'"
)
WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})


@functools.lru_cache(maxsize=64)
def csp_header(scheme: str, host: str) -> tuple[bytes, bytes]:
    """The page's policy for the origin it was reached at: scripts and styles from that
    origin's ``/static/`` only ('self' would allow every path, ``/h/...`` included)."""
    policy = CSP.format(static=f"{scheme}://{host}/static/")
    return (b"content-security-policy", policy.encode("latin-1"))


SECURITY_HEADERS = [
    (b"content-security-policy", CSP.format(static="'self'").encode()),
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


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def bound_names(bound: str) -> frozenset[str]:
    """Host names that reach a server bound to ``bound``: the address itself, or, for all
    addresses, the machine's name (IP literals are judged by ``ControlGuard``)."""
    if bound in WILDCARDS:
        machine = socket.gethostname().lower()
        return frozenset({machine, machine.split(".", 1)[0]} - {""})
    name = bound.lower()
    return frozenset({f"[{name.strip('[]')}]" if ":" in name else name})


class ControlGuard:
    def __init__(
        self,
        app: ASGIApp,
        allow_hosts: Iterable[str] = (),
        token: str | None = None,
        bound: str | None = None,
    ) -> None:
        self.app = app
        self.allowed = LOOPBACK_NAMES | {host_name(h) for h in allow_hosts}
        self.access = Access(token) if token else None
        self.any_address = False
        if self.access is not None and bound is not None:
            self.allowed |= bound_names(bound)
            # No rebinding attack comes by an IP literal: its page could only be our origin.
            self.any_address = bound in WILDCARDS

    def host_allowed(self, name: str) -> bool:
        return name in self.allowed or (self.any_address and is_ip_literal(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host_name(host)):
            names = "loopback names" if self.access is None else "its own names"
            await _refuse(
                send,
                421,
                "misdirected_request",
                f"Host {host!r} is not allowed: this inspector answers to {names} only. "
                "Start it with --allow-host NAME to serve another name.",
            )
            return
        secure = [
            csp_header(scope.get("scheme", "http"), host.strip().lower()),
            *SECURITY_HEADERS[1:],
        ]
        if self.access is not None and not await self._admitted(scope, headers, send, secure):
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
                    *(h for h in secure if h[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _admitted(
        self, scope: Scope, headers: dict[str, str], send: Send, secure: list[tuple[bytes, bytes]]
    ) -> bool:
        """Whether the request carries the token; if not, answer it (login or 401)."""
        access = self.access
        assert access is not None
        api = scope["path"].startswith("/api")
        login = None if api else access.login_attempt(scope)
        if login is not None:
            matched, target = login
            if matched:
                await access.log_in(scope, send, target, secure)
            else:
                await refuse(send, scope, api=False, wrong=True, extra=secure)
            return False
        if access.allows(scope, headers):
            return True
        await refuse(send, scope, api=api, wrong=False, extra=secure)
        return False


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
