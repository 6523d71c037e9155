"""Capture: byte-exact round trips, limits, durability, the JSON API.

In-process where the app's answer is all that is judged; over a real uvicorn (``live``) for
what a socket carries: big and chunked bodies, header order as the server parses it, a
restart, a sender that disconnects."""

from __future__ import annotations

import base64
import gzip
import socket
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import LiveInspector

pytestmark = pytest.mark.backends


def stored(client: httpx.Client, request_id: int | None = None) -> dict:
    if request_id is None:
        request_id = client.get("/api/requests?limit=1").json()["requests"][0]["id"]
    response = client.get(f"/api/requests/{request_id}")
    assert response.status_code == 200, response.text
    return response.json()


def body_of(item: dict) -> bytes:
    return base64.b64decode(item["body_base64"])


BODIES = {
    "binary": bytes(range(256)) * 4,
    "non_utf8": "café naïve".encode("latin-1") + b"\xff\xfe\x80",
    "empty": b"",
    "gzip": gzip.compress(b'{"compressed": true}' * 50),
    "malformed_json": b'{"a": 1,, "b": [}',
    "multipart": (
        b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\x02\r\n--XyZ--\r\n"
    ),
    "json_with_escapes": '{"url": "https:\\/\\/x.test", "name": "é", "n": 1.0}'.encode(),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_bodies_round_trip_byte_exact(app_client: httpx.Client, kind: str) -> None:
    body = BODIES[kind]
    headers = {"content-type": "application/octet-stream"}
    if kind == "gzip":
        headers["content-encoding"] = "gzip"
    response = app_client.post(f"/h/bodies/{kind}", content=body, headers=headers)
    assert response.status_code == 200
    assert response.text == "OK"
    item = stored(app_client)
    assert body_of(item) == body
    assert item["size"] == len(body)
    assert app_client.get(f"/api/requests/{item['id']}/body").content == body


@pytest.mark.live
def test_five_mib_body_round_trips(client: httpx.Client) -> None:
    body = bytes(range(256)) * (5 * 1024 * 4)
    assert len(body) == 5 * 1024 * 1024
    assert client.post("/h/big", content=body).status_code == 200
    item = stored(client)
    assert item["size"] == len(body)
    assert client.get(f"/api/requests/{item['id']}/body").content == body


def test_a_part_of_a_body_by_range_and_a_detail_without_the_body(app_client: httpx.Client) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    assert app_client.post("/h/ranged", content=body).status_code == 200
    request_id = stored(app_client)["id"]
    url = f"/api/requests/{request_id}/body"
    whole = app_client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    for asked, first, last in [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, len(body) - 1),
        ("bytes=-10", len(body) - 10, len(body) - 1),
        ("bytes=5-99999999", 5, len(body) - 1),  # cut at the end
    ]:
        part = app_client.get(url, headers={"range": asked})
        assert part.status_code == 206, asked
        assert part.content == body[first : last + 1], asked
        assert part.headers["content-range"] == f"bytes {first}-{last}/{len(body)}"
        assert part.headers["content-disposition"].startswith("attachment")
        assert part.headers["x-content-type-options"] == "nosniff"
    beyond = app_client.get(url, headers={"range": f"bytes={len(body)}-"})
    assert beyond.status_code == 416 and beyond.json()["error"] == "range_not_satisfiable"
    assert beyond.headers["content-range"] == f"bytes */{len(body)}"
    for ignored in ("bytes=0-1,5-6", "lines=1-2", "bytes=9-3", "nonsense"):
        answer = app_client.get(url, headers={"range": ignored})
        assert answer.status_code == 200 and answer.content == body, ignored
    # An empty body has no byte to send; the page reads that as an empty body.
    app_client.post("/h/ranged-empty")
    empty = stored(app_client)["id"]
    answer = app_client.get(f"/api/requests/{empty}/body", headers={"range": "bytes=0-99"})
    assert answer.status_code == 416 and answer.headers["content-range"] == "bytes */0"
    # The detail with a body limit: the fields, and only that many bytes of the body.
    for limit in (0, 1, 1000):
        item = app_client.get(f"/api/requests/{request_id}", params={"body_limit": limit}).json()
        assert body_of(item) == body[:limit] and item["size"] == len(body)
    assert (
        app_client.get("/api/requests/999999/body", headers={"range": "bytes=0-1"}).status_code
        == 404
    )


@pytest.mark.live
def test_headers_keep_order_and_duplicates_and_query_is_raw(client: httpx.Client) -> None:
    headers = [
        ("X-First", "1"),
        ("X-Dup", "a"),
        ("X-Middle", "m"),
        ("X-Dup", "b"),
        ("X-Latin", "caf\xe9"),
    ]
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers]
    raw_query = "b=2&a=1&a=1&sp=%20x+y&flag&enc=%E2%9C%93"
    url = f"/h/hdrs/deep/sub/path?{raw_query}"
    response = client.post(url, content=b"x", headers=raw)
    assert response.status_code == 200
    item = stored(client)
    names = [h[0] for h in item["headers"]]
    pairs = [h for h in item["headers"] if h[0].startswith("x-")]
    assert pairs == [[k.lower(), v] for k, v in headers]
    assert names.index("x-first") < names.index("x-middle")
    assert item["query"] == raw_query
    assert item["path"] == "/h/hdrs/deep/sub/path"
    assert item["endpoint"] == "hdrs"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_captured(app_client: httpx.Client, method: str) -> None:
    response = app_client.request(
        method, "/h/methods", content=b"" if method in ("GET", "HEAD") else b"m"
    )
    assert response.status_code == 200
    assert response.text == ("" if method == "HEAD" else "OK")
    item = stored(app_client)
    assert item["method"] == method
    assert item["response"]["status"] == 200
    assert item["received_at"].endswith("Z") and len(item["received_at"]) == 27


@pytest.mark.parametrize("path", ["/h/", "/h", "/h/bad%20name", "/h/" + "x" * 65, "/h/sem;colon"])
def test_invalid_endpoint_names_get_400_with_explanation(
    app_client: httpx.Client, path: str
) -> None:
    response = app_client.post(path, content=b"x")
    assert response.status_code == 400
    assert "endpoint name" in response.text
    assert "A-Z" in response.text


def test_oversize_content_length_gets_413_and_is_recorded(make_in_process) -> None:
    in_process = make_in_process(max_body=1000)
    with in_process.client() as client:
        response = client.post("/h/limits", content=b"x" * 1001)
        assert response.status_code == 413
        item = stored(client)
        assert item["truncated"] is True
        assert item["size"] == 1001
        assert body_of(item) == b""
        assert "exceeds" in item["note"]
        assert item["response"]["status"] == 413
        # The limit is inclusive.
        assert client.post("/h/limits", content=b"x" * 1000).status_code == 200


@pytest.mark.live
def test_chunked_body_over_limit_gets_413_when_it_crosses(make_live) -> None:
    live = make_live(max_body=100_000)
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            sent.append(1)
            yield b"y" * 10_000

    with live.client() as client:
        response = client.post("/h/chunky", content=chunks())
        assert response.status_code == 413
        item = stored(client)
        assert item["truncated"] is True
        assert item["size"] > 100_000
        assert "streaming" in item["note"]
        assert body_of(item) == b""


@pytest.mark.live
def test_chunked_body_under_limit_is_stored(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"part1-"
        yield b"part2"

    assert client.post("/h/chunked", content=chunks()).status_code == 200
    assert body_of(stored(client)) == b"part1-part2"


@pytest.mark.live
def test_restart_keeps_everything(live: LiveInspector) -> None:
    with live.client() as client:
        for i in range(5):
            client.post(f"/h/persist?i={i}", content=f"body-{i}".encode())
        before = client.get("/api/requests").json()["requests"]
    live.restart()
    with live.client() as client:
        after = client.get("/api/requests").json()["requests"]
        assert after == before
        assert body_of(stored(client, after[0]["id"])) == b"body-4"
        # Ids keep increasing after a restart.
        client.post("/h/persist", content=b"new")
        assert client.get("/api/requests?limit=1").json()["requests"][0]["id"] == 6


def test_retention_evicts_oldest(make_in_process) -> None:
    in_process = make_in_process(retention=3)
    with in_process.client() as client:
        for i in range(7):
            client.post("/h/ret", content=str(i).encode())
        items = client.get("/api/requests").json()["requests"]
        assert [it["id"] for it in items] == [7, 6, 5]
        assert client.get("/api/requests/1").status_code == 404


@pytest.mark.sqlite_only
def test_store_that_cannot_write_answers_503_and_never_2xx(make_in_process) -> None:
    in_process = make_in_process(busy_timeout=0.2)
    blocker = sqlite3.connect(in_process.settings.db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with in_process.client() as client:
            response = client.post("/h/locked", content=b"lost?")
            assert response.status_code == 503
            assert "Retry" in response.text
            blocker.execute("ROLLBACK")
            assert client.post("/h/locked", content=b"kept").status_code == 200
            items = client.get("/api/requests?endpoint=locked").json()["requests"]
            assert [body_of(stored(client, it["id"])) for it in items] == [b"kept"]
    finally:
        blocker.close()


@pytest.mark.sqlite_only
def test_full_disk_answers_503(make_in_process) -> None:
    in_process = make_in_process()
    with in_process.client() as client:
        client.post("/h/full", content=b"first")
        # Cap the database file at its current size: the next insert cannot find room.
        conn = sqlite3.connect(in_process.settings.db_path, isolation_level=None)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.close()
        in_process.runtime.store._write_conn.execute(f"PRAGMA max_page_count={pages}")
        response = client.post("/h/full", content=b"z" * 200_000)
        assert response.status_code == 503


def test_api_pagination_and_filters(app_client: httpx.Client) -> None:
    for i in range(7):
        app_client.post(f"/h/{'a' if i % 2 else 'b'}", content=str(i).encode())
    page1 = app_client.get("/api/requests?limit=3").json()
    assert [it["id"] for it in page1["requests"]] == [7, 6, 5]
    page2 = app_client.get(f"/api/requests?limit=3&before={page1['next_before']}").json()
    assert [it["id"] for it in page2["requests"]] == [4, 3, 2]
    page3 = app_client.get(f"/api/requests?limit=3&before={page2['next_before']}").json()
    assert [it["id"] for it in page3["requests"]] == [1]
    assert page3["next_before"] is None
    only_a = app_client.get("/api/requests?endpoint=a").json()["requests"]
    assert {it["endpoint"] for it in only_a} == {"a"} and len(only_a) == 3
    item = only_a[0]
    for key in ("id", "endpoint", "method", "path", "query", "received_at", "size", "content_type"):
        assert key in item
    assert item["response"]["status"] == 200


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=abc", "limit=5000", "before=x", "endpoint=bad%20name", "q=a%00b"]
)
def test_api_bad_parameters_get_json_400(app_client: httpx.Client, query: str) -> None:
    response = app_client.get(f"/api/requests?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert set(response.json()) == {"error", "detail"}


def test_body_download_is_an_inert_attachment(app_client: httpx.Client) -> None:
    app_client.post(
        "/h/dl", content=b"<script>alert(1)</script>", headers={"content-type": "text/html"}
    )
    item = stored(app_client)
    response = app_client.get(f"/api/requests/{item['id']}/body")
    assert response.headers["content-disposition"].startswith("attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/octet-stream"


def test_delete_clear_and_endpoints(app_client: httpx.Client) -> None:
    for name in ("one", "one", "two"):
        app_client.post(f"/h/{name}", content=b"x")
    endpoints = {e["name"]: e for e in app_client.get("/api/endpoints").json()["endpoints"]}
    assert endpoints["one"]["count"] == 2 and endpoints["two"]["count"] == 1
    assert endpoints["one"]["last_seen"].endswith("Z")
    assert app_client.delete("/api/requests/3").json() == {"deleted": 1}
    assert app_client.delete("/api/requests/3").status_code == 404
    assert app_client.get("/api/requests/3").json()["error"] == "not_found"
    assert app_client.delete("/api/requests").status_code == 400
    assert app_client.delete("/api/requests?endpoint=one").json() == {"deleted": 2}
    assert app_client.get("/api/requests").json()["requests"] == []


@pytest.mark.live
def test_client_that_disconnects_mid_body_is_still_recorded(live: LiveInspector) -> None:
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(
            b"POST /h/halfway HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 40
        )
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    with live.client() as client:
        while time.monotonic() < deadline:
            items = client.get("/api/requests?endpoint=halfway").json()["requests"]
            if items:
                break
            time.sleep(0.05)
        item = stored(client, items[0]["id"])
    assert item["truncated"] is True
    assert body_of(item) == b"a" * 40
    assert "disconnected" in item["note"]
    assert item["response"]["status"] is None  # nobody was left to answer


def test_a_failure_deriving_fields_never_costs_the_capture(
    app_client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An event key SQLite cannot store (a lone surrogate) stands for any bug in what we
    # derive from a request: the raw request must still be stored, and only then answered.
    monkeypatch.setattr(
        "inspector.receiver.timeline.event_identity", lambda headers, body: ("\ud800", None)
    )
    response = app_client.post("/h/derived", content=b"keep me")
    assert response.status_code == 200
    item = stored(app_client)
    assert body_of(item) == b"keep me"
    assert item["event_key"] is None
    assert "internal error" in item["note"]
