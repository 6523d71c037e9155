"""The one outbound path: the send routine and its failure sentences on real sockets, and the
same failure reading the same from replay, mirror, proxy, a delivery and ``check``."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from inspector import outbound
from inspector.check import check_receiver
from inspector.outbound import guard
from tests.conftest import bind_free, latest, post_delivery
from tests.test_forward import forward, replays_of
from tests.test_sender import wait_for_state

Handler = Callable[[socket.socket], None]


class Peer:
    """A plain TCP server on a free loopback port: each connection, once its HTTP request is
    read (``http=False``: its first bytes, whatever they are), goes to ``handler`` (which
    answers, or misbehaves), in its own thread."""

    def __init__(self, handler: Handler, *, http: bool = True) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.http = http
        self.requests: list[bytes] = []
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            if not self.http:
                self.requests.append(conn.recv(65536))
                with contextlib.suppress(OSError):
                    self.handler(conn)
                return
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            while length and len(body) < int(length[1]):  # read it all: a close must be a FIN
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            self.requests.append(head + b"\r\n\r\n" + body)
            with contextlib.suppress(OSError):
                self.handler(conn)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.accepting.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def peer(handler: Handler, *, http: bool = True) -> Iterator[Peer]:
    server = Peer(handler, http=http)
    try:
        yield server
    finally:
        server.close()


def answer(raw: bytes) -> Handler:
    def handle(conn: socket.socket) -> None:
        conn.sendall(raw)

    return handle


def reset(conn: socket.socket) -> None:
    """Close with RST instead of FIN (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def stall(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.recv(1)  # nothing more arrives: this returns when the client gives up and closes


def post(url: str, *, timeout: float = 5.0, cap: int = 1000, **options: Any) -> outbound.Exchange:
    """One POST through ``outbound.send`` with a fresh client."""

    async def main() -> outbound.Exchange:
        async with outbound.open_client(keepalive=0) as client:
            request = client.build_request("POST", url, content=b"{}")
            return await outbound.send(client, request, timeout=timeout, cap=cap, **options)

    return asyncio.run(main())


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) but never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=128) as sock:
        yield sock.getsockname()[1]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    sock = bind_free()  # bound, never listening: connections are refused
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def resolve_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """``metadata.test`` resolves to the cloud-metadata address (no DNS is asked)."""
    real = guard.resolve_host

    async def resolve(host: str, port: int) -> list[str]:
        if host == "metadata.test":
            return ["169.254.169.254"]
        return await real(host, port)

    monkeypatch.setattr(guard, "resolve_host", resolve)


METADATA = "refused: 169.254.169.254 is a link-local/cloud-metadata address"


# -- the routine and its sentences -----------------------------------------------------------


def test_an_answer_is_read_up_to_the_cap() -> None:
    with peer(answer(b"HTTP/1.1 201 Created\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello")) as p:
        done = post(f"http://127.0.0.1:{p.port}/x")
        assert (done.status, done.body, done.truncated, done.error) == (201, b"hello", False, None)
        assert ("X-A", "1") in done.headers and done.ok
        capped = post(f"http://127.0.0.1:{p.port}/x", cap=3)
        assert (capped.body, capped.truncated, capped.error) == (b"hel", True, None)


def test_an_exact_request_goes_on_the_wire_as_given() -> None:
    with peer(answer(b"HTTP/1.1 204 No Content\r\n\r\n")) as p:
        base = httpx.URL(f"http://127.0.0.1:{p.port}")
        headers = [("host", "app.test"), ("X-B", "2"), ("x-a", "1"), ("x-b", "3")]
        request = outbound.exact_request("patch", base, b"/a/../b?%7e=1&&x", headers, b"")

        async def main() -> outbound.Exchange:
            async with outbound.open_client() as client:
                return await outbound.send(client, request, timeout=5, cap=10)

        assert asyncio.run(main()).status == 204
    assert p.requests == [
        b"patch /a/../b?%7e=1&&x HTTP/1.1\r\n"
        + b"".join(n.encode() + b": " + v.encode() + b"\r\n" for n, v in headers)
        + b"\r\n"
    ]


def test_connection_refused() -> None:
    with closed_port() as port:
        done = post(f"http://127.0.0.1:{port}/hook")
    assert done.status is None and done.failure is not None
    assert done.failure.kind == "connection_refused"
    assert done.error == f"connection refused: nothing listens on 127.0.0.1:{port}"


def test_timeouts_name_what_did_not_arrive() -> None:
    with silent_port() as port:
        done = post(f"http://127.0.0.1:{port}/", timeout=0.3)
    assert done.timed_out and done.status is None
    assert done.error == f"timeout: no answer from 127.0.0.1:{port} within 0.3 s"
    with peer(stall) as p:
        done = post(f"http://127.0.0.1:{p.port}/", timeout=0.3)
    assert done.timed_out and done.status == 200 and not done.ok
    assert (
        done.error == f"timeout: the answer from 127.0.0.1:{p.port} was not complete within 0.3 s"
    )


def test_a_name_without_an_address() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def main() -> outbound.Exchange:
        async with outbound.open_client(resolve=resolve) as client:
            request = client.build_request("GET", "http://app.test:3000/")
            return await outbound.send(client, request, timeout=5, cap=10)

    done = asyncio.run(main())
    assert done.failure == outbound.Failure(
        "unresolved", "name not resolved: app.test (name or service not known)"
    )


def test_a_refused_target_is_never_contacted(resolve_metadata: None) -> None:
    done = post("http://metadata.test/latest")
    assert done.failure is not None and done.failure.kind == "refused_target"
    assert done.error == f"{METADATA} (metadata.test resolves to it)"


@pytest.mark.parametrize(
    ("handler", "kind", "text", "status"),
    [
        (lambda c: None, "closed", "{where} closed the connection without answering", None),
        (
            answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
            "closed",
            "{where} closed the connection before the answer was complete",
            200,
        ),
        (reset, "reset", "{where} dropped the connection (connection reset by peer)", None),
        (
            answer(b"SSH-2.0-OpenSSH_9.6\r\nProtocol mismatch.\r\n\r\n"),
            "not_http",
            "{where} did not answer with valid HTTP (illegal status line: ",
            None,
        ),
    ],
    ids=["closed", "closed midway", "reset", "not HTTP"],
)
def test_broken_answers(handler: Handler, kind: str, text: str, status: int | None) -> None:
    with peer(handler) as p:
        done = post(f"http://127.0.0.1:{p.port}/")
    where = f"127.0.0.1:{p.port}"
    lead = {"closed": "connection closed", "reset": "connection reset", "not_http": "not HTTP"}
    assert done.failure is not None and done.failure.kind == kind
    assert done.error is not None and done.error.startswith(
        f"{lead[kind]}: " + text.format(where=where)
    )
    assert done.status == status


def test_a_failed_tls_handshake_names_the_tls_cause() -> None:
    """Not the OS's words for OpenSSL's error number ("operation not permitted")."""
    plain_http = answer(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    with peer(plain_http, http=False) as p:  # a TLS hello gets a plain HTTP answer
        done = post(f"https://127.0.0.1:{p.port}/")
    assert done.failure == outbound.Failure(
        "tls",
        f"TLS: 127.0.0.1:{p.port} answered in plain HTTP, not TLS — use http:// for it, or the "
        "server's HTTPS port",
    )


def test_too_large_and_redirects_fail_only_when_the_caller_says_so() -> None:
    big = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
    with peer(big) as p:
        url = f"http://127.0.0.1:{p.port}/"
        assert post(url).error is None
        done = post(url, whole=True)
    assert done.failure == outbound.Failure(
        "too_large", f"too large: the answer from 127.0.0.1:{p.port} is over 1000 bytes"
    )
    with peer(answer(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n")) as p:
        url = f"http://127.0.0.1:{p.port}/"
        assert post(url).error is None and post(url).status == 302
        done = post(url, redirects_fail=True)
    assert done.status == 302 and not done.ok
    assert done.failure == outbound.Failure("redirect", "redirect to /x not followed")


def test_where_spells_the_port_out() -> None:
    assert outbound.where(httpx.URL("http://example.com/x")) == "example.com:80"
    assert outbound.where(httpx.URL("https://example.com/x")) == "example.com:443"
    assert outbound.where(httpx.URL("http://[::1]:3000/")) == "[::1]:3000"


# -- one failure, one sentence, from every caller --------------------------------------------


def every_caller(live: Any, url: str) -> dict[str, str | None]:
    """What each outbound caller reports when sending to ``url`` (which fails)."""
    seen: dict[str, str | None] = {}
    with live.client() as client:
        client.post("/h/src", content=b"{}")
        replayed = client.post(
            f"/api/requests/{latest(client, 'src')['id']}/replay", json={"url": url}
        )
        seen["replay"] = replayed.json()["error"]

        forward(client, "mir", url, "mirror")
        client.post("/h/mir", content=b"{}")
        seen["mirror"] = replays_of(client, latest(client, "mir")["id"])[0]["error"]

        forward(client, "prx", url, "proxy")
        relayed = client.post("/h/prx", content=b"{}")
        prefix = f"Bad gateway: forwarding to {url} failed: "
        assert relayed.text.startswith(prefix), relayed.text
        seen["proxy answer"] = relayed.text.removeprefix(prefix).removesuffix("\n")
        seen["proxy status"] = str(relayed.status_code)
        seen["proxy"] = replays_of(client, latest(client, "prx")["id"])[0]["error"]

        created = post_delivery(client, url=url, secret="s", schedule=[], timeout=0.3)
        assert created.status_code == 201, created.text
        seen["delivery"] = wait_for_state(client, created.json()["id"])["log"][0]["error"]

    report = asyncio.run(check_receiver(url, "s", timeout=0.3, oversize=1000))
    first = next(row for row in report.rows if row.group == "events").detail
    assert first.endswith(": the platform counts it a failure and retries"), first
    seen["check"] = first.removesuffix(": the platform counts it a failure and retries")
    return seen


def expect(text: str, proxy_status: int) -> dict[str, str | None]:
    same = ["replay", "mirror", "proxy answer", "proxy", "delivery", "check"]
    return {**dict.fromkeys(same, text), "proxy status": str(proxy_status)}


@pytest.mark.live
def test_connection_refused_reads_the_same_everywhere(make_live: Any) -> None:
    live = make_live(replay_timeout=0.3)
    with closed_port() as port:
        seen = every_caller(live, f"http://127.0.0.1:{port}/hook")
    assert seen == expect(f"connection refused: nothing listens on 127.0.0.1:{port}", 502)


@pytest.mark.live
@pytest.mark.slow  # check's 14 requests each wait out the 0.3 s
def test_a_timeout_reads_the_same_everywhere(make_live: Any) -> None:
    live = make_live(replay_timeout=0.3)
    with silent_port() as port:
        seen = every_caller(live, f"http://127.0.0.1:{port}/hook")
    assert seen == expect(f"timeout: no answer from 127.0.0.1:{port} within 0.3 s", 504)


@pytest.mark.live
def test_a_refused_target_reads_the_same_everywhere(make_live: Any, resolve_metadata: None) -> None:
    live = make_live(replay_timeout=0.3)
    seen = every_caller(live, "http://metadata.test/hook")
    assert seen == expect(f"{METADATA} (metadata.test resolves to it)", 502)
