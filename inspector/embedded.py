"""Servers running in a background thread of this process: ``ServerThread`` runs any uvicorn
server on a bound socket; ``EmbeddedServer`` is an inspector on one, on a free loopback port by
default — the pytest plugin's server, the test suite's live inspectors, anything that embeds
one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Sequence
from typing import Self

import uvicorn

from inspector import listeners, stack
from inspector.app import InspectorApp, create_app
from inspector.runtime import Runtime
from inspector.settings import Settings


class ServerThread:
    """``server`` serving ``sock`` on its own event loop in a daemon thread.

    ``start()`` returns once the server accepts connections (``url``); ``stop()`` calls
    ``before_stop`` on the server's loop, shuts uvicorn down gracefully and waits for the
    thread.
    """

    def __init__(self, server: uvicorn.Server, sock: socket.socket, name: str = "uvicorn") -> None:
        self.server = server
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def url(self) -> str:
        host = self.sock.getsockname()[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        finally:
            # Library watchers (sse-starlette's) may outlive the server: end them quietly.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def start(self, timeout: float = 30.0) -> Self:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise RuntimeError(f"the server in thread {self.thread.name!r} did not start")
            time.sleep(0.01)
        return self

    def before_stop(self) -> None:
        """Called on the server's loop as it is told to stop (nothing here)."""

    def stop(self) -> None:
        if self.thread.is_alive() and not self.loop.is_closed():
            # No signal reaches a server in a thread: let it end its long-lived streams as it
            # would on Ctrl-C, so shutdown does not wait out the grace period.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.before_stop)
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


class EmbeddedServer(ServerThread):
    """``Settings`` served by uvicorn as ``serve`` serves them, in a daemon thread.

    Under the connection layer as ``serve`` is (a sender under test that stalls mid-body is
    recorded as truncated, not waited for), with ``serve``'s parser by default (any method,
    targets kept exactly) or ``http`` (uvicorn's parser by name, or a protocol class);
    ``descriptors`` is the open-file limit the connection bound is computed from (default:
    the process's own — a test suite's limits are not ours to raise); ``tls``: listeners
    served beside the HTTP one, as ``serve --https`` has them.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: str | type[asyncio.Protocol] | None = None,
        descriptors: int | None = None,
        tls: Sequence[listeners.TlsListener] = (),
    ) -> None:
        self.settings = settings
        self.http = http if http is not None else stack.choose().protocol()
        self.descriptors = descriptors
        self.tls = tuple(tls)
        self.app: InspectorApp = create_app(settings)
        server = listeners.build_server(
            self.app,
            settings,
            tls=self.tls,
            http=self.http,
            descriptors=descriptors,
            ws="none",
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        sock = listeners.bind(settings.host, settings.port)
        super().__init__(server, sock, name="webhook-inspector")

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def before_stop(self) -> None:
        # The live streams end as Ctrl-C ends them; no runtime if the lifespan failed.
        runtime: Runtime | None = getattr(self.app.state, "runtime", None)
        if runtime is not None:
            runtime.hub.close()
