"""The connection layer against hostile clients, on a real uvicorn — with both of uvicorn's
HTTP parsers (``h11``, and ``httptools`` which ``uvicorn[standard]`` picks).

Each test reproduces an attack first: half-sent requests that never finish, bodies that
stall, more connections than the process can hold, a live stream that never reads, clients
that leave before their answer, a malformed chunked body on a control route.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.embedded import EmbeddedServer
from inspector.settings import Settings
from tests.conftest import LiveInspector, Spawn
from tests.test_cli import start_serve
from tests.test_tls import TlsInspector

pytestmark = pytest.mark.live

PARSERS = ["h11", "httptools"]


@pytest.fixture(params=PARSERS)
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., LiveInspector]]:
    """Start an inspector on the parser under test with some settings changed."""
    started: list[LiveInspector] = []

    def make(descriptors: int = 4096, **changes: Any) -> LiveInspector:
        base = Settings(data_dir=tmp_path / f"data{len(started)}", port=0)
        live = LiveInspector(replace(base, **changes), http=request.param, descriptors=descriptors)
        started.append(live.start())
        return live

    yield make
    for live in started:
        live.stop()


def connect(live: LiveInspector, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", live.port))
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def accepted(live: LiveInspector, count: int) -> None:
    """Wait until the server has accepted ``count`` connections (the kernel's backlog has
    them before the server's loop does)."""
    connections = live.server.server_state.connections
    wait_for(lambda: len(connections) >= count, 10, f"{count} connection(s) to be accepted")


def capture_ok(live: LiveInspector, timeout: float = 5) -> bool:
    with live.client(timeout=timeout) as client:
        return client.post("/h/normal", content=b"{}").status_code == 200


# -- requests that never finish ----------------------------------------------------------------


def test_half_sent_headers_are_closed_after_the_header_timeout(
    start: Callable[..., LiveInspector],
) -> None:
    live = start(header_timeout=1.0)
    idle = connect(live)  # sends nothing at all
    partial = connect(live)
    partial.sendall(b"POST /h/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never ends
    started = time.monotonic()
    for sock in (idle, partial):
        assert read_until_closed(sock, timeout=10) == b""
        sock.close()
    assert time.monotonic() - started < 9, "closed by the header timeout, not the test's"
    # A request that does finish its headers in time is served as usual.
    assert capture_ok(live)


def test_a_stalled_body_is_recorded_truncated_and_answered_408(
    start: Callable[..., LiveInspector],
) -> None:
    live = start(body_timeout=1.0)
    sock = connect(live)
    sock.sendall(
        b"POST /h/stall HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"partial": '
    )
    answer = read_until_closed(sock, timeout=10)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    with live.client() as client:
        wait_for(lambda: client.get("/api/requests?endpoint=stall").json()["requests"], 5, "row")
        item = client.get("/api/requests?endpoint=stall").json()["requests"][0]
        detail = client.get(f"/api/requests/{item['id']}").json()
    assert item["truncated"] and "client sent nothing for 1 s" in item["note"]
    assert item["response"]["status"] == 408  # never 2xx
    assert detail["size"] == len(b'{"partial": ')
    # Chunked bodies stall the same way.
    sock = connect(live)
    sock.sendall(
        b"POST /h/stall HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
    )
    assert read_until_closed(sock, timeout=10).startswith(b"HTTP/1.1 408 ")
    sock.close()


def test_a_body_that_keeps_coming_slowly_is_not_cut(start: Callable[..., LiveInspector]) -> None:
    live = start(body_timeout=1.0)
    sock = connect(live)
    body = b"x" * 6
    sock.sendall(b"POST /h/trickle HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
    for byte in body:  # one byte every 0.4 s: slow, but never 1 s without progress
        time.sleep(0.4)
        sock.sendall(bytes([byte]))
    sock.settimeout(10)
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    sock.close()


# -- more connections than the process can hold ----------------------------------------------


def test_connections_beyond_the_bound_get_a_fast_503_and_captures_recover(
    start: Callable[..., LiveInspector],
) -> None:
    live = start(max_connections=20, header_timeout=2.0)
    held = [connect(live) for _ in range(20)]
    accepted(live, 20)
    try:
        extra = connect(live)
        extra.sendall(b"POST /h/late HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        started = time.monotonic()
        answer = read_until_closed(extra, timeout=5)
        assert time.monotonic() - started < 2, "refused at once, not left waiting"
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nretry-after: 5\r\n" in answer.lower()
        extra.close()
        # The idle ones hit the header timeout; then captures are served again.
        wait_for(lambda: capture_ok(live, timeout=2), 10, "captures to be served again")
    finally:
        for sock in held:
            sock.close()


def limit_descriptors(soft: int, hard: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return apply


def test_captures_keep_working_while_2000_idle_connections_are_held(
    spawn: Spawn, tmp_path: Path
) -> None:
    """`ulimit -n 1024` is a common soft limit. Today 2,000 idle connections take every
    descriptor and normal captures time out; `serve` raises the soft limit to the hard one
    (4096 here) and bounds connections below it, so they keep working."""
    proc, base = start_serve(spawn, tmp_path, preexec_fn=limit_descriptors(1024, 4096))
    port = int(base.rsplit(":", 1)[1])
    held: list[socket.socket] = []
    try:
        for _ in range(2000):
            sock = socket.socket()
            sock.connect(("127.0.0.1", port))
            held.append(sock)
        with httpx.Client(base_url=base, timeout=5) as client:
            for n in range(20):
                answer = client.post("/h/normal", content=b'{"n": %d}' % n)
                assert answer.status_code == 200
            assert len(client.get("/api/requests?endpoint=normal").json()["requests"]) == 20
    finally:
        for sock in held:
            sock.close()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


# -- many large bodies at once ----------------------------------------------------------------


def read_head(sock: socket.socket, timeout: float) -> bytes:
    """An answer's status line and headers (the connection may stay open after them)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    return data


def test_large_bodies_in_flight_share_one_memory_budget(
    start: Callable[..., LiveInspector],
) -> None:
    """Two 1 MiB uploads in flight hold the whole 2 MiB budget: a third large body is not read
    but answered 503 with Retry-After at once (and recorded so), while small captures pass;
    once the two are stored, their share is given back and large bodies are taken again."""
    mib = 1024 * 1024
    live = start(max_body=2 * mib, max_body_memory=2 * mib)
    budget = live.runtime.receiver.budget
    head = b"POST /h/large HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % mib
    bodies = [bytes([n]) * mib for n in (1, 2)]
    slow = [connect(live) for _ in bodies]
    for sock, body in zip(slow, bodies, strict=True):
        sock.sendall(head + body[:1000])  # headers and a little: the body is in flight
    wait_for(lambda: budget.used == 2 * mib, 10, "both uploads to take their share")
    late = connect(live)
    late.sendall(head + b"z" * 1000)
    answer = read_head(late, timeout=10)
    late.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"\r\nretry-after: 5\r\n" in answer.lower()
    assert capture_ok(live)  # a small body takes no share: never refused for a large one
    for sock, body in zip(slow, bodies, strict=True):
        sock.sendall(body[1000:])
        assert read_head(sock, timeout=10).startswith(b"HTTP/1.1 200 ")
        sock.close()
    wait_for(lambda: budget.used == 0, 10, "the shares to be given back")
    with live.client() as client:
        assert client.post("/h/large", content=b"y" * mib).status_code == 200
        rows = client.get("/api/requests?endpoint=large&limit=10").json()["requests"]
        refused = [r for r in rows if r["response"]["status"] == 503]
        assert len(rows) == 4 and len(refused) == 1
        assert refused[0]["truncated"] and "memory budget" in refused[0]["note"]
        stored = sorted(
            client.get(f"/api/requests/{r['id']}/body").content
            for r in rows
            if r["response"]["status"] == 200
        )
    assert stored == sorted([*bodies, b"y" * mib])  # every answered body whole, byte-exact


# -- a live stream that never reads ----------------------------------------------------------


def test_a_stream_client_that_takes_nothing_is_disconnected(
    start: Callable[..., LiveInspector],
) -> None:
    live = start(send_timeout=1.0)
    runtime = live.server.config.app.state.runtime  # type: ignore[attr-defined]
    sock = connect(live, rcvbuf=4096)
    sock.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    wait_for(lambda: runtime.hub.subscriber_count == 1, 5, "the stream to subscribe")
    item = {"endpoint": "flood", "blob": "y" * 20_000}
    connections = live.server.server_state.connections
    deadline = time.monotonic() + 90  # a loaded machine fills buffers slowly

    def publish(done: threading.Event) -> None:
        for _ in range(200):
            runtime.hub.publish("update", item)
        done.set()

    # Flood it until the kernel's buffers and the transport's are full and the server gives up.
    # A batch at a time, each once the loop has run the one before: at a fixed rate, a loop
    # slower than that rate (a loaded machine) falls ever further behind its callbacks and
    # never gets back to the watchdog's sweep (seen: one sweep in 90 s).
    while len(connections) and time.monotonic() < deadline:
        done = threading.Event()
        live.loop.call_soon_threadsafe(publish, done)
        done.wait(10)
        time.sleep(0.05)
    assert not connections, "the stuck client's connection is still open"
    wait_for(lambda: runtime.hub.subscriber_count == 0, 5, "the subscriber to go")
    with pytest.raises(OSError):  # reset: the server dropped what it had queued
        sock.settimeout(5)
        while sock.recv(1 << 20):
            pass
    sock.close()
    assert capture_ok(live)


# -- clients that leave before the answer ------------------------------------------------------


def hold_the_writer(live: LiveInspector) -> threading.Event:
    """Block the store's writer (no capture can be committed, so none answered) until the
    returned event is set."""
    held, release = threading.Event(), threading.Event()

    def block(conn: object) -> None:
        held.set()
        release.wait(30)

    asyncio.run_coroutine_threadsafe(live.runtime.store.write(block), live.loop)
    assert held.wait(10), "the writer did not take the job"
    return release


def test_a_client_that_leaves_before_the_answer_is_recorded_as_not_answered(
    start: Callable[..., LiveInspector],
) -> None:
    live = start()
    connections = live.server.server_state.connections
    for count, way in enumerate(("half-close", "close"), start=1):
        # The store's writer is held until the server has seen the client go: else, on a
        # loaded machine, the answer could be written before the client left (delivered).
        release = hold_the_writer(live)
        sock = connect(live)
        sock.sendall(b'POST /h/gone HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{"a":1}')
        if way == "half-close":
            sock.shutdown(socket.SHUT_WR)
        else:
            sock.close()
        wait_for(lambda: not connections, 10, "the server to see the client go")
        release.set()
        with live.client() as client:

            def settled(count: int = count) -> bool:
                # The capture is visible from its commit, answered once on disk; how its
                # answer ended is recorded after that: wait for the record of its end.
                rows = client.get("/api/requests?endpoint=gone").json()["requests"]
                response = rows[0]["response"] if len(rows) == count else None
                return response is not None and (
                    response["client_gave_up_after_ms"] is not None or response["status"] is None
                )

            wait_for(settled, 5, "the capture")
            item = client.get("/api/requests?endpoint=gone").json()["requests"][0]
            detail = client.get(f"/api/requests/{item['id']}").json()
        assert detail["body_base64"] == "eyJhIjoxfQ=="  # the body is kept
        response = item["response"]
        assert response["status"] is None, f"{way}: recorded as answered"
        assert response["client_gave_up_after_ms"] is not None
        if way == "half-close":
            assert read_until_closed(sock, timeout=5) == b""
            sock.close()


# -- a malformed chunked body on a control route ----------------------------------------------


def test_a_malformed_chunked_body_on_a_control_route_is_a_clean_400(
    start: Callable[..., LiveInspector], caplog: pytest.LogCaptureFixture
) -> None:
    live = start()
    # uvicorn's loggers do not propagate to the root logger: listen to them directly.
    server_log = logging.getLogger("uvicorn.error")
    server_log.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    sock = connect(live)
    sock.sendall(
        b"PUT /api/endpoints/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\nZZZ\r\n\r\n'
    )
    answer = read_until_closed(sock, timeout=5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert capture_ok(live)
    server_log.removeHandler(caplog.handler)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "Invalid HTTP request received." in logged  # the handler did hear the server
    assert "Exception in ASGI application" not in logged
    assert all(r.exc_info is None for r in caplog.records), logged


def test_httpx_sees_the_503_as_an_answer(start: Callable[..., LiveInspector]) -> None:
    """A real client gets the refusal as an HTTP answer, not a reset."""
    live = start(max_connections=1)
    held = connect(live)
    accepted(live, 1)
    try:
        with httpx.Client(base_url=live.url, timeout=5) as client:
            answer = client.post("/h/x", content=b"{}")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    finally:
        held.close()


# -- every listener: the HTTPS one, and the pytest plugin's embedded server ----------------------


def tls_connect(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def read_tls_until_closed(sock: ssl.SSLSocket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, ssl.SSLError):  # closed without close_notify, or reset
        pass
    return data


STALLED = b"POST /h/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b'{"partial": '


@pytest.fixture
def tls_limits(tmp_path: Path) -> Iterator[Callable[..., tuple[TlsInspector, ssl.SSLContext]]]:
    started: list[TlsInspector] = []

    def make(**changes: Any) -> tuple[TlsInspector, ssl.SSLContext]:
        settings = Settings(data_dir=tmp_path / f"data{len(started)}", port=0, **changes)
        live = TlsInspector(settings)
        started.append(live.start())
        assert live.made is not None
        return live, ssl.create_default_context(cafile=str(live.made.ca_file))

    yield make
    for live in started:
        live.stop()


def test_the_https_listener_closes_idle_connections_and_stalled_bodies(
    tls_limits: Callable[..., tuple[TlsInspector, ssl.SSLContext]],
) -> None:
    live, context = tls_limits(header_timeout=1.0, body_timeout=1.0)
    port = live.settings.https_port
    idle = tls_connect(port, context)  # handshake done, no request ever
    started = time.monotonic()
    assert read_tls_until_closed(idle, timeout=10) == b""
    assert time.monotonic() - started < 9, "closed by the header timeout, not the test's"
    idle.close()
    stalled = tls_connect(port, context)
    stalled.sendall(STALLED)
    assert read_tls_until_closed(stalled, timeout=10).startswith(b"HTTP/1.1 408 ")
    stalled.close()
    with live.client() as client:
        wait_for(lambda: client.get("/api/requests?endpoint=stall").json()["requests"], 5, "row")
        item = client.get("/api/requests?endpoint=stall").json()["requests"][0]
    assert item["scheme"] == "https" and item["truncated"]
    assert item["response"]["status"] == 408 and "sent nothing for 1 s" in item["note"]


def test_one_bound_counts_the_connections_of_both_listeners(
    tls_limits: Callable[..., tuple[TlsInspector, ssl.SSLContext]],
) -> None:
    live, context = tls_limits(max_connections=3, header_timeout=30.0)
    held = [connect(live) for _ in range(3)]  # plain HTTP connections fill the bound
    accepted(live, 3)
    try:
        extra = tls_connect(live.settings.https_port, context)
        extra.sendall(b"POST /h/late HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        answer = read_tls_until_closed(extra, timeout=5)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nretry-after: 5\r\n" in answer.lower()
    finally:
        for sock in held:
            sock.close()

    # The plain ones gone, HTTPS captures are served.
    def served() -> bool:
        with httpx.Client(verify=context, timeout=5) as client:
            url = f"https://localhost:{live.settings.https_port}/h/tls-ok"
            return client.post(url, content=b"{}").status_code == 200

    wait_for(served, 10, "HTTPS captures to be served again")


def test_the_embedded_server_of_the_pytest_plugin_is_under_the_limits(tmp_path: Path) -> None:
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path, body_timeout=1.0)
    server = EmbeddedServer(settings).start()
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(STALLED)
        assert read_until_closed(sock, timeout=10).startswith(b"HTTP/1.1 408 ")
        sock.close()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            wait_for(lambda: client.get("/api/requests").json()["requests"], 5, "the row")
            item = client.get("/api/requests").json()["requests"][0]
        assert item["truncated"] and item["response"]["status"] == 408
    finally:
        server.stop()
