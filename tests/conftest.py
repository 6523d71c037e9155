"""Shared fixtures: a real uvicorn server on a free loopback port, in a thread; CLI processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from inspector.app import create_app
from inspector.listeners import TlsListener, build_server
from inspector.settings import Settings


def bind_free(port: int = 0) -> socket.socket:
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else ~40 ms stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class ServerThread:
    """Any ASGI app on a real uvicorn in a background thread."""

    def __init__(self, app: ASGIApp, port: int = 0, **config: Any) -> None:
        self.sock = bind_free(port)
        self.port: int = self.sock.getsockname()[1]
        options: dict[str, Any] = {"log_level": "warning", "lifespan": "auto"}
        options.update(config)
        self.server = self.make_server(app, options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def make_server(self, app: ASGIApp, options: dict[str, Any]) -> uvicorn.Server:
        return uvicorn.Server(uvicorn.Config(app, **options))

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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def before_stop(self) -> None:
        """Called on the server's loop as it is told to stop."""

    def stop(self) -> None:
        if self.thread.is_alive() and not self.loop.is_closed():
            # No signal reaches a server in a thread: end long-lived streams ourselves, as
            # sse-starlette does on Ctrl-C, so shutdown does not wait out the grace period.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self.before_stop)
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


class LiveInspector(ServerThread):
    """The inspector as ``serve`` runs it: its app on uvicorn under the connection layer
    (``http``: uvicorn's ``h11`` parser, as plain ``uvicorn`` installs; ``httptools`` too)."""

    def __init__(
        self,
        settings: Settings,
        port: int = 0,
        http: str = "h11",
        descriptors: int = 4096,
        tls: Sequence[TlsListener] = (),
    ) -> None:
        self.settings = settings
        self.http = http
        self.descriptors = descriptors
        self.tls = tuple(tls)
        super().__init__(create_app(settings), port, lifespan="on", timeout_graceful_shutdown=2)

    def make_server(self, app: ASGIApp, options: dict[str, Any]) -> uvicorn.Server:
        return build_server(
            app,
            self.settings,
            tls=self.tls,
            http=self.http,
            descriptors=self.descriptors,
            **options,
        )

    def before_stop(self) -> None:
        runtime = getattr(self.server.config.app.state, "runtime", None)
        if runtime is not None:
            runtime.hub.close()

    def restart(self) -> LiveInspector:
        """Stop, then start a new server on the same port and store."""
        self.stop()
        self.__init__(self.settings, self.port, self.http, self.descriptors)  # type: ignore[misc]
        self.start()
        return self

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 10), **kwargs)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=0)


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveInspector]:
    server = LiveInspector(settings).start()
    yield server
    server.stop()


@pytest.fixture
def make_live(tmp_path: Path) -> Iterator[Any]:
    """Start inspectors with custom settings; all are stopped at the end."""
    started: list[LiveInspector] = []

    def make(**changes: Any) -> LiveInspector:
        base = Settings(data_dir=tmp_path / f"data{len(started)}", port=0)
        server = LiveInspector(replace(base, **changes)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def client(live: LiveInspector) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c


# -- CLI processes -----------------------------------------------------------------------------

Spawn = Callable[..., "subprocess.Popen[str]"]


def inspector_children() -> list[int]:
    """Live ``python -m inspector`` processes started by this test process."""
    found = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{task}/children") as fh:
            pids = [int(pid) for pid in fh.read().split()]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    argv = fh.read().split(b"\0")
                with open(f"/proc/{pid}/stat") as fh:
                    state = fh.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                continue
            if b"inspector" in argv and state != "Z":
                found.append(pid)
    return found


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``webhook-inspector ARGS`` processes (text pipes); each is killed and reaped at
    the end whatever the test did, and the test fails if any inspector process outlives it.

    ``ignore_sigint=True`` starts it the way a non-interactive shell starts a background job
    (``cmd &``): with SIGINT ignored, which the process inherits.
    """
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, ignore_sigint: bool = False, **popen: Any) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "inspector", *args]
        if ignore_sigint:
            command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        proc = subprocess.Popen(command, text=True, encoding="utf-8", **popen)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert inspector_children() == [], "an inspector process outlived its test"
