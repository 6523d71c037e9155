"""serve's HTTP protocol on the fast stack: httptools, and h11 for what httptools would refuse
or read differently (any method, a target kept exactly), on one connection or several."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest

from inspector.connections import GuardedProtocol
from inspector.protocol import HttpToolsWithH11
from tests.conftest import LiveInspector

pytestmark = pytest.mark.live


def request(method: str, target: str, body: bytes = b"x") -> bytes:
    return (
        f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def answer(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP answer with a Content-Length: its status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = dict(line.partition(b":")[::2] for line in lines[1:])
    length = int(fields.get(b"content-length", b"0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), rest[:length]


def stored(live: LiveInspector, endpoint: str) -> list[dict[str, Any]]:
    with live.client() as client:
        found: list[dict[str, Any]] = client.get(
            "/api/requests", params={"endpoint": endpoint}
        ).json()["requests"]
    return found[::-1]


def test_the_server_runs_the_hybrid_protocol(live: LiveInspector) -> None:
    # Under the connection layer: its guard over our protocol, and over the h11 it hands to.
    protocol = live.server.config.http
    assert isinstance(protocol, type) and issubclass(protocol, HttpToolsWithH11)
    assert issubclass(protocol.h11_class, GuardedProtocol)


@pytest.mark.parametrize(
    ("method", "target", "path", "query"),
    [
        ("X-CUSTOM", "/h/proto/a", "/h/proto/a", ""),
        ("get", "/h/proto/b?x=1", "/h/proto/b", "x=1"),
        ("M" * 40, "/h/proto/c", "/h/proto/c", ""),
        ("POST", "/h/proto/d#frag?q=1", "/h/proto/d#frag", "q=1"),
        ("POST", "/h/proto/e?a=1#b", "/h/proto/e", "a=1#b"),
        ("PROPFIND", "/h/proto/f", "/h/proto/f", ""),  # known to httptools too
    ],
)
def test_any_method_and_target_is_captured_as_sent(
    live: LiveInspector, method: str, target: str, path: str, query: str
) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request(method, target, b"body"))
        assert answer(sock) == (200, b"OK")
    (item,) = [i for i in stored(live, "proto") if i["path"] == path]
    assert (item["method"], item["query"], item["size"]) == (method, query, 4)


def test_one_connection_moves_to_h11_mid_way_and_keeps_serving(live: LiveInspector) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(request("POST", "/h/keep/1"))
        assert answer(sock)[0] == 200
        sock.sendall(request("X-CUSTOM", "/h/keep/2"))  # handed over to h11 here
        assert answer(sock)[0] == 200
        sock.sendall(request("POST", "/h/keep/3"))
        assert answer(sock)[0] == 200
    items = stored(live, "keep")
    assert [(i["method"], i["path"]) for i in items] == [
        ("POST", "/h/keep/1"),
        ("X-CUSTOM", "/h/keep/2"),
        ("POST", "/h/keep/3"),
    ]


def test_a_request_line_split_across_packets_is_handed_over_whole(live: LiveInspector) -> None:
    raw = request("X-CUSTOM", "/h/split/x?k=v", b"12345")
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in (raw[:4], raw[4:20], raw[20:]):
            sock.sendall(piece)
            time.sleep(0.05)  # separate packets, so the server reads separate chunks
        assert answer(sock)[0] == 200
    (item,) = stored(live, "split")
    assert (item["method"], item["query"], item["size"]) == ("X-CUSTOM", "k=v", 5)


def test_what_neither_parser_accepts_is_still_a_400(live: LiveInspector) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    # ... and the server goes on serving.
    assert httpx.post(live.url + "/h/after", content=b"ok").status_code == 200
