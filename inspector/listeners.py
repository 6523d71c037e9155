"""The sockets ``serve`` listens on, and the uvicorn server that runs them: the HTTP listener
and, with ``--https``, a TLS listener beside it — one process, one app, one lifespan.

uvicorn gives every socket of a server the same SSL setting, so ``Server`` starts the HTTP
listener as uvicorn does and adds each TLS listener itself, with the same protocol factory
(and so the same app, server state and shutdown). A TLS connection's scope says ``https``.

``build_server`` puts both under the connection layer (``connections.py``): the protocol
class is uvicorn's under the watchdog's limits, the one connection bound counts the
connections of every listener, and ``Server`` runs the watchdog on uvicorn's tick.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn

from inspector.connections import SWEEP_EVERY, Watchdog, guarded, protocol_class
from inspector.settings import Settings
from inspector.tls import HANDSHAKE_TIMEOUT, SHUTDOWN_TIMEOUT, server_context

if TYPE_CHECKING:
    from inspector.certificates import ServerCertificate


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
    # Here, not at the top: only --https pays for importing cryptography (~60 ms), not the
    # embedded server of every test suite that loads the pytest plugin.
    from inspector import certificates

    if settings.cert is not None and settings.key is not None:
        return server_context(settings.cert, settings.key), None
    made = certificates.ensure_server_certificate(
        settings.tls_dir, certificates.server_names(settings.allow_hosts)
    )
    return server_context(made.cert_file, made.key_file), made


class Server(uvicorn.Server):
    """uvicorn's server, plus TLS listeners on the same app (``tls``), with the connection
    layer's ``watchdog`` (if any) looking at every connection once a second."""

    def __init__(
        self,
        config: uvicorn.Config,
        tls: Sequence[TlsListener] = (),
        watchdog: Watchdog | None = None,
    ) -> None:
        super().__init__(config)
        self.tls = tuple(tls)
        self.watchdog = watchdog

    async def on_tick(self, counter: int) -> bool:
        if self.watchdog is not None and counter % SWEEP_EVERY == 0:
            self.watchdog.sweep(self.server_state.connections)
        return await super().on_tick(counter)

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


def build_server(
    app: Any,
    settings: Settings,
    *,
    tls: Sequence[TlsListener] = (),
    http: str | type[asyncio.Protocol] = "auto",
    descriptors: int | None = None,
    **config: Any,
) -> Server:
    """A server for ``app`` (its HTTP socket is given to ``serve``/``run``; ``tls``: its TLS
    listeners) under the connection layer's limits from ``settings``. ``config`` goes to
    ``uvicorn.Config``; ``http`` is uvicorn's parser by name, or a protocol class (``serve``'s
    own: ``stack.Stack.protocol``); ``descriptors`` is the open-file limit the default
    connection bound is computed from (default: the current one)."""
    watchdog = Watchdog.from_settings(settings, descriptors)
    base = http if isinstance(http, type) else protocol_class(http)
    protocol = guarded(base, watchdog)
    return Server(uvicorn.Config(app, http=protocol, **config), tls=tls, watchdog=watchdog)
