"""One sentence for every way an outbound exchange can fail, the same for every caller.

Replay, mirror, proxy, a delivery attempt and a ``check`` row all describe their failures
here, so the same trouble reads the same everywhere. Each sentence is led by its kind:

    connection refused: nothing listens on 127.0.0.1:3000
    connect failed: 10.9.9.9:80 (no route to host)
    TLS failed: example.com:443 (certificate verify failed: self-signed certificate)
    name not resolved: app.test (name or service not known)
    refused: 169.254.169.254 is a link-local/cloud-metadata address (app.test resolves to it)
    timeout: no connection to 127.0.0.1:3000 within 30 s
    timeout: no answer from 127.0.0.1:3000 within 30 s
    timeout: the answer from 127.0.0.1:3000 was not complete within 30 s
    connection closed: 127.0.0.1:3000 closed the connection without answering
    connection closed: 127.0.0.1:3000 closed the connection before the answer was complete
    connection reset: 127.0.0.1:3000 dropped the connection (connection reset by peer)
    not HTTP: 127.0.0.1:3000 did not answer with valid HTTP (illegal status line: ...)
    too large: the answer from 127.0.0.1:3000 is over 10485760 bytes
    redirect to /elsewhere not followed
"""

from __future__ import annotations

import errno
import os
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from inspector.capture import header_value
from inspector.errors import InspectorError
from inspector.outbound.guard import NameNotResolved, TargetRefused

Kind = Literal[
    "refused_target",  # the guard refused the address: nothing was contacted
    "unresolved",  # the host name has no address
    "connection_refused",  # nothing listens there
    "connect_failed",  # any other reason no connection was made
    "tls",  # the TLS handshake failed (the certificate, or not TLS at all)
    "timeout",
    "closed",  # the peer closed the connection before a complete answer
    "reset",  # the peer reset (or broke) the connection
    "not_http",  # the peer answered with something that is not HTTP/1.1
    "too_large",  # the answer is larger than the caller takes
    "redirect",  # a 3xx, for callers that do not accept one (deliveries)
    "network",  # any other transport error
    "error",  # a bug of ours: logged with its traceback
]

# The connection was made (and the target heard the request) before it broke.
BROKEN: frozenset[Kind] = frozenset({"closed", "reset", "not_http"})


@dataclass(frozen=True)
class Failure:
    """Why an exchange failed: ``kind`` for code to branch on, ``text`` for people."""

    kind: Kind
    text: str

    def __str__(self) -> str:
        return self.text


def where(url: httpx.URL) -> str:
    """``host:port`` of a target, the port spelled out (``example.com:443``)."""
    host = url.host
    if ":" in host:
        host = f"[{host}]"
    port = url.port or (443 if url.scheme == "https" else 80)
    return f"{host}:{port}"


def describe(exc: BaseException, target: str, timeout: float, *, answered: bool = False) -> Failure:
    """The failure an exception stands for. ``target`` is ``where(url)``; ``answered`` says
    the status line and headers had arrived (a timeout or a break then hit the body)."""
    if isinstance(exc, TargetRefused):
        return Failure("refused_target", str(exc.detail))
    if isinstance(exc, InspectorError):
        return Failure("error", str(exc.detail))
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return _timeout(exc, target, timeout, answered)
    chain = list(_chain(exc))
    unresolved = next((e for e in chain if isinstance(e, NameNotResolved)), None)
    if unresolved is not None:
        return Failure("unresolved", f"name not resolved: {unresolved.host} ({unresolved.reason})")
    tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if tls is not None:  # before errno: an SSLError's errno is OpenSSL's, not the system's
        return Failure("tls", f"TLS failed: {target} ({_tls_reason(tls)})")
    os_error = next((e for e in chain if isinstance(e, OSError) and e.errno), None)
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        if isinstance(os_error, ConnectionRefusedError):
            return Failure("connection_refused", f"connection refused: nothing listens on {target}")
        reason = _strerror(os_error) if os_error is not None else text
        return Failure("connect_failed", f"connect failed: {target} ({reason})")
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnected" in text or "peer closed" in text:
            when = "before the answer was complete" if answered else "without answering"
            return Failure("closed", f"connection closed: {target} closed the connection {when}")
        return Failure("not_http", f"not HTTP: {target} did not answer with valid HTTP ({text})")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | ConnectionError):
        reason = _strerror(os_error) if os_error is not None else text
        return Failure("reset", f"connection reset: {target} dropped the connection ({reason})")
    if isinstance(exc, httpx.TransportError | OSError):
        return Failure("network", f"network error: {target} ({text})")
    return Failure("error", f"error: {type(exc).__name__}: {text}")


def redirect(headers: Sequence[tuple[str, str]]) -> Failure:
    """A 3xx answer, for callers that count one as a failure (redirects are never followed)."""
    location = header_value(headers, "location")
    return Failure("redirect", f"redirect to {location or '(no Location header)'} not followed")


def too_large(target: str, cap: int) -> Failure:
    """An answer over ``cap`` bytes, for callers that need all of it (a proxy relaying it)."""
    return Failure("too_large", f"too large: the answer from {target} is over {cap} bytes")


def _timeout(exc: BaseException, target: str, timeout: float, answered: bool) -> Failure:
    within = f"within {timeout:g} s"
    if answered:
        return Failure("timeout", f"timeout: the answer from {target} was not complete {within}")
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure("timeout", f"timeout: no connection to {target} {within}")
    return Failure("timeout", f"timeout: no answer from {target} {within}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything behind it: causes, contexts, members of exception groups
    (anyio wraps the socket's own error)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        for inner in (current.__cause__, current.__context__):
            if inner is not None:
                todo.append(inner)


def _tls_reason(exc: ssl.SSLError) -> str:
    """``"certificate verify failed: self-signed certificate"``, ``"wrong version number"``."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    return str(exc)


def _strerror(exc: OSError) -> str:
    """``"no route to host"``: the system's words for the error, lower-cased."""
    if exc.errno is not None and exc.errno in errno.errorcode:
        return os.strerror(exc.errno).lower()
    return str(exc)
