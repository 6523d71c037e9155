"""The HTTP/1.1 protocol ``serve`` runs on the fast stack: httptools, with h11 for the requests
httptools would refuse or read differently.

httptools (llhttp) parses about three times as fast as h11, but it knows a fixed list of
methods (``X-CUSTOM`` or ``get`` are a 400 to it) and it reads a request-target as a URL (a
``#`` starts a fragment that the path loses). A webhook inspector captures any request h11
accepts, exactly as sent: so when httptools rejects a request before its headers are complete,
or would read its target differently, the connection is handed to uvicorn's h11 protocol with
the bytes of that request, and h11 serves it and the rest of the connection. The common
request pays one list append per chunk received until its headers are parsed.

A hand-over needs the request's first byte to start a chunk and no earlier request on the
connection still being answered; otherwise (a pipelined request) uvicorn's own 400 stands.
Import this module only where httptools imports (``inspector.stack``).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import httptools
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HandOver(Exception):
    """Raised in a parser callback to stop httptools: h11 takes the request."""


class HttpToolsWithH11(HttpToolsProtocol):
    """uvicorn's httptools protocol that hands a connection to h11 for what httptools
    would not read as h11 does (see the module's docstring)."""

    h11_class: ClassVar[type[asyncio.Protocol]] = H11Protocol

    # Chunks of the current request since its first byte, while a hand-over is possible;
    # None once its headers are parsed, or when it began in the middle of a chunk.
    _pending: list[bytes] | None = None
    _between = True  # no request in progress: the next byte starts one
    _chunk_starts_request = True

    def data_received(self, data: bytes) -> None:
        self._chunk_starts_request = self._between
        if self._between:
            self._pending = [data]
        elif self._pending is not None:
            self._pending.append(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._can_hand_over():
                self._hand_over()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        if not self._chunk_starts_request:
            self._pending = None  # began after another request in the same chunk
        self._chunk_starts_request = self._between = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # h11 splits the target at the first "?" and keeps it all; httptools parses a URL.
        url = self.url
        if (url[:1] != b"/" or b"#" in url) and self._can_hand_over():
            raise _HandOver
        try:
            super().on_headers_complete()
        except httptools.HttpParserInvalidURLError:
            if self._can_hand_over():
                raise _HandOver from None
            raise
        self._pending = None

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._between = True
        self._pending = None

    def _can_hand_over(self) -> bool:
        previous = self.cycle
        return self._pending is not None and (previous is None or previous.response_complete)

    def _hand_over(self) -> None:
        """Give the connection to h11, fed with the request's bytes so far."""
        assert self._pending is not None
        data = b"".join(self._pending)
        self._pending = None
        self._unset_keepalive_if_required()
        self.connections.discard(self)
        h11 = self.h11_class(  # type: ignore[call-arg]
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            _loop=self.loop,
        )
        self.transport.set_protocol(h11)
        h11.connection_made(self.transport)
        h11.data_received(data)
