"""Shared fixtures and factories.

Two ways to run the inspector, both built from ``make_settings`` (the one place the store's
backend is chosen):

* **in-process** (``in_process``, ``make_in_process``, ``app_client``): the app with its
  lifespan running on a private event loop, requests through httpx's ``ASGITransport``. No
  socket, no uvicorn: for routing, API shape, headers, HTML, validation and anything the
  runtime does in the background (settings reloads, re-verification).
* **live** (``live``, ``make_live``, ``client``): a real uvicorn on a free loopback port, in a
  thread (``inspector.embedded``, as the pytest plugin's server). For sockets, time,
  disconnects, drops, streams (SSE), replay/mirror/proxy/delivery over the network,
  subprocesses that talk HTTP, and the browser.

Also: factories for the records tests build (a captured request, a stored request, endpoint
settings, a delivery), ``make_store``/``store``, the Chromium ``browser`` and ``spawn`` for CLI
processes.

**Two backends.** Modules marked ``backends`` run each test that uses the ``database`` fixture
(directly, or through ``make_settings``, ``settings``, ``live``, ``in_process``, ``make_store``,
``store``, ``store_location``) twice: on SQLite and on PostgreSQL, in a schema of its own.
PostgreSQL comes from ``WEBHOOK_INSPECTOR_TEST_DATABASE`` (``./scripts/test`` starts one when
it is not set). Without it, the PostgreSQL runs skip — unless
``WEBHOOK_INSPECTOR_REQUIRE_POSTGRES`` is set (as ``./scripts/test`` does), where they fail.
On PostgreSQL every inspector and store of a test shares its schema: they are replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import psycopg
import pytest
import uvicorn
from starlette.types import ASGIApp

from inspector import listeners
from inspector.app import InspectorApp, create_app
from inspector.capture import CapturedRequest, ResponseRecord
from inspector.embedded import EmbeddedServer, ServerThread
from inspector.listeners import TlsListener
from inspector.runtime import Runtime
from inspector.settings import Settings
from inspector.store import Store, deliveries, endpoints, intake
from inspector.store.schema import POSTGRESQL

# Building an SSL context costs ~50 ms of CPU, and httpx builds one for every Client even
# for plain http://. Every test client shares this one.
TLS = ssl.create_default_context()


def http_client(**kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` for a live server (the shared TLS context; 10 s timeout)."""
    kwargs.setdefault("timeout", 10)
    return httpx.Client(verify=TLS, **kwargs)


# -- the store's backend: SQLite, or PostgreSQL in a schema of the test's own -----------------

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


# -- settings: the one place a test inspector's configuration is made --------------------------


@pytest.fixture
def make_settings(tmp_path: Path, database: str | None) -> Callable[..., Settings]:
    """``make_settings(**changes)``: Settings for a test inspector, each call with a data
    directory of its own (``data``, ``data1``, ...). Every inspector fixture builds on this:
    on PostgreSQL they all share the test's store (replicas), unless given a ``database`` of
    their own."""
    made = 0

    def make(**changes: Any) -> Settings:
        nonlocal made
        data_dir = tmp_path / (f"data{made}" if made else "data")
        made += 1
        return replace(Settings(data_dir=data_dir, port=0, database=database), **changes)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


# -- a real uvicorn in a thread --------------------------------------------------------------


def bind_free(port: int = 0) -> socket.socket:
    """A TCP socket bound to a free loopback port, not listening: connections are refused."""
    # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (else ~40 ms stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound for the test and never listening: connections to it are refused.
    (A port found free and released could be taken meanwhile, by another xdist worker too.)"""
    sock = bind_free()
    yield sock.getsockname()[1]
    sock.close()


def start_app(app: ASGIApp, **config: Any) -> ServerThread:
    """Any ASGI app (a receiver, the user's app) on plain uvicorn on a free loopback port, in
    a thread, started; ``config`` goes to ``uvicorn.Config``."""
    options: dict[str, Any] = {"log_level": "warning", "lifespan": "auto"}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    return ServerThread(server, listeners.bind("127.0.0.1", 0)).start()


@pytest.fixture
def make_server() -> Iterator[Callable[..., ServerThread]]:
    """``make_server(app, **uvicorn_config)``: ``start_app``, each server stopped at the
    end."""
    started: list[ServerThread] = []

    def make(app: ASGIApp, **config: Any) -> ServerThread:
        server = start_app(app, **config)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


class LiveInspector(EmbeddedServer):
    """The inspector as ``serve`` runs it (``EmbeddedServer``), on a connection bound computed
    from 4096 descriptors whatever this process's limit, plus what tests do to it."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: str | type[asyncio.Protocol] | None = None,
        descriptors: int | None = 4096,
        tls: Sequence[TlsListener] = (),
    ) -> None:
        super().__init__(settings, http=http, descriptors=descriptors, tls=tls)

    def close_streams(self) -> None:
        """End every open stream cleanly, as Ctrl-C does to ``serve`` (see test_stream)."""
        self.loop.call_soon_threadsafe(self.runtime.hub.close)

    def restart(self) -> LiveInspector:
        """Stop, then start a new server on the same port and store."""
        self.stop()
        return self.start_again()

    def start_again(self) -> LiveInspector:
        """Start a new server on the port and store of this stopped one."""
        settings = replace(self.settings, port=self.port)
        self.__init__(settings, http=self.http, descriptors=self.descriptors)  # type: ignore[misc]
        return self.start()

    def client(self, **kwargs: Any) -> httpx.Client:
        return http_client(base_url=self.url, **kwargs)


def wait_until_answering(url: str, timeout: float = 30) -> httpx.Response:
    """GET ``url`` until a server answers (one that is starting in another process)."""
    deadline = time.monotonic() + timeout
    with http_client(timeout=2) as client:
        while True:
            try:
                return client.get(url)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@pytest.fixture
def make_live(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., LiveInspector]]:
    """``make_live(**changes)``: start inspectors with custom settings; all are stopped at the
    end."""
    started: list[LiveInspector] = []

    def make(**changes: Any) -> LiveInspector:
        server = LiveInspector(make_settings(**changes)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveInspector]:
    server = LiveInspector(settings).start()
    yield server
    server.stop()


@pytest.fixture
def client(live: LiveInspector) -> Iterator[httpx.Client]:
    """A client of the ``live`` server (a real socket)."""
    with live.client() as c:
        yield c


# -- in-process: the app without a socket -----------------------------------------------------


class _Body(httpx.AsyncByteStream):
    """A request body read from the test's (sync) client, handed to the app chunk by chunk."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


class PortalTransport(httpx.BaseTransport):
    """httpx's ``ASGITransport`` for a sync client: each request runs on the portal's loop,
    where the app's lifespan (and so its runtime) lives. Responses are read whole, so an
    endless stream (SSE) is for the live server."""

    def __init__(self, app: ASGIApp, portal: anyio.from_thread.BlockingPortal) -> None:
        self.asgi = httpx.ASGITransport(app)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, Iterable)
        chunks = [bytes(chunk) for chunk in request.stream]

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            inner = httpx.Request(
                request.method,
                request.url,
                headers=request.headers,
                stream=_Body(chunks),
                extensions=request.extensions,
            )
            response = await self.asgi.handle_async_request(inner)
            return response.status_code, response.headers.raw, await response.aread()

        status, headers, body = self.portal.call(call)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body))


class InProcessInspector:
    """The inspector's app with its lifespan running (store, runtime, background tasks) on a
    private event loop in a thread, and no server: ``client()`` talks to it in-process."""

    url = "http://127.0.0.1"  # what the app sees as its own address (Host: 127.0.0.1)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: InspectorApp = create_app(settings)
        self._exits = contextlib.ExitStack()

    def start(self) -> InProcessInspector:
        portal = self._exits.enter_context(anyio.from_thread.start_blocking_portal())
        self.portal = portal
        lifespan = self.app.router.lifespan_context(self.app)
        try:
            self._exits.enter_context(portal.wrap_async_context_manager(lifespan))
        except BaseException:
            self._exits.close()  # no loop thread left behind by a failed start
            raise
        return self

    def stop(self) -> None:
        self._exits.close()

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def client(self, **kwargs: Any) -> httpx.Client:
        transport = PortalTransport(self.app, self.portal)
        return httpx.Client(base_url=self.url, transport=transport, **kwargs)


@pytest.fixture
def make_in_process(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., InProcessInspector]]:
    """``make_in_process(**changes)``: in-process inspectors with custom settings; all are
    stopped at the end."""
    started: list[InProcessInspector] = []

    def make(**changes: Any) -> InProcessInspector:
        inspector = InProcessInspector(make_settings(**changes)).start()
        started.append(inspector)
        return inspector

    yield make
    for inspector in reversed(started):
        inspector.stop()


@pytest.fixture
def in_process(settings: Settings) -> Iterator[InProcessInspector]:
    inspector = InProcessInspector(settings).start()
    yield inspector
    inspector.stop()


@pytest.fixture
def app_client(in_process: InProcessInspector) -> Iterator[httpx.Client]:
    """A client of the ``in_process`` inspector (no socket)."""
    with in_process.client() as c:
        yield c


# -- records ---------------------------------------------------------------------------------


def captured_request(endpoint: str = "e", body: bytes = b"x", **fields: Any) -> CapturedRequest:
    """A ``CapturedRequest`` as the receiver would build it; any field can be given."""
    values: dict[str, Any] = {
        "method": "POST",
        "path": f"/h/{endpoint}",
        "query": "",
        "headers": [("content-type", "text/plain"), ("x-dup", "1"), ("x-dup", "2")],
        "client": "127.0.0.1:1",
        "received_at": "2026-11-28T00:00:00.000000Z",
        "received_ts": 0.0,
        "size": len(body),
        "content_type": "text/plain",
    }
    values.update(fields)
    return CapturedRequest(endpoint=endpoint, body=body, **values)


def answering(
    status: int | None = 200, headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> Callable[[int], ResponseRecord]:
    """The receiver's answer for any attempt (the ``decide`` of ``insert_request``)."""
    return lambda attempt: ResponseRecord(status, list(headers or []), body)


ok = answering(200, [("content-type", "text/plain")], b"OK")


def store_request(
    store: Store,
    request: CapturedRequest | None = None,
    decide: Callable[[int], ResponseRecord] = ok,
    **fields: Any,
) -> intake.Inserted:
    """Write a captured request straight to ``store`` (as a server that is not running would
    never publish it): ``request``, or ``captured_request(**fields)``."""
    return store.write_sync(intake.insert_request, request or captured_request(**fields), decide)


def store_endpoint(store: Store, name: str, settings: dict[str, Any]) -> int:
    """Write an endpoint's settings straight to ``store``, as the CLI does (no validation)."""
    return store.write_sync(endpoints.put_endpoint_settings, name, settings, "now")


def put_endpoint(client: httpx.Client, name: str, **settings: Any) -> dict[str, Any]:
    """Change an endpoint's settings through the API; returns what the API answers."""
    response = client.put(f"/api/endpoints/{name}", json=settings)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def new_delivery(n: int = 0, **fields: Any) -> deliveries.NewDelivery:
    """A delivery as the sender stores it, ``n`` keeping its key, URL and id apart."""
    values: dict[str, Any] = {
        "event": "message.received",
        "event_key": f"k{n}",
        "url": f"http://127.0.0.1:3000/webhook/{n}",
        "scheme": "platform",
        "secret": "s",
        "headers": (),
        "body": b"{}",
        "schedule": (60.0,),
        "timeout": 30.0,
        "time_scale": 1.0,
        "msg_id": f"msg_{n}",
        "carrier": "server",
        "created_ts": 1_800_000_000.0 + n,
    }
    values.update(fields)
    return deliveries.NewDelivery(**values)


def post_delivery(client: httpx.Client, **payload: Any) -> httpx.Response:
    """Create a delivery through the API (``event`` and ``secret`` filled in if not given)."""
    payload.setdefault("event", "message.received")
    payload.setdefault("secret", "s3cret")
    return client.post("/api/deliveries", json=payload)


def latest(client: httpx.Client, endpoint: str) -> dict[str, Any]:
    """The newest stored request of ``endpoint``, in full (the API's detail)."""
    item = client.get(f"/api/requests?endpoint={endpoint}&limit=1").json()["requests"][0]
    found: dict[str, Any] = client.get(f"/api/requests/{item['id']}").json()
    return found


@pytest.fixture
def make_store(tmp_path: Path, database: str | None) -> Iterator[Callable[..., Store]]:
    """``make_store(data_dir=None, *, start=False, **options)``: an opened store in
    ``data_dir/inspector.db`` (where the CLI looks; default ``tmp_path/store``) — or, on
    PostgreSQL, the test's database (whatever ``data_dir``) — its writer started if asked (as
    a server has it). All are closed at the end."""
    opened: list[Store] = []

    def make(data_dir: Path | None = None, *, start: bool = False, **options: Any) -> Store:
        path = (data_dir or tmp_path / "store") / "inspector.db"
        store = Store(database or path, **options).open()
        opened.append(store)
        if start:
            store.start()
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    """An opened store, as a CLI command opens it (no writer thread)."""
    return make_store()


# -- the browser -----------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by Playwright's sync API, closed on exit.

    While it is open, Playwright's event loop counts as running in this thread, so
    ``asyncio.run`` refuses to start: open it only for the tests that need it.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. Run ./scripts/test "
            "(it installs Debian's chromium) or set CHROMIUM=/path/to/chromium.",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the test module (see ``chromium``: not for a module whose later
    tests call ``asyncio.run``)."""
    with chromium() as opened:
        yield opened


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
