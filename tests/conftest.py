"""Shared fixtures: a real uvicorn server on a free loopback port, in a thread; CLI processes;
the store's backend, SQLite or PostgreSQL.

Modules marked ``backends`` run each test that uses the ``database`` fixture (directly, or
through ``settings``, ``live``, ``make_live``, ``store_location``) twice: on SQLite and on
PostgreSQL, in a schema of its own. PostgreSQL comes from ``WEBHOOK_INSPECTOR_TEST_DATABASE``
(``./scripts/test`` starts one when it is not set). Without it, the PostgreSQL runs skip —
unless ``WEBHOOK_INSPECTOR_REQUIRE_POSTGRES`` is set (as ``./scripts/test`` does), where they
fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from inspector.app import create_app
from inspector.settings import Settings

TEST_DATABASE = "WEBHOOK_INSPECTOR_TEST_DATABASE"
REQUIRE_POSTGRES = "WEBHOOK_INSPECTOR_REQUIRE_POSTGRES"
BACKENDS = ("sqlite", "postgres")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("backends"):
        # ``sqlite_only``: a test of SQLite itself (its locks, its file) in a module of both.
        only = metafunc.definition.get_closest_marker("sqlite_only")
        metafunc.parametrize("database", BACKENDS[:1] if only else BACKENDS, indirect=True)


def postgres_url() -> str:
    """The test server's URL, or skip (fail under ./scripts/test) when there is none."""
    url = os.environ.get(TEST_DATABASE)
    if not url:
        reason = f"no PostgreSQL for the tests: set {TEST_DATABASE} (./scripts/test starts one)"
        if os.environ.get(REQUIRE_POSTGRES):
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (so the store lives in it)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


# Schemas emptied after their test, for the next one: creating and migrating a schema per
# test costs ~0.5 s; emptying one, a few ms. Dropped at the end of the session.
_clean_schemas: list[str] = []
_TABLES = "requests, bodies, endpoints, events, replays, deliveries, delivery_attempts"
_SEQUENCES = ("requests", "replays", "deliveries", "delivery_attempts")


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    """A PostgreSQL URL whose store is empty (a new schema, or one emptied after use)."""
    import psycopg

    from inspector.store.schema import POSTGRESQL

    base = postgres_url()
    if _clean_schemas:
        schema = _clean_schemas.pop()
    else:
        schema = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}".encode())
    try:
        yield with_schema(base, schema)
    finally:
        with psycopg.connect(with_schema(base, schema), autocommit=True) as conn:
            version = None
            with contextlib.suppress(psycopg.Error):
                version = conn.execute(b"SELECT max(version) FROM schema_version").fetchone()
            if version is not None and version[0] == len(POSTGRESQL):
                # DELETE and setval: cheaper than TRUNCATE on tables this small.
                empty = [f"DELETE FROM {table}" for table in _TABLES.split(", ")]
                restart = [f"SELECT setval('{seq}_id_seq', 1, false)" for seq in _SEQUENCES]
                script = "; ".join([*empty, *restart, "UPDATE counters SET value = 0"])
                conn.execute(f"BEGIN; {script}; COMMIT".encode())
                _clean_schemas.append(schema)
            else:  # never migrated, or changed by the test: not reusable
                conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture(scope="session", autouse=True)
def _drop_clean_schemas() -> Iterator[None]:
    yield
    if _clean_schemas:
        import psycopg

        with psycopg.connect(postgres_url(), autocommit=True) as conn:
            for schema in _clean_schemas:
                conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
        _clean_schemas.clear()


@pytest.fixture
def database(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """None (SQLite, in the data directory) or the URL of a fresh PostgreSQL store, which
    the CLI's commands then use too (``WEBHOOK_INSPECTOR_DATABASE``)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    with fresh_schema() as url:
        monkeypatch.setenv("WEBHOOK_INSPECTOR_DATABASE", url)
        yield url


@pytest.fixture
def store_location(database: str | None, tmp_path: Path) -> Path | str:
    """What ``Store`` opens in this test: the PostgreSQL URL or a SQLite file."""
    return database or tmp_path / "data" / "inspector.db"


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
        self.server = uvicorn.Server(uvicorn.Config(app, **options))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

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
    def __init__(self, settings: Settings, port: int = 0) -> None:
        self.settings = settings
        super().__init__(create_app(settings), port, lifespan="on", timeout_graceful_shutdown=2)

    def before_stop(self) -> None:
        runtime = getattr(self.server.config.app.state, "runtime", None)
        if runtime is not None:
            runtime.hub.close()

    def restart(self) -> LiveInspector:
        """Stop, then start a new server on the same port and store."""
        self.stop()
        self.__init__(self.settings, self.port)  # type: ignore[misc]
        self.start()
        return self

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 10), **kwargs)


@pytest.fixture
def settings(tmp_path: Path, database: str | None) -> Settings:
    return Settings(data_dir=tmp_path / "data", port=0, database=database)


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveInspector]:
    server = LiveInspector(settings).start()
    yield server
    server.stop()


@pytest.fixture
def make_live(tmp_path: Path, database: str | None) -> Iterator[Any]:
    """Start inspectors with custom settings; all are stopped at the end. On PostgreSQL they
    share the test's store (replicas), unless given a ``database`` of their own."""
    started: list[LiveInspector] = []

    def make(**changes: Any) -> LiveInspector:
        base = Settings(data_dir=tmp_path / f"data{len(started)}", port=0, database=database)
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
