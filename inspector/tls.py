"""The HTTPS listener's side of TLS: its SSL context, and what a TLS connection says about
itself (version, and the name the client asked for).

``server_context`` loads a certificate and key (the local CA's, see ``certificates``, or the
person's own ``--cert``/``--key``). Its SSL objects are ``NamedSSLObject``s: the SNI
callback, which runs during the handshake, writes the requested name on the connection's own
SSL object, so nothing is kept per connection anywhere else and nothing outlives it.

``connection_tls`` reads both from a request's transport. The capture route calls it only
for requests whose ASGI scope says ``https``: plain HTTP captures never pay for it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from starlette.types import Send

HANDSHAKE_TIMEOUT = 10.0  # seconds a client has to finish the TLS handshake
# Seconds a closing connection waits for the client's close_notify. asyncio's default, 30 s,
# would hold a shutdown up for every idle keep-alive client (our own replays among them).
SHUTDOWN_TIMEOUT = 1.0
CA_URL = "/api/tls/ca.crt"  # where the page and clients fetch the local CA's certificate


class NamedSSLObject(ssl.SSLObject):
    """An SSL object that remembers the server name (SNI) its client asked for."""

    requested_name: str | None = None


def _remember_name(
    ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
) -> None:
    if isinstance(ssl_object, NamedSSLObject):
        ssl_object.requested_name = server_name
    return None  # go on with the handshake, same certificate


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The HTTPS listener's context: TLS 1.2 or newer, HTTP/1.1 by ALPN, the SNI name kept.

    Raises ``OSError`` (a file) or ``ssl.SSLError`` (not a certificate, a key that does not
    match) for the caller to word.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    context.sslobject_class = NamedSSLObject
    context.sni_callback = _remember_name
    return context


@dataclass(frozen=True, slots=True)
class ConnectionTls:
    """What a TLS connection says about itself."""

    version: str  # "TLSv1.3"
    server_name: str | None  # the SNI name the client sent (None: it sent none, e.g. an IP)


def connection_tls(send: Send) -> ConnectionTls:
    """The TLS of the connection a request came on, read through the server's ``send``
    (uvicorn's is a bound method of the request cycle, which holds the transport).

    Only for requests the scope says are ``https``; a server that does not expose its
    transport, or a connection already closed (asyncio's TLS transport forgets its state
    then), gives ``unknown``.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None or transport.is_closing():
        return ConnectionTls("unknown", None)
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ConnectionTls("unknown", None)
    return ConnectionTls(
        ssl_object.version() or "unknown", getattr(ssl_object, "requested_name", None)
    )
