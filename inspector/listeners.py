"""The sockets ``serve`` listens on, and the uvicorn server that runs them: the HTTP listener
and, with ``--https``, a TLS listener beside it — one process, one app, one lifespan.

uvicorn gives every socket of a server the same SSL setting, so ``Server`` starts the HTTP
listener as uvicorn does and adds each TLS listener itself, with the same protocol factory
(and so the same app, server state and shutdown). A TLS connection's scope says ``https``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import uvicorn

from inspector import certificates
from inspector.certificates import ServerCertificate
from inspector.settings import Settings
from inspector.tls import HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT, server_context


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port); ``OSError`` if the
    address is taken.

    ``proto=IPPROTO_TCP`` matters: asyncio sets TCP_NODELAY only on sockets that say they
    are TCP, and without it every response waits ~40 ms on Nagle and delayed ACKs.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
        # Listening now, before the banner: a client that connects while the app starts
        # waits in the queue instead of being refused.
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class TlsListener:
    """A bound socket for HTTPS and the context it serves with."""

    sock: socket.socket
    context: ssl.SSLContext
    certificate: ServerCertificate | None  # the local CA's; None with --cert/--key

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])


def tls_context(settings: Settings) -> tuple[ssl.SSLContext, ServerCertificate | None]:
    """The HTTPS listener's context: from ``--cert``/``--key``, else from the local CA (the
    CA and a certificate for this machine's names made or renewed as needed).

    Raises ``certificates.CertificateError``, ``OSError`` or ``ssl.SSLError``.
    """
    if settings.cert is not None and settings.key is not None:
        return server_context(settings.cert, settings.key), None
    made = certificates.ensure_server_certificate(
        settings.tls_dir, certificates.server_names(settings.allow_hosts)
    )
    return server_context(made.cert_file, made.key_file), made


class Server(uvicorn.Server):
    """uvicorn's server, plus TLS listeners on the same app (``tls``)."""

    def __init__(self, config: uvicorn.Config, tls: Sequence[TlsListener] = ()) -> None:
        super().__init__(config)
        self.tls = tuple(tls)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.started = False  # not until the TLS listeners listen too
        loop = asyncio.get_running_loop()
        for listener in self.tls:
            server = await loop.create_server(
                self._protocol,
                sock=listener.sock,
                ssl=listener.context,
                backlog=self.config.backlog,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            self.servers.append(server)  # closed, and waited for, by uvicorn's shutdown
        self.started = True

    def _protocol(self) -> asyncio.Protocol:
        # As uvicorn's own factory: same config, server state (connections, for shutdown)
        # and lifespan state.
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol
