"""One sentence for every way an outbound exchange can fail, the same for every caller.

Replay, mirror, proxy, a delivery attempt and a ``check`` row all describe their failures
here, so the same trouble reads the same everywhere. Each sentence is led by its kind:

    connection refused: nothing listens on 127.0.0.1:3000
    connect failed: 10.9.9.9:80 (no route to host)
    TLS: certificate verify failed for example.com:443: not issued by a trusted CA
      (self-signed certificate) — pass --ca-file with the CA that issued it, or --insecure
      (``tls_failure`` has the others: expired, wrong name, plain HTTP, no common version...)
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
from inspector.outbound.trust import CaFileError

Kind = Literal[
    "refused_target",  # the guard refused the address: nothing was contacted
    "unresolved",  # the host name has no address
    "connection_refused",  # nothing listens there
    "connect_failed",  # any other reason no connection was made
    "tls",  # the TLS handshake failed (the certificate, or not TLS at all), or our CA file
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
    if isinstance(exc, CaFileError):
        return Failure("tls", f"TLS: {exc} — pass --ca-file a PEM file of CA certificates")
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return _timeout(exc, target, timeout, answered)
    chain = list(_chain(exc))
    unresolved = next((e for e in chain if isinstance(e, NameNotResolved)), None)
    if unresolved is not None:
        return Failure("unresolved", f"name not resolved: {unresolved.host} ({unresolved.reason})")
    tls = next((e for e in chain if isinstance(e, ssl.SSLError)), None)
    if tls is not None:  # before errno: an SSLError's errno is OpenSSL's, not the system's
        return Failure("tls", tls_failure(tls, target))
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


# OpenSSL's verify codes (``X509_V_ERR_*``) that mean: no trusted CA vouches for it.
_UNTRUSTED = {2, 18, 19, 20, 21, 27}
_EXPIRED, _NOT_YET_VALID = 10, 9
_WRONG_NAME = {62, 63, 64}  # host name, email, IP address mismatch
# OpenSSL reasons for "this is not TLS": a plain-HTTP answer read as a TLS record.
_NOT_TLS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"}
# Reasons for "we could not agree": versions, ciphers, or a server that wants more.
_NO_AGREEMENT = {
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
}
_WANTS_CLIENT_CERT = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_BAD_CERTIFICATE"}

TRUST_HINT = "pass --ca-file with the CA that issued it, or --insecure"


def tls_failure(exc: ssl.SSLError, target: str) -> str:
    """One sentence for a failed TLS handshake: what went wrong, then what to do.

    * untrusted: ``TLS: certificate verify failed for H:P: not issued by a trusted CA
      (self-signed certificate) — pass --ca-file with the CA that issued it, or --insecure``
    * expired: ``TLS: certificate verify failed for H:P: the certificate has expired —
      renew it on the server, or pass --insecure``
    * wrong name: ``TLS: certificate verify failed for H:P: the certificate is not valid for
      H (...) — use a URL with a name it covers, issue one that covers H, or pass --insecure``
    * plain HTTP: ``TLS: H:P answered in plain HTTP, not TLS — use http:// for it, or the
      server's HTTPS port``
    * no agreement: ``TLS: handshake with H:P failed (...): no TLS version or cipher in
      common — check the server's TLS settings (the inspector speaks TLS 1.2 and 1.3)``
    """
    reason = str(exc.reason or "").upper()
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        said = _said(exc.verify_message or str(exc))
        failed = f"TLS: certificate verify failed for {target}"
        if code in _UNTRUSTED:
            return f"{failed}: not issued by a trusted CA ({said}) — {TRUST_HINT}"
        if code == _EXPIRED:
            renew = "renew it on the server, or pass --insecure"
            return f"{failed}: the certificate has expired — {renew}"
        if code == _NOT_YET_VALID:
            return (
                f"{failed}: the certificate is not valid yet — check the clocks of the server "
                "and this machine, or pass --insecure"
            )
        if code in _WRONG_NAME:
            host = _host(target)
            return (
                f"{failed}: the certificate is not valid for {host} ({said}) — use a URL with "
                f"a name it covers, issue one that covers {host}, or pass --insecure"
            )
        return f"{failed} ({said}) — {TRUST_HINT}"
    if reason in _NOT_TLS:
        return (
            f"TLS: {target} answered in plain HTTP, not TLS — use http:// for it, or the "
            "server's HTTPS port"
        )
    said = _said(reason.replace("_", " ").lower() if reason else str(exc))
    if reason in _NO_AGREEMENT:
        return (
            f"TLS: handshake with {target} failed ({said}): no TLS version or cipher in "
            "common — check the server's TLS settings (the inspector speaks TLS 1.2 and 1.3)"
        )
    if reason in _WANTS_CLIENT_CERT:
        return (
            f"TLS: handshake with {target} failed ({said}): the server wants a client "
            "certificate, which the inspector does not send"
        )
    if isinstance(exc, ssl.SSLEOFError) or "EOF" in reason:
        return (
            f"TLS: {target} closed the connection during the handshake ({said}) — check that "
            "it serves HTTPS on this port"
        )
    return f"TLS: handshake with {target} failed ({said})"


def _said(text: str) -> str:
    """OpenSSL's words as a clause: ``"Hostname mismatch, ... for 'x'."`` -> ``"hostname
    mismatch, ... for 'x'"``."""
    text = text.strip().rstrip(".")
    if text[1:2].isupper():  # an acronym: "IP address mismatch"
        return text
    return text[:1].lower() + text[1:]


def _host(target: str) -> str:
    """``example.com:443`` -> ``example.com``; ``[::1]:8443`` -> ``::1``."""
    host = target.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _strerror(exc: OSError) -> str:
    """``"no route to host"``: the system's words for the error, lower-cased."""
    if exc.errno is not None and exc.errno in errno.errorcode:
        return os.strerror(exc.errno).lower()
    return str(exc)
