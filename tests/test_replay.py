"""Replay: byte-exact requests to a real app, re-signing, errors, the target-address guard."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from inspector.cli import main
from inspector.embedded import ServerThread
from inspector.outbound import (
    GuardedBackend,
    TargetRefused,
    literal_address,
    parse_ipv4_number,
    parse_target,
    refusal,
)
from inspector.replay import resign
from inspector.signatures import SignatureConfig, sign, verify
from inspector.store import Store
from tests.conftest import InProcessInspector, LiveInspector, latest

pytestmark = pytest.mark.backends

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}


@dataclass
class Seen:
    method: str
    target: bytes
    headers: list[tuple[str, str]]
    body: bytes


class Recorder:
    """A tiny Starlette app (the user's app): records what arrives, answers as told."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.status = 200
        self.headers: list[tuple[str, str]] = [("content-type", "text/plain")]
        self.body = b"app ok"
        self.delay = 0.0  # before answering; a client that hangs up ends it
        self.answered = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.endpoint, methods=METHODS)])

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        query = request.scope["query_string"]
        self.seen.append(
            Seen(
                request.method,
                request.scope["raw_path"] + (b"?" + query if query else b""),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
                body,
            )
        )
        if self.delay:
            # The body is read: the next message is the client hanging up, if it does.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(request.receive(), self.delay)
        self.answered += 1
        response = Response(self.body, status_code=self.status)
        response.raw_headers = [
            *(h for h in response.raw_headers if h[0] != b"content-type"),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers),
        ]
        return response

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Seen]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.seen) >= count, self.seen
        return self.seen


def recorder_app(make_server: Callable[..., ServerThread]) -> tuple[Recorder, ServerThread]:
    """Fixture body: a ``Recorder`` on a real uvicorn (other test modules reuse it)."""
    recorder = Recorder()
    return recorder, make_server(recorder.app)


app = pytest.fixture(recorder_app)


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes exactly as given (httpx would normalise the target) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
    return data


def expected_headers(captured: list[list[str]], host: str, length: int | None) -> list[tuple]:
    """What a replay must send: the capture's headers minus hop-by-hop (and those named in
    Connection), Host for the target in place, Content-Length in place (or last)."""
    named = {t.strip().lower() for n, v in captured if n == "connection" for t in v.split(",")}
    out = [
        (n, v)
        for n, v in captured
        if n not in HOP and n not in named and not n.startswith("proxy-")
    ]
    out = [(n, host if n == "host" else v) for n, v in out]
    if length is not None and not any(n == "content-length" for n, _ in out):
        out.append(("content-length", str(length)))
    return out


# -- byte-exact replays ----------------------------------------------------------------------


def test_replay_arrives_byte_exact(live: LiveInspector, app) -> None:
    recorder, server = app
    body = bytes(range(256)) * 3 + b"\r\n\x00end"
    query = b'b=2&a=1&a=1&sp=%20x+y&flag&q={"a":1}|^&enc=%E2%9C%93'
    head = (
        b"POST /h/rep/deep/sub?" + query + b" HTTP/1.1\r\n"
        b"Host: hooks.example.com\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"X-Dup: a\r\n"
        b"Connection: close, X-Hop\r\n"
        b"X-Hop: 1\r\n"
        b"Keep-Alive: timeout=5\r\n"
        b"Proxy-Authorization: Basic eA==\r\n"
        b"TE: trailers\r\n"
        b"X-Dup: b\r\n"
        b"X-Latin: caf\xe9\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"X-After: last\r\n\r\n"
    )
    assert raw_request(live.port, head, body).startswith(b"HTTP/1.1 200")
    with live.client() as client:
        captured = latest(client, "rep")
        assert captured["query"] == query.decode()
        url = f"{server.url}/hook"
        response = client.post(f"/api/requests/{captured['id']}/replay", json={"url": url})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == 200 and result["error"] is None
    assert base64.b64decode(result["body_base64"]) == b"app ok"
    assert result["url"] == f"{server.url}/hook/deep/sub?{query.decode()}"
    seen = recorder.wait_for(1)[0]
    assert seen.method == "POST"
    assert seen.target == b"/hook/deep/sub?" + query
    assert seen.body == body
    host = f"127.0.0.1:{server.port}"
    assert seen.headers == expected_headers(captured["headers"], host, len(body))
    assert ("x-latin", "caf\xe9") in seen.headers
    assert [v for n, v in seen.headers if n == "x-dup"] == ["a", "b"]
    # Nothing added: no user-agent, accept-encoding, or anything httpx would send.
    assert {n for n, _ in seen.headers} == {
        n for n, _ in expected_headers(captured["headers"], "", 1)
    }


def test_chunked_capture_is_replayed_with_a_content_length(live: LiveInspector, app) -> None:
    recorder, server = app
    head = (
        b"PUT /h/chunky HTTP/1.1\r\nHost: x\r\nX-One: 1\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n"
    )
    chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert raw_request(live.port, head, chunks).startswith(b"HTTP/1.1 200")
    with live.client() as client:
        captured = latest(client, "chunky")
        result = client.post(
            f"/api/requests/{captured['id']}/replay", json={"url": server.url}
        ).json()
    assert result["status"] == 200
    seen = recorder.wait_for(1)[0]
    assert seen.method == "PUT" and seen.body == b"hello world" and seen.target == b"/"
    assert seen.headers == [
        ("host", f"127.0.0.1:{server.port}"),
        ("x-one", "1"),
        ("content-length", "11"),
    ]


def test_get_without_body_gets_no_content_length(client: httpx.Client, app) -> None:
    recorder, server = app
    client.get("/h/plain?x=1", headers={"X-A": "1"})
    captured = latest(client, "plain")
    result = client.post(f"/api/requests/{captured['id']}/replay", json={"url": server.url})
    assert result.json()["status"] == 200
    seen = recorder.wait_for(1)[0]
    assert seen.method == "GET" and seen.target == b"/?x=1" and seen.body == b""
    assert "content-length" not in {n for n, _ in seen.headers}


def test_overrides_edit_method_headers_and_body(client: httpx.Client, app) -> None:
    recorder, server = app
    client.post(
        "/h/edit",
        content=b'{"a": 1}',
        headers=[("Content-Type", "application/json"), ("X-Dup", "1"), ("X-Dup", "2")],
    )
    captured = latest(client, "edit")
    response = client.post(
        f"/api/requests/{captured['id']}/replay",
        json={
            "url": server.url,
            "method": "patch",
            "headers": {"X-Dup": None, "X-New": ["1", "2"], "Content-Type": "text/plain"},
            "body_text": "héllo",
        },
    )
    result = response.json()
    assert result["status"] == 200 and result["edited"] is True
    seen = recorder.wait_for(1)[0]
    assert seen.method == "PATCH"
    assert seen.body == "héllo".encode()
    names = [n for n, _ in seen.headers]
    assert "x-dup" not in names
    assert [v for n, v in seen.headers if n == "x-new"] == ["1", "2"]
    assert names.index("content-type") < names.index("x-new")  # replaced in place
    assert ("content-length", str(len("héllo".encode()))) in seen.headers
    detail = client.get(f"/api/replays/{result['id']}").json()
    assert base64.b64decode(detail["request_body_base64"]) == "héllo".encode()
    assert detail["request_headers"] == [list(h) for h in result["request_headers"]]


def test_redirects_are_reported_not_followed(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.status = 302
    recorder.headers = [("location", "/elsewhere")]
    client.post("/h/redir", content=b"x")
    captured = latest(client, "redir")
    result = client.post(f"/api/requests/{captured['id']}/replay", json={"url": server.url}).json()
    assert result["status"] == 302
    assert ["location", "/elsewhere"] in result["headers"]
    time.sleep(0.1)
    assert len(recorder.seen) == 1


def test_large_answers_are_stored_up_to_a_mebibyte(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.body = b"z" * (1024 * 1024 + 10)
    client.post("/h/big", content=b"x")
    captured = latest(client, "big")
    result = client.post(f"/api/requests/{captured['id']}/replay", json={"url": server.url}).json()
    assert result["status"] == 200 and result["response_truncated"] is True
    assert len(base64.b64decode(result["body_base64"])) == 1024 * 1024


# -- errors ----------------------------------------------------------------------------------


def test_unreachable_target_is_a_clear_error_not_a_500(
    client: httpx.Client, refused_port: int
) -> None:
    client.post("/h/down", content=b"x")
    captured = latest(client, "down")
    url = f"http://127.0.0.1:{refused_port}/hook"
    response = client.post(f"/api/requests/{captured['id']}/replay", json={"url": url})
    assert response.status_code == 200
    result = response.json()
    assert result["status"] is None
    assert result["error"].startswith("connection refused: ")
    stored = client.get(f"/api/requests/{captured['id']}/replays").json()["replays"]
    assert stored[0]["error"] == result["error"]


def test_replays_go_when_their_request_goes(live: LiveInspector, refused_port: int) -> None:
    with live.client() as client:
        client.post("/h/gone", content=b"x")
        captured = latest(client, "gone")
        url = f"http://127.0.0.1:{refused_port}/"
        client.post(f"/api/requests/{captured['id']}/replay", json={"url": url})
        assert len(client.get(f"/api/requests/{captured['id']}/replays").json()["replays"]) == 1
        assert client.delete(f"/api/requests/{captured['id']}").status_code == 200
    store = Store(live.settings.store_location).open()
    try:
        assert (
            store.read_sync(lambda c: c.execute("SELECT count(*) FROM replays").fetchone()[0]) == 0
        )
    finally:
        store.close()


def test_timeout_is_reported(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.delay = 10  # ends when the replay hangs up
    client.post("/h/slow", content=b"x")
    captured = latest(client, "slow")
    started = time.monotonic()
    result = client.post(
        f"/api/requests/{captured['id']}/replay", json={"url": server.url, "timeout": 0.2}
    ).json()
    assert time.monotonic() - started < 5  # its 0.2 s timeout, not the app's 10 s
    assert result["status"] is None and result["error"].startswith("timeout: ")


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({"url": "ftp://127.0.0.1/"}, 400, "invalid_url"),
        ({"url": "not a url"}, 400, "invalid_url"),
        ({"url": "http://"}, 400, "invalid_url"),
        ({"url": "http://user:pw@127.0.0.1/"}, 400, "bad_request"),
        ({}, 400, "no_url"),
        ({"url": "http://127.0.0.1/", "surprise": 1}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "body_base64": "***"}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "headers": {"Bad Name": "x"}}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "headers": {"X": "a\r\nInjected: 1"}}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "headers": {"Transfer-Encoding": "x"}}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "timeout": 0}, 400, "bad_request"),
        ({"url": "http://127.0.0.1/", "resign": True}, 400, "no_secret"),
    ],
)
def test_bad_replay_requests_get_400(app_client: httpx.Client, payload, status, error) -> None:
    app_client.post("/h/bad", content=b"x")
    captured = latest(app_client, "bad")
    response = app_client.post(f"/api/requests/{captured['id']}/replay", json=payload)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_unknown_request_is_404(app_client: httpx.Client) -> None:
    response = app_client.post("/api/requests/999/replay", json={"url": "http://127.0.0.1:1/"})
    assert response.status_code == 404
    assert app_client.get("/api/requests/999/replays").status_code == 404
    assert app_client.get("/api/replays/999").status_code == 404


def test_target_is_remembered_and_replays_are_listed(live: LiveInspector, app) -> None:
    recorder, server = app
    published: list[tuple[str, Any]] = []
    hub = live.server.config.app.state.runtime.hub  # type: ignore[attr-defined]
    hub.subscribe()  # someone is listening, so updates are published
    original = hub.publish

    def spy(event: str, data: dict, *, id: int | None = None) -> None:
        published.append((event, id))
        original(event, data, id=id)

    hub.publish = spy
    with live.client() as client:
        client.post("/h/memo", content=b"one")
        captured = latest(client, "memo")
        first = client.post(
            f"/api/requests/{captured['id']}/replay", json={"url": f"{server.url}/a"}
        ).json()
        settings = client.get("/api/endpoints/memo").json()["settings"]
        assert settings["replay_to"] == f"{server.url}/a"
        second = client.post(f"/api/requests/{captured['id']}/replay", json={}).json()
        assert second["url"] == f"{server.url}/a"
        listed = client.get(f"/api/requests/{captured['id']}/replays").json()["replays"]
    assert [r["id"] for r in listed] == [second["id"], first["id"]]
    assert {r["kind"] for r in listed} == {"replay"}
    assert [s.target for s in recorder.wait_for(2)] == [b"/a", b"/a"]
    assert ("update", captured["id"]) in published


def test_cross_origin_replay_is_refused(app_client: httpx.Client, app) -> None:
    recorder, server = app
    app_client.post("/h/csrf", content=b"x")
    captured = latest(app_client, "csrf")
    for headers in (
        {"origin": "http://evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"content-type": "text/plain"},
    ):
        response = app_client.post(
            f"/api/requests/{captured['id']}/replay",
            content=f'{{"url": "{server.url}"}}',
            headers={"content-type": "application/json", **headers},
        )
        assert response.status_code == 403
        assert response.json()["error"] == "cross_origin"
    time.sleep(0.1)
    assert recorder.seen == []


# -- re-signing ------------------------------------------------------------------------------

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HMAC = {"header": "X-My-Sig", "algorithm": "sha512", "encoding": "base64", "prefix": "v="}


def _config(scheme: str) -> SignatureConfig:
    extra = {f"hmac_{k}": v for k, v in HMAC.items()} if scheme == "hmac" else {}
    return SignatureConfig(secrets=(SECRET,), scheme=scheme, **extra)


@pytest.mark.parametrize(
    "scheme", ["platform", "github", "stripe", "slack", "shopify", "standard", "hmac"]
)
def test_resign_verifies_after_a_body_edit(client: httpx.Client, app, scheme: str) -> None:
    recorder, server = app
    settings: dict[str, Any] = {"secret": SECRET, "scheme": scheme}
    if scheme == "hmac":
        settings["hmac"] = HMAC
    assert client.put(f"/api/endpoints/sig-{scheme}", json=settings).status_code == 200
    body = b'{"event": "message.received", "n": 1}'
    old = sign(scheme, SECRET, body, timestamp=1_000_000_000, config=_config(scheme))
    client.post(f"/h/sig-{scheme}", content=body, headers=[*old, ("X-Keep", "1")])
    captured = latest(client, f"sig-{scheme}")
    edited = b'{"event": "message.received", "n": 2}'
    response = client.post(
        f"/api/requests/{captured['id']}/replay",
        json={"url": server.url, "resign": True, "body_text": edited.decode()},
    )
    assert response.json()["status"] == 200, response.text
    seen = recorder.wait_for(1)[0]
    assert seen.body == edited
    verdict = verify(seen.headers, seen.body, _config(scheme))
    assert verdict is not None and verdict.status == "valid", verdict
    assert ("x-keep", "1") in seen.headers
    assert not {v for _, v in old} & {v for _, v in seen.headers}  # no stale signature


def test_resign_auto_uses_the_detected_scheme(client: httpx.Client, app) -> None:
    recorder, server = app
    client.put("/api/endpoints/sig-auto", json={"secret": SECRET})
    body = b'{"id": "evt_1"}'
    old = sign("stripe", SECRET, body, timestamp=1_000_000_000)
    client.post("/h/sig-auto", content=body, headers=old)
    captured = latest(client, "sig-auto")
    client.post(f"/api/requests/{captured['id']}/replay", json={"url": server.url, "resign": True})
    seen = recorder.wait_for(1)[0]
    stripe = [v for n, v in seen.headers if n.lower() == "stripe-signature"]
    assert len(stripe) == 1 and not stripe[0].startswith("t=1000000000,")
    verdict = verify(seen.headers, seen.body, SignatureConfig(secrets=(SECRET,)))
    assert verdict is not None and verdict.status == "valid" and verdict.scheme == "stripe"


def test_resign_keeps_the_svix_family_and_the_header_position() -> None:
    body = b"{}"
    old = [("svix-id", "msg_1"), ("svix-timestamp", "1"), ("svix-signature", "v1,AAAA")]
    headers = [("a", "1"), *old, ("z", "2")]
    out = resign(headers, body, SignatureConfig(secrets=(SECRET,)), headers)
    assert [n for n, _ in out] == ["a", "svix-id", "svix-timestamp", "svix-signature", "z"]
    verdict = verify(out, body, SignatureConfig(secrets=(SECRET,)))
    assert verdict is not None and verdict.status == "valid"


# -- the target-address guard ----------------------------------------------------------------

METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",
    "0xa9fea9fe",
    "0XA9FEA9FE",
    "0251.0376.0251.0376",
    "0xa9.0xfe.0xa9.0xfe",
    "169.254.43518",
    "0xa9.16689662",
    "169.254.169.254.",
    "%31%36%39.254.169.254",
    "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[0:0:0:0:0:ffff:a9fe:a9fe]",
    "[::169.254.169.254]",
    "[64:ff9b::a9fe:a9fe]",
    "[2002:a9fe:a9fe::1]",
]


@pytest.mark.parametrize("host", METADATA_SPELLINGS)
def test_metadata_spellings_are_refused(host: str) -> None:
    ip = literal_address(host)
    assert ip is not None
    assert refusal(ip) == "refused: 169.254.169.254 is a link-local/cloud-metadata address"
    with pytest.raises(TargetRefused) as info:
        parse_target(f"http://{host}/latest/meta-data/")
    assert info.value.detail == refusal(ip)
    assert info.value.status == 403


@pytest.mark.parametrize("host", ["[fd00:ec2::254]", "[fe80::1]", "169.254.0.1", "100.100.100.200"])
def test_other_link_local_and_metadata_addresses_are_refused(host: str) -> None:
    with pytest.raises(TargetRefused, match="is a link-local/cloud-metadata address"):
        parse_target(f"http://{host}/")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "192.168.0.10", "172.16.0.1", "0x7f.1"]
)
def test_loopback_and_private_targets_are_allowed(host: str) -> None:
    assert parse_target(f"http://{host}:3000/hook").host


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("16909060", "1.2.3.4"),
        ("0x01020304", "1.2.3.4"),
        ("1.131844", "1.2.3.4"),
        ("1.2.772", "1.2.3.4"),
        ("01.02.03.04", "1.2.3.4"),
        ("0x.0.0.1", "0.0.0.1"),
        ("1.2.3.4.5", None),
        ("256.1.1.1", None),
        ("1.2.3.256", None),
        ("4294967296", None),
        ("09.1.1.1", None),
        ("1..2.3", None),
        ("example.com", None),
        ("1_0.0.0.1", None),
        (" 1.2.3.4", None),
    ],
)
def test_numeric_ipv4_parser(text: str, expected: str | None) -> None:
    parsed = parse_ipv4_number(text)
    assert (str(parsed) if parsed else None) == expected


class NoConnect(httpcore.AsyncNetworkBackend):
    """An inner backend that fails the test if anything is ever connected."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(host)
        raise AssertionError(f"connected to {host}")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.mark.parametrize(
    "answers",
    [["169.254.169.254"], ["127.0.0.1", "169.254.169.254"], ["::ffff:169.254.169.254"]],
)
def test_connect_time_check_uses_the_resolved_address(answers: list[str]) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return answers

    inner = NoConnect()
    backend = GuardedBackend(resolve, inner)
    with pytest.raises(TargetRefused) as info:
        asyncio.run(backend.connect_tcp("metadata.test", 80))
    assert info.value.detail.startswith(
        "refused: 169.254.169.254 is a link-local/cloud-metadata address"
    )
    assert "metadata.test resolves to it" in info.value.detail
    assert inner.calls == []


def test_a_name_resolving_to_metadata_is_refused_over_the_api(
    in_process: InProcessInspector,
) -> None:
    engine = in_process.runtime.replay
    inner = NoConnect()

    async def resolve(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "metadata.test" else ["127.0.0.1"]

    engine.backend.resolve = resolve
    engine.backend.inner = inner
    with in_process.client() as client:
        client.post("/h/meta", content=b"x")
        captured = latest(client, "meta")
        response = client.post(
            f"/api/requests/{captured['id']}/replay", json={"url": "http://metadata.test/"}
        )
        assert response.status_code == 200
        result = response.json()
        assert result["status"] is None
        assert result["error"].startswith(
            "refused: 169.254.169.254 is a link-local/cloud-metadata address"
        )
        for spelling in ("2852039166", "[::ffff:169.254.169.254]", "0251.0376.0251.0376"):
            refused = client.post(
                f"/api/requests/{captured['id']}/replay", json={"url": f"http://{spelling}/"}
            )
            assert refused.status_code == 403
            assert refused.json()["error"] == "refused_target"
    assert inner.calls == []


def test_resolved_address_is_pinned(live: LiveInspector, app) -> None:
    recorder, server = app
    engine = live.server.config.app.state.runtime.replay  # type: ignore[attr-defined]

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "app.test"
        return ["127.0.0.1"]

    engine.backend.resolve = resolve
    with live.client() as client:
        client.post("/h/pin", content=b"x")
        captured = latest(client, "pin")
        url = f"http://app.test:{server.port}/x"
        result = client.post(f"/api/requests/{captured['id']}/replay", json={"url": url}).json()
    assert result["status"] == 200
    assert ("host", f"app.test:{server.port}") in recorder.wait_for(1)[0].headers


# -- the CLI ---------------------------------------------------------------------------------


def test_cli_replays_an_endpoint_in_order_with_and_without_a_server(
    live: LiveInspector, app, capsys, refused_port: int
) -> None:
    recorder, server = app
    with live.client() as client:
        for i in range(4):
            client.post("/h/order", content=f"body-{i}".encode())
        first_id = latest(client, "order")["id"] - 3
    data_dir = str(live.settings.data_dir)
    # While the server runs (WAL: both write).
    assert main(["replay", "--endpoint", "order", "--to", server.url, "--data-dir", data_dir]) == 0
    assert [s.body for s in recorder.wait_for(4)] == [f"body-{i}".encode() for i in range(4)]
    out = capsys.readouterr().out
    assert f"#{first_id}  POST {server.url}/  ->  200" in out
    with live.client() as client:
        listed = client.get(f"/api/requests/{first_id}/replays").json()["replays"]
        assert len(listed) == 1 and listed[0]["status"] == 200
        # The server picks up settings the CLI wrote within a second.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            settings = client.get("/api/endpoints/order").json()["settings"]
            if settings["replay_to"] == server.url:
                break
            time.sleep(0.05)
        assert settings["replay_to"] == server.url
    live.stop()
    # Without a server: the remembered target, explicit ids in the given order.
    ids = [str(first_id + 2), str(first_id)]
    assert main(["replay", *ids, "--data-dir", data_dir]) == 0
    assert [s.body for s in recorder.wait_for(6)[4:]] == [b"body-2", b"body-0"]
    # Unreachable: exit 1 and a clear line.
    code = main(
        ["replay", ids[0], "--to", f"http://127.0.0.1:{refused_port}/", "--data-dir", data_dir]
    )
    assert code == 1
    assert "connection refused" in capsys.readouterr().out
    assert main(["replay", "999", "--to", server.url, "--data-dir", data_dir]) == 1


def test_cli_replay_concurrency_and_resign(tmp_path: Path, make_live, app) -> None:
    recorder, server = app
    live = make_live()
    with live.client() as client:
        client.put("/api/endpoints/cc", json={"secret": SECRET})
        for i in range(6):
            client.post("/h/cc", content=f"{i}".encode())
    data_dir = str(live.settings.data_dir)
    live.stop()
    args = ["replay", "--endpoint", "cc", "--to", server.url, "--resign", "--data-dir", data_dir]
    assert main([*args, "--concurrency", "3"]) == 0
    seen = recorder.wait_for(6)
    assert sorted(s.body for s in seen) == [f"{i}".encode() for i in range(6)]
    for s in seen:
        verdict = verify(s.headers, s.body, SignatureConfig(secrets=(SECRET,)))
        assert verdict is not None and verdict.status == "valid"
