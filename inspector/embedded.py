"""An inspector running in a background thread of this process: the pytest plugin's server
(and anything else that embeds one), on a free loopback port by default."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from inspector import listeners, stack
from inspector.app import create_app
from inspector.runtime import Runtime
from inspector.settings import Settings


class EmbeddedServer:
    """``Settings`` served by uvicorn on its own event loop in a daemon thread.

    ``start()`` returns once the server accepts connections (``url``); ``stop()`` ends the
    live streams, shuts uvicorn down gracefully and closes the store.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sock = listeners.bind(settings.host, settings.port)
        self.port: int = self.sock.getsockname()[1]
        self.app = create_app(settings)
        # Under the connection layer as ``serve`` is (a sender under test that stalls mid-body
        # is recorded as truncated, not waited for), but on the process's own open-file
        # limit: a test suite's limits are not ours to raise. serve's parser: any method,
        # targets kept exactly.
        self.server = listeners.build_server(
            self.app,
            settings,
            http=stack.choose().protocol(),
            ws="none",
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="webhook-inspector", daemon=True)

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.serve(sockets=[self.sock]))
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def start(self, timeout: float = 30.0) -> EmbeddedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.sock.close()
                raise RuntimeError("the embedded webhook-inspector did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.thread.is_alive() and not self.loop.is_closed():
            # No signal reaches a server in a thread: end the live streams as Ctrl-C would.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.runtime.hub.close)
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()
