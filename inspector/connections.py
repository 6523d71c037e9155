"""The connection layer: what uvicorn does not bound, bounded below the ASGI app.

A receiver faces whatever the network sends. uvicorn has no limit on how long a connection
may take to send its request headers or its body, admits connections until the process runs
out of descriptors, and closes a connection whose client stopped reading only once its
buffers drain — never. Here, one ``Watchdog`` per server looks at every connection once a
second (on uvicorn's own tick: no timer per connection or request) and

* closes a connection that has not completed its request headers ``header_timeout`` seconds
  after it opened or after its previous answer;
* ends a request whose body made no progress for ``body_timeout`` seconds: it marks the
  ASGI scope (``capture.BODY_STALLED``), writes a ``408`` and closes — the capture is
  recorded as truncated with a note, never answered 2xx;
* aborts a connection whose client accepted none of the data queued for it for
  ``send_timeout`` seconds (a stuck live stream), freeing what the kernel holds for it;
* admits at most ``max_connections``: beyond, a new connection gets a fast ``503`` with
  ``Retry-After`` and is closed, instead of waiting in the accept queue.

It also marks the scope of a request whose client goes away before its answer is complete
(``capture.PEER_GONE``), so the receiver records the answer as not delivered.

The checks live in a mixin over uvicorn's HTTP protocol classes (``h11`` and ``httptools``
alike): per request, the fast path costs two attribute stores. ``listeners.build_server``
makes the uvicorn server with them — for the HTTP listener and the TLS one alike (a TLS
connection comes under them once its handshake is done; the handshake has its own limit,
``tls.HANDSHAKE_TIMEOUT``) — and runs the watchdog on its tick; ``serve``, the embedded server
of the pytest plugin and the tests' live servers use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from uvicorn.config import HTTP_PROTOCOLS
from uvicorn.importer import import_from_string

from inspector.capture import BODY_STALLED, PEER_GONE, ResponseRecord
from inspector.receiver import stalled_answer
from inspector.settings import Settings

if sys.platform != "win32":
    import resource

log = logging.getLogger("inspector.connections")

RETRY_AFTER = 5  # seconds a refused client is asked to wait
# Descriptors kept for everything but client connections: the store's files (a writer and a
# reader per worker thread), outbound connections (replays, mirrors, deliveries), listening
# sockets, logs, and refused connections in the moment before they close.
MIN_RESERVE = 64
SWEEP_EVERY = 10  # uvicorn ticks (0.1 s each): the watchdog looks once a second


def descriptor_limit(*, raise_to_hard: bool = False) -> int:
    """This process's soft limit on open files; first raised to the hard limit where the OS
    allows, if asked (``serve`` does, at start)."""
    if sys.platform == "win32":  # no RLIMIT_NOFILE; sockets are not bounded that way
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if not raise_to_hard:
        return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20
    # macOS reports an infinite hard limit but refuses a soft limit above OPEN_MAX.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 10240)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections(descriptors: int) -> int:
    """Connections served at once: the descriptor limit less a reserve (an eighth, at least
    64), so the process never runs out of descriptors for its own files."""
    return max(1, descriptors - max(MIN_RESERVE, descriptors // 8))


def answer_bytes(response: ResponseRecord) -> bytes:
    """A whole HTTP/1.1 answer, written by the connection layer itself (then it closes)."""
    status = response.status or 500
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b""))]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in response.headers]
    lines.append(b"content-length: %d" % len(response.body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


_REASONS = {408: b"Request Timeout", 503: b"Service Unavailable"}
BUSY = answer_bytes(
    ResponseRecord(
        503,
        [
            ("content-type", "text/plain; charset=utf-8"),
            ("retry-after", str(RETRY_AFTER)),
            ("connection", "close"),
        ],
        b"Too many open connections: retry later.\n",
    )
)


@dataclass
class Watchdog:
    """The limits of one server, and the clock (in sweeps) they are measured with."""

    header_timeout: float
    body_timeout: float
    send_timeout: float
    max_connections: int
    tick: int = 0
    refused: dict[Refused, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A deadline of n seconds passes between n and n+1 sweeps after the event.
        self.header_ticks = math.ceil(self.header_timeout)
        self.body_ticks = math.ceil(self.body_timeout)
        self.send_ticks = math.ceil(self.send_timeout)
        self.stalled = stalled_answer(self.body_timeout)
        self.stalled_bytes = answer_bytes(self.stalled)

    @classmethod
    def from_settings(cls, settings: Settings, descriptors: int | None = None) -> Watchdog:
        bound = settings.max_connections
        if bound is None:
            bound = default_max_connections(descriptors or descriptor_limit())
        return cls(settings.header_timeout, settings.body_timeout, settings.send_timeout, bound)

    def sweep(self, connections: Iterable[Any]) -> None:
        """Once a second: apply every deadline to every connection."""
        self.tick += 1
        tick = self.tick
        for protocol in list(connections):
            check = getattr(protocol, "check_deadlines", None)
            if check is not None:
                check(tick)
        for refused, since in list(self.refused.items()):
            if tick - since > 2:  # it had its 503; it has not closed: cut it
                reset(refused.transport)

    def refuse(self, transport: asyncio.Transport) -> None:
        """Answer a connection over the bound with 503 and close it: half-close first, so
        the answer is read before the connection ends (a close with the request unread
        would reset it), and cut it if the client does not close within two sweeps."""
        refused = Refused(self, transport)
        transport.set_protocol(refused)
        self.refused[refused] = self.tick
        transport.write(BUSY)
        if transport.can_write_eof():
            transport.write_eof()
        else:
            transport.close()


class Refused(asyncio.Protocol):
    """A connection over the bound, after its 503: discards what it reads until it ends."""

    def __init__(self, watchdog: Watchdog, transport: asyncio.Transport) -> None:
        self.watchdog = watchdog
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.watchdog.refused.pop(self, None)


class GuardedProtocol(asyncio.Protocol):
    """The deadlines and the admission bound, over uvicorn's ``H11Protocol`` or
    ``HttpToolsProtocol`` (``guarded`` makes the class). Reads only state both keep:
    ``cycle`` (``response_complete``, ``more_body``, ``response_started``, ``scope``),
    ``flow.read_paused``, ``transport`` and the server's ``connections``."""

    watchdog: ClassVar[Watchdog]
    # uvicorn's, set by the protocol class this is mixed into.
    cycle: Any
    flow: Any
    transport: asyncio.Transport
    connections: set[Any]

    # Ticks: when the connection last waited for request headers to begin (opened, or its
    # answer completed), last received bytes, and since when its writes are paused.
    _since: int
    _heard: int
    _paused: int | None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        watchdog = self.watchdog
        # (uvloop's transports are not asyncio.Transport subclasses, but behave as one.)
        if len(self.connections) >= watchdog.max_connections:
            watchdog.refuse(cast(asyncio.Transport, transport))
            return
        self._since = self._heard = watchdog.tick
        self._paused = None
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._heard = self.watchdog.tick
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.scope[PEER_GONE] = True
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        self._since = self.watchdog.tick
        super().on_response_complete()  # type: ignore[misc]

    def pause_writing(self) -> None:
        self._paused = self.watchdog.tick
        super().pause_writing()

    def resume_writing(self) -> None:
        self._paused = None
        super().resume_writing()

    def check_deadlines(self, tick: int) -> None:
        """The watchdog's look at this connection."""
        transport = self.transport
        watchdog = self.watchdog
        if self._paused is not None and tick - self._paused > watchdog.send_ticks:
            # The client took nothing for send_timeout: close() would wait for the buffers
            # to drain, which they never will. Drop them with the connection — a closing one
            # too (a live stream that ended with ``resync`` to a client reading nothing is
            # closed after its keep-alive, and would wait there for ever).
            reset(transport)
            return
        if transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            if tick - self._since > watchdog.header_ticks:
                transport.close()
        elif cycle.more_body:
            if self.flow.read_paused:  # the app is behind, not the client
                self._heard = tick
            elif tick - self._heard > watchdog.body_ticks:
                self._end_stalled(cycle)

    def _end_stalled(self, cycle: Any) -> None:
        cycle.scope[BODY_STALLED] = self.watchdog.body_timeout
        if not cycle.response_started:
            self.transport.write(self.watchdog.stalled_bytes)
            cycle.response_started = True
        self.transport.close()


def reset(transport: asyncio.Transport) -> None:
    """Close at once, dropping what is queued — the kernel's copy too (a linger of 0 makes
    the close a reset), so a client that reads nothing costs nothing more."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def guarded(base: type[asyncio.Protocol], watchdog: Watchdog) -> type[asyncio.Protocol]:
    """uvicorn's protocol class ``base`` under ``watchdog``'s limits."""
    name = f"Guarded{base.__name__}"
    attributes: dict[str, object] = {"watchdog": watchdog}
    handed_to = getattr(base, "h11_class", None)
    if isinstance(handed_to, type):
        # A protocol that hands some connections to h11 (``protocol.HttpToolsWithH11``): the
        # h11 side runs under the same limits.
        attributes["h11_class"] = guarded(handed_to, watchdog)
    return type(name, (GuardedProtocol, base), attributes)


def protocol_class(http: str) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol class by its name: ``auto``, ``h11`` or ``httptools``."""
    if http not in ("auto", "h11", "httptools"):
        raise ValueError(f"unsupported HTTP implementation {http!r}: auto, h11 or httptools")
    found: type[asyncio.Protocol] = import_from_string(HTTP_PROTOCOLS[http])
    return found
