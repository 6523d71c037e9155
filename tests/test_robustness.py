"""Bad input always gets a clear error, never loses data and never crashes the server.

Hypothesis- and table-driven tests against one inspector for the whole module: a live one
(``server``) for anything that goes through a socket or a stream, and an in-process one
(``app_server``, same settings) for the control API's fuzzing, where only the app's answer is
judged and thousands of requests need no socket:

1. Every control route (taken from ``inspector.api.routes``, so a new route is fuzzed too)
   answers malformed path params, query params, JSON and non-JSON bodies with a status
   below 500, and every ``/api`` 4xx is ``{"error", "detail"}`` with a detail.
2. The capture route stores every request it answered (any method, sub-path, raw query,
   failure-mode parameters, headers, body) with the exact bytes, query and header pairs,
   and records the answer it gave.
3. Raw socket abuse (huge request lines, header floods, bad framing, pipelining, half
   requests) leaves the server answering captures and the API; a 2xx means stored.
4. SSE resume points that are not request ids get a 400 in JSON.

Only loopback addresses are contacted: URL-valued fields (replay, delivery and forward
targets) are drawn from non-URLs and loopback URLs.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from inspector import api
from inspector.capture import ENDPOINT_RE
from inspector.settings import Settings
from tests.conftest import InProcessInspector, LiveInspector, bind_free, post_delivery, put_endpoint

pytestmark = pytest.mark.live

MAX_DELAY = 0.05  # any delay the server accepts is this short; longer ones get 400
MAX_BODY = 4096  # small, so that bodies over the limit are cheap to send
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    inspector: LiveInspector | InProcessInspector
    port: int  # a live inspector's: URL-valued fields point at its capture route
    closed_port: int  # bound, never listening: connecting is refused at once
    # Where requests for an endless stream go when ``inspector`` has no socket.
    streams: Server | None = None
    request_ids: list[int] = field(default_factory=list)
    event_keys: list[str] = field(default_factory=list)
    delivery_ids: list[int] = field(default_factory=list)
    replay_ids: list[int] = field(default_factory=list)
    _client: httpx.Client | None = None

    @contextlib.contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """The module's one client for this inspector."""
        if self._client is None:
            # No keep-alive: a server that closes after an error never breaks the next request.
            limits = httpx.Limits(max_keepalive_connections=0)
            self._client = self.inspector.client(limits=limits)
        yield self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


SEED_BODIES = [
    b'{"event":"message.received","timestamp":"2025-01-15T08:30:00Z",'
    b'"data":{"messageId":"msg_1","content":"hi","channelId":"C1"}}',
    bytes(range(256)),
    b"",
    b'{"id":"evt_1","object":"event","type":"charge.succeeded","data":{"object":{"a":1}}}',
]


def seed(server: Server) -> None:
    """Requests, an endpoint with settings and a delivery, so id-based routes go deep."""
    with server.client() as client:
        put_endpoint(client, "seed", secret="s3cret", schedule=[1, 2])
        for i, body in enumerate(SEED_BODIES):
            response = client.post(
                f"/h/seed/sub/{i}?x={i}",
                content=body,
                headers={"x-webhook-signature": "sha256=00", "webhook-id": f"wh_{i}"},
            )
            assert response.status_code == 200
        items = client.get("/api/requests?endpoint=seed&limit=10").json()["requests"]
        server.request_ids = [it["id"] for it in items]
        server.event_keys = [it["event_key"] for it in items]
        created = post_delivery(
            client,
            event="member.joined",
            url=f"http://127.0.0.1:{server.port}/h/seed-delivery",
            schedule=[],
        )
        assert created.status_code == 201, created.text
        server.delivery_ids = [created.json()["id"]]
        replayed = client.post(
            f"/api/requests/{server.request_ids[0]}/replay",
            json={"url": f"http://127.0.0.1:{server.closed_port}/app"},
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["status"] is None  # refused: nothing listens there
        server.replay_ids = [replayed.json()["id"]]


def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir: Path = tmp_path_factory.mktemp("robustness") / "data"
    return Settings(
        data_dir=data_dir, port=0, max_delay=MAX_DELAY, max_body=MAX_BODY, replay_timeout=2.0
    )


def configure(srv: Server) -> None:
    """Seed it, and give the capture endpoints their settings."""
    seed(srv)
    with srv.client() as client:
        for name, body in CAPTURE_ENDPOINTS.items():
            put_endpoint(client, name, **body)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    closed = bind_free()
    live = LiveInspector(module_settings(tmp_path_factory)).start()
    srv = Server(live, live.port, closed.getsockname()[1])
    try:
        configure(srv)
        yield srv
    finally:
        srv.close()
        live.stop()
        closed.close()


@pytest.fixture(scope="module")
def app_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An in-process inspector with the same settings, seeded the same way. Its URL-valued
    fields point at the live ``server``, which also takes its stream requests."""
    inspector = InProcessInspector(module_settings(tmp_path_factory)).start()
    srv = Server(inspector, server.port, server.closed_port, streams=server)
    try:
        configure(srv)
        yield srv
    finally:
        srv.close()
        inspector.stop()


def ensure_seeded(server: Server) -> None:
    """Seed again if fuzzing deleted the seeded requests (``DELETE /api/requests?all=true``)."""
    with server.client() as client:
        for request_id in server.request_ids:
            if client.get(f"/api/requests/{request_id}").status_code != 200:
                seed(server)
                return


def assert_alive(server: Server) -> None:
    """The server still captures (and stores) and still answers the API."""
    tid = uuid.uuid4().hex
    with server.client() as client:
        response = client.post("/h/alive", content=tid.encode(), headers={"x-test-id": tid})
        assert response.status_code == 200, response.text
        found = find_capture(client, "alive", tid)
        assert found is not None and base64.b64decode(found["body_base64"]) == tid.encode()
        listed = client.get("/api/requests?limit=1")
        assert listed.status_code == 200, listed.text


def find_capture(client: httpx.Client, endpoint: str, tid: str) -> dict[str, Any] | None:
    """The stored request carrying ``x-test-id: tid`` (searched by the server), in full."""
    listed = client.get("/api/requests", params={"endpoint": endpoint, "q": tid, "limit": 5})
    assert listed.status_code == 200, listed.text
    items = listed.json()["requests"]
    assert len(items) <= 1, f"{len(items)} requests carry test id {tid}"
    if not items:
        return None
    detail = client.get(f"/api/requests/{items[0]['id']}")
    assert detail.status_code == 200, detail.text
    found: dict[str, Any] = detail.json()
    return found


def wait_for_capture(server: Server, endpoint: str, tid: str, timeout: float = 3.0) -> Any:
    with server.client() as client:
        deadline = time.monotonic() + timeout
        while True:
            found = find_capture(client, endpoint, tid)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


# -- 1. the control API never answers 5xx to bad input ---------------------------------------

SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])
TEXT = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec="utf-8"), max_size=8).map(lambda s: s + "\ud800"),
    SURROGATES,
    st.sampled_from(["", " ", "\x00", "\r\n", "²", "１２", "٣", "NaN", "1e999", "-0", "0x10"]),
)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**30, 0.5, -0.0, 1e308]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JUNK: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def loopback_urls(server: Server) -> st.SearchStrategy[str]:
    """Valid URLs that only ever reach loopback: a refused port or this server's captures."""
    return st.sampled_from(
        [
            f"http://127.0.0.1:{server.closed_port}/app",
            f"http://localhost:{server.closed_port}/",
            f"http://[::1]:{server.closed_port}/x?y=1",
            f"http://127.0.0.1:{server.port}/h/fz-replayed",
            f"http://127.0.0.1:{server.port}/h/fz-replayed/deeper?q=1",
        ]
    )


def url_values(server: Server) -> st.SearchStrategy[Any]:
    """A URL field: never an address outside loopback, not even a refused one (test_security
    covers those without contacting them)."""
    not_urls = st.one_of(
        JUNK.filter(lambda v: not (isinstance(v, str) and "//" in v)),
        st.sampled_from(
            [
                "ftp://127.0.0.1/",
                "http://",
                "http://[::1",
                "http://127.0.0.1:99999/",
                "http://127.0.0.1:0/",
                "http://u:p@127.0.0.1:1/",
                "http://127.0.0.1:" + "9" * 40 + "/",
                "http://127.0.0.1/" + "a" * 5000,
                "http://127.0.0.1/\r\nX: y",
                "http://127.0.0.1/\ud800",
            ]
        ),
    )
    return st.one_of(not_urls, loopback_urls(server))


def key_values(server: Server) -> dict[str, st.SearchStrategy[Any]]:
    """Per known body key: junk of every type plus near-misses of the right type."""
    urls = url_values(server)
    header_maps = st.dictionaries(
        st.one_of(st.text(max_size=10), st.sampled_from(["Host", "X:Y", "X\r\nY", "\ud800"])),
        st.one_of(JUNK, st.lists(TEXT, max_size=3), st.sampled_from(["a\r\nb", "\x00"])),
        max_size=3,
    )
    pairs = st.lists(st.lists(JUNK, max_size=3), max_size=3)
    return {
        "url": urls,
        "forward_to": urls,
        "replay_to": urls,
        "headers": st.one_of(JUNK, header_maps, pairs),
        "hmac": st.one_of(
            JUNK,
            st.fixed_dictionaries(
                {},
                optional={
                    "header": TEXT,
                    "algorithm": st.one_of(TEXT, st.sampled_from(["sha1", "md5", "SHA256"])),
                    "encoding": st.one_of(TEXT, st.sampled_from(["hex", "base64", "b32"])),
                    "prefix": TEXT,
                },
            ),
        ),
        "response": st.one_of(
            JUNK,
            st.dictionaries(
                st.sampled_from(
                    ["status", "body", "delay", "fail", "rate", "seed", "drop", "x", "fail_status"]
                ),
                SCALARS,
                max_size=4,
            ),
        ),
        "schedule": st.one_of(JUNK, st.lists(NUMBERS, max_size=25)),
        "secret": st.one_of(JUNK, st.lists(TEXT, max_size=3)),
        "retired_secrets": st.one_of(JUNK, st.lists(TEXT, max_size=12)),
        "wait_from": st.one_of(JUNK, st.sampled_from(["start", "end", "END", "", "middle"])),
        "set": st.one_of(JUNK, st.dictionaries(TEXT, JUNK, max_size=3)),
        "body_base64": st.one_of(JUNK, st.sampled_from(["", "AAAA", "AA=", "====", "A" * 4001])),
        "event": st.one_of(
            JUNK,
            st.sampled_from(["message.received", "member.joined", "nope", "x" * 300]),
        ),
        "scheme": st.one_of(JUNK, st.sampled_from(["platform", "stripe", "auto", "hmac"])),
    }


def near_valid(server: Server) -> dict[str, st.SearchStrategy[Any]]:
    """Per known body key: values a route accepts, or nearly (right type, odd content), so a
    body gets past its first check and junk in one field reaches the code behind it."""
    text = st.one_of(st.sampled_from(["s3cret", "x", "王小明", "a b"]), TEXT)
    headers = st.dictionaries(
        st.sampled_from(["X-Extra", "X-Webhook-Signature", "Content-Type", "X-A"]),
        st.one_of(text, st.lists(text, max_size=2), st.none()),
        max_size=2,
    )
    return {
        "secret": st.one_of(text, st.lists(text, min_size=1, max_size=3)),
        "retired_secrets": st.lists(text, min_size=1, max_size=10),
        "scheme": st.sampled_from(["auto", "platform", "github", "stripe", "standard", "hmac"]),
        "tolerance": st.sampled_from([0, 1, 300, 10**6]),
        "enforce": st.booleans(),
        "hmac": st.fixed_dictionaries(
            {},
            optional={
                "header": st.sampled_from(["X-Sig", "X Sig", ""]) | text,
                "algorithm": st.sampled_from(["sha1", "sha256", "sha512"]),
                "encoding": st.sampled_from(["hex", "base64"]),
                "prefix": st.sampled_from(["", "sha256=", " v1"]) | text,
            },
        ),
        "response": st.dictionaries(
            st.sampled_from(["status", "body", "content_type", "fail", "rate", "seed", "drop"]),
            st.one_of(st.sampled_from([202, 500, 0.5, "1", True, 0]), text),
            max_size=3,
        ),
        "schedule": st.lists(st.sampled_from([0.01, 1, 60, 1e7]), max_size=4),
        "schedule_tolerance": st.sampled_from([0, 0.1, 1]),
        "forward_to": loopback_urls(server),
        "forward_mode": st.sampled_from(["mirror", "proxy"]),
        "replay_to": loopback_urls(server),
        "url": loopback_urls(server),
        "resign": st.sampled_from([True, False, "auto"]),
        "headers": headers,
        "body_text": text,
        "body_base64": st.sampled_from(["", "aGk=", "AAECAw=="]),
        "method": st.sampled_from(["PATCH", "get", "PROPFIND", "X Y"]),
        "timeout": st.sampled_from([0.5, 1, 2]),
        "event": st.sampled_from(["message.received", "member.joined", "file.uploaded"]) | text,
        "body": st.one_of(text, st.just('{"event": "x"}'), JSON_BODIES.map(bytes.decode)),
        "set": st.dictionaries(
            st.sampled_from(["data.content", "data", "event", "data.a.b", "", "..", "timestamp"]),
            JUNK,
            max_size=2,
        ),
        "time_scale": st.sampled_from([0.001, 0.01, 1]),
        "wait_from": st.sampled_from(["start", "end"]),
    }


ROUTE_QUERY: dict[str, tuple[str, ...]] = {
    "GET /api/requests": (
        "endpoint",
        "method",
        "status",
        "signature",
        "event_type",
        "q",
        "limit",
        "before",
    ),
    "GET /api/requests/count": (
        "endpoint",
        "method",
        "status",
        "signature",
        "event_type",
        "q",
        "after",
        "before",
    ),
    "DELETE /api/requests": ("endpoint", "all"),
    "GET /api/requests/{id}/replays": ("limit",),
    "GET /api/requests/{id}/curl": ("url",),
    "GET /api/export": ("endpoint", "format"),
    "GET /api/events": ("endpoint", "limit", "before", "schedule", "tolerance", "wait_from"),
    "GET /api/events/{endpoint}/{event_key}": ("schedule", "tolerance", "wait_from"),
    "GET /api/deliveries": ("limit", "before", "state"),
    "GET /api/stream": ("endpoint", "after"),
    "GET /api/requests/{a}/diff/{b}": ("ignore_key_order",),
    "GET /api/replays/{id}/diff": ("ignore_key_order",),
}
ROUTE_BODY: dict[str, tuple[str, ...]] = {
    "PUT /api/endpoints/{name}": (
        "secret",
        "scheme",
        "tolerance",
        "enforce",
        "hmac",
        "response",
        "schedule",
        "schedule_tolerance",
        "wait_from",
        "forward_to",
        "forward_mode",
        "replay_to",
        "retired_secrets",
    ),
    "POST /api/requests/{id}/replay": (
        "url",
        "resign",
        "headers",
        "body_base64",
        "body_text",
        "method",
        "timeout",
    ),
    "POST /api/deliveries": (
        "event",
        "url",
        "secret",
        "body",
        "set",
        "scheme",
        "schedule",
        "time_scale",
        "wait_from",
        "timeout",
        "headers",
    ),
}
ROUTE_BODY["PATCH /api/endpoints/{name}"] = ROUTE_BODY["PUT /api/endpoints/{name}"]
SSE_PATHS = {"/api/stream", "/api/deliveries/stream"}


def api_routes() -> list[tuple[str, str]]:
    """(method, path template) of every route the API modules declare."""
    found = []
    for route in api.routes:
        assert isinstance(route, Route), route
        template = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append((method, template))
    return found


ROUTES = api_routes()


def test_route_table_names_real_routes() -> None:
    declared = {f"{m} {p}" for m, p in ROUTES}
    assert set(ROUTE_QUERY) <= declared and set(ROUTE_BODY) <= declared
    assert len(ROUTES) >= 20


JUNK_IDS = [
    "0",
    "-1",
    "1.5",
    "99999999999999999999",
    "999999999999999999",
    "abc",
    "%00",
    "%ff",
    "%C2%B2",  # "²": str.isdigit() says yes, int() says no
    "%C2%B9",
    "%EF%BC%91%EF%BC%92",  # fullwidth "１２"
    "%D9%A3",  # Arabic-Indic three
    "1%0A",
    "%20",
    "..",
    "%2e%2e",
    "1;2",
    "x" * 3000,
    "1" * 3000,
    "%ED%A0%80",  # an encoded lone surrogate
]


def path_value(server: Server, name: str) -> st.SearchStrategy[str]:
    real: list[str] = []
    if name in ("id", "a", "b"):
        real = [str(i) for i in server.request_ids + server.delivery_ids + server.replay_ids]
    elif name == "event_key":
        real = [quote(k, safe="") for k in server.event_keys if k]
    elif name in ("name", "endpoint"):
        real = ["seed", "fz-a", "fz.b", "-", "." * 64, "x" * 65]
    encoded = st.text(max_size=40).map(lambda s: quote(s, safe=""))
    options = [st.sampled_from(JUNK_IDS), encoded, st.integers().map(str)]
    if real:
        options[:0] = [st.sampled_from(real)] * 3
    return st.one_of(*options)


QUERY_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "-1",
            "0",
            "1",
            "1000",
            "1001",
            "99999999999999999999",
            "9" * 5000,
            "nan",
            "inf",
            "1e3",
            "0x10",
            " 5 ",
            "1_000",
            "%00",
            "%ff",
            "%ED%A0%80",
            "%C2%B2",
            "true",
            "none",
            "jsonl",
            "har",
            "valid",
            "60,300,1800",
            ",",
            "1,-1",
            "0.5",
            "2",
            "seed",
            "fz-a",
        ]
    ),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.text(max_size=30).map(lambda s: quote(s, safe="")),
)


def control_query(names: tuple[str, ...]) -> st.SearchStrategy[str]:
    pairs = st.lists(
        st.tuples(st.sampled_from([*names, "x", "", "%ff", "limit[]"]), QUERY_VALUES),
        max_size=5,
    )
    return pairs.map(lambda ps: "&".join(f"{n}={v}" for n, v in ps))


ROUTE_REQUIRED: dict[str, tuple[str, ...]] = {
    "POST /api/deliveries": ("event", "url", "secret"),
    "POST /api/requests/{id}/replay": ("url",),
}
REQUIRED: dict[str, Any] = {
    "event": lambda _: st.sampled_from(["message.received", "member.joined", "file.uploaded"]),
    "url": loopback_urls,
    "secret": lambda _: st.sampled_from(["s3cret", "王小明的密鑰"]),
}


def json_bodies(server: Server, route_key: str) -> st.SearchStrategy[bytes]:
    keys = ROUTE_BODY.get(route_key, ())
    known = key_values(server)
    valid = near_valid(server)
    if keys:
        # A near-valid object (what the route requires, valid) with up to two keys made junk
        # or an unknown one added.
        required = {k: REQUIRED[k](server) for k in ROUTE_REQUIRED.get(route_key, ())}
        optional = {k: valid[k] for k in keys if k not in required}
        base = st.fixed_dictionaries(required, optional=optional)
        junk = st.one_of(
            st.just([]),
            st.lists(st.sampled_from([*keys, "unknown", ""]), unique=True, max_size=2),
        )
        objects: st.SearchStrategy[Any] = st.tuples(
            base,
            junk.flatmap(lambda ks: st.fixed_dictionaries({k: known.get(k, JUNK) for k in ks})),
        ).map(lambda pair: {**pair[0], **pair[1]})
    else:
        objects = st.dictionaries(st.text(max_size=8), JUNK, max_size=4)
    as_json = st.one_of(objects, JUNK).map(lambda v: json.dumps(v).encode())
    raw = st.one_of(
        st.binary(max_size=200),
        st.sampled_from(
            [
                b"",
                b"{",
                b"[]",
                b"null",
                b'"x"',
                b"1",
                b"NaN",
                b"-Infinity",
                b"{}garbage",
                b'{"a": 1,, }',
                b"\xef\xbb\xbf{}",
                b"\xff\xfe{\x00}\x00",
                b"[" * 100_000,
                b"[" * 5000 + b"]" * 5000,
                b'{"a":' * 3000 + b"1" + b"}" * 3000,
                b"1" * 5000,
                b'{"secret": "' + b"x" * (1024 * 1024) + b'"}',
                b'"\\ud800"',
            ]
        ),
    )
    return st.one_of(as_json, as_json, raw)


CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/vnd.api+json",
        None,
        "text/plain",  # a form type: the CSRF guard refuses it with 403
        "application/x-www-form-urlencoded",
    ]
)
CONTROL_HEADERS = st.sampled_from(
    [
        *[{}] * 8,
        {"accept": "text/html"},
        {"origin": "null"},
        {"origin": "http://evil.example"},
        {"sec-fetch-site": "cross-site"},
        {"host": "evil.example"},
        {"host": ""},
        {"last-event-id": "abc"},
        {"last-event-id": "\xb2"},
    ]
)


def check_control_answer(method: str, path: str, response: httpx.Response) -> None:
    """Below 500; an ``/api`` 4xx (with a body: not HEAD) is ``{"error", "detail"}`` JSON."""
    text = response.text[:300] if response.is_stream_consumed else "(stream)"
    shown = f"{method} {path[:300]} -> {response.status_code}: {text}"
    assert response.status_code < 500, shown
    if 400 <= response.status_code < 500 and method != "HEAD" and path.startswith("/api"):
        assert response.headers["content-type"].startswith("application/json"), shown
        payload = response.json()
        assert isinstance(payload, dict) and set(payload) >= {"error", "detail"}, shown
        assert isinstance(payload["error"], str) and payload["error"], shown
        assert payload["detail"], shown


def send_control(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    streams: httpx.Client | None = None,
) -> None:
    raw_headers = {k: v.encode("latin-1") for k, v in (headers or {}).items()}
    request = client.build_request(method, path, content=content, headers=raw_headers)
    if request.url.path in SSE_PATHS and streams is not None:
        client = streams  # a 200 there never ends: only a socket can leave it after the head
        request = client.build_request(method, path, content=content, headers=raw_headers)
    response = client.send(request, stream=True)
    try:
        if not (path.split("?")[0] in SSE_PATHS and response.status_code == 200):
            response.read()  # a 200 stream never ends: its status is all we judge
        check_control_answer(method, path, response)
    finally:
        response.close()


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_control_route_answers_bad_input_with_a_clear_4xx(
    app_server: Server, method: str, template: str
) -> None:
    server = app_server
    ensure_seeded(server)
    names = re.findall(r"\{(\w+)\}", template)
    route_key = f"{method} {template}"
    queries = control_query(ROUTE_QUERY.get(route_key, ()))
    bodies = json_bodies(server, route_key)
    methods = st.sampled_from([method] * 6 + ["GET", "HEAD", "PROPFIND", "DELETE", "PATCH"])

    @FUZZ
    @given(
        params=st.fixed_dictionaries({n: path_value(server, n) for n in names}),
        query=queries,
        body=bodies,
        content_type=CONTENT_TYPES,
        extra=CONTROL_HEADERS,
        verb=methods,
    )
    def run(
        params: dict[str, str],
        query: str,
        body: bytes,
        content_type: str | None,
        extra: dict[str, str],
        verb: str,
    ) -> None:
        path = template
        for name, value in params.items():
            path = path.replace("{" + name + "}", value)
        if query:
            path += "?" + query
        headers = dict(extra)
        if content_type is not None:
            headers["content-type"] = content_type
        assert server.streams is not None
        with server.client() as client, server.streams.client() as streams:
            send_control(client, verb, path, content=body, headers=headers, streams=streams)

    run()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("PUT", "/api/endpoints/fz-a", b"[" * 100_000, 400),
        ("PUT", "/api/endpoints/fz-a", b"[" * 5000 + b"]" * 5000, 400),
        ("POST", "/api/deliveries", b'{"a":' * 3000 + b"1" + b"}" * 3000, 400),
        ("PUT", "/api/endpoints/fz-a", b'{"secret": "\\ud800"}', 400),
        ("PUT", "/api/endpoints/fz-a", b'{"secret": "' + b"x" * 5000 + b'"}', 400),
        ("PUT", "/api/endpoints/fz-a", json.dumps({"secret": ["s"] * 17}).encode(), 400),
        ("PUT", "/api/endpoints/fz-a", b'{"hmac": {"header": "\\ud800"}}', None),
        ("PUT", "/api/endpoints/fz-a", b'{"hmac": {"prefix": "\\udfff"}}', None),
        ("PUT", "/api/endpoints/fz-a", b'{"response": {"seed": "\\ud800"}}', None),
        (
            "POST",
            "/api/deliveries",
            b'{"body": "{}", "event": "\\ud800", "url": "http://127.0.0.1:9/", "secret": "s",'
            b' "schedule": []}',
            None,
        ),
        (
            "POST",
            "/api/deliveries",
            b'{"body": "{\\"event\\": \\"\\\\ud800\\"}", "url": '
            b'"http://127.0.0.1:9/", "secret": "s", "schedule": []}',
            None,
        ),
        ("GET", "/api/requests/%C2%B2", b"", 404),
        ("GET", "/api/requests/%C2%B2/body", b"", 404),
        ("DELETE", "/api/requests/%C2%B9", b"", 404),
        ("GET", "/api/deliveries/%C2%B3", b"", 404),
        ("POST", "/api/deliveries/%C2%B2/cancel", b"", 404),
        ("GET", "/api/replays/%C2%B2", b"", 404),
        ("GET", "/api/requests?limit=%C2%B2", b"", 400),
        ("GET", "/api/requests?before=99999999999999999999", b"", 400),
        ("GET", "/api/requests?status=" + "9" * 5000, b"", 400),
        ("GET", "/api/events?endpoint=fz-a&schedule=nan", b"", 400),
        ("GET", "/api/events?endpoint=fz-a&tolerance=nan", b"", 400),
        ("GET", "/api/export?format=%ff", b"", 400),
        ("PROPFIND", "/api/requests", b"", 405),
    ],
)
def test_known_bad_inputs(
    app_server: Server, method: str, path: str, body: bytes, status: int | None
) -> None:
    """Inputs that once slipped through (or nearly): an exact status where one is owed."""
    server = app_server
    with server.client() as client:
        response = client.request(
            method, path, content=body, headers={"content-type": "application/json"}
        )
        check_control_answer(method, path, response)
        if status is not None:
            assert response.status_code == status, response.text
        if response.status_code == 200 and path.startswith("/api/endpoints/"):
            again = client.get(path)
            assert again.status_code == 200, again.text  # and readable afterwards
            listed = client.get("/api/endpoints")
            assert listed.status_code == 200, listed.text
    assert_alive(server)


# -- 2. capture routes never lose a 2xx --------------------------------------------------------

CAPTURE_ENDPOINTS = {
    "cap-plain": {},
    "cap-signed": {"secret": ["s3cret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]},
    "cap-enforce": {"secret": "s3cret", "enforce": True},
    "cap-rules": {"response": {"fail": 1, "status": 202, "body": "rule", "retry_after": 3}},
}
ODD_METHODS = ["PROPFIND", "PURGE", "MKCOL", "REPORT", "X-CUSTOM", "get", "M" * 40]
METHODS = st.sampled_from(
    ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", *ODD_METHODS]
)
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# What a request-target may carry (visible ASCII); "?" starts the query.
PATH_CHARS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "?")
SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "",
            ".",
            "..",
            "%2e%2e",
            "%2F",
            "%00",
            "%ff",
            "%",
            "%zz",
            "%E7%8E%8B%E5%B0%8F%E6%98%8E",
            "%ED%A0%80",
            "%F0%9F%92%A9",
            ";a=b",
            "#frag",
            "~user",
            "@:!$&'()*+,=",
            "a" * 300,
        ]
    ),
    st.text(PATH_CHARS.replace("/", ""), max_size=12),
)
SUB_PATHS = st.lists(SEGMENTS, max_size=5).map(lambda parts: "".join("/" + p for p in parts))
FAULT_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "2",
            "-1",
            "200",
            "201",
            "204",
            "304",
            "404",
            "418",
            "500",
            "503",
            "599",
            "600",
            "99",
            "100",
            "103",
            "0.01",
            "0.05",
            "0.06",
            "1e-3",
            "1e999",
            "nan",
            "inf",
            "abc",
            "true",
            "false",
            "yes",
            "%00",
            "%ff",
            "%ED%A0%80",
            "a+b%20c",
            "text%2Fhtml",
            "text/plain%0D%0AX-Injected:%201",
            "9" * 40,
        ]
    ),
    st.text(PATH_CHARS.replace("&", "").replace("#", ""), max_size=10),
)
FAULT_NAMES = [
    "status",
    "body",
    "content_type",
    "delay",
    "fail",
    "fail_status",
    "rate",
    "seed",
    "retry_after",
]
QUERY_PARTS = st.one_of(
    st.tuples(st.sampled_from(FAULT_NAMES), FAULT_VALUES).map(lambda p: f"{p[0]}={p[1]}"),
    # drop closes the connection: asked for now and then, mostly with values it refuses
    st.sampled_from(["drop=1", "drop=true", "drop=0", "drop=maybe", "drop=", "dr%6Fp=no"]),
    st.sampled_from(["", "=", "&", "a", "a=", "=b", "a=1=2", "%zz=1", "st%61tus=x", "+=+"]),
    st.text(PATH_CHARS.replace("&", "").replace("#", ""), max_size=15),
)
RAW_QUERIES = st.one_of(
    st.none(),
    st.lists(QUERY_PARTS, max_size=5).map("&".join),
)
HEADER_NAMES = st.one_of(
    st.sampled_from(
        [
            "X-Webhook-Signature",
            "X-Hub-Signature-256",
            "X-Hub-Signature",
            "Stripe-Signature",
            "X-Slack-Signature",
            "X-Slack-Request-Timestamp",
            "X-Shopify-Hmac-Sha256",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-signature",
            "X-Webhook-Id",
            "X-GitHub-Delivery",
            "Content-Type",
            "Content-Encoding",
            "Origin",
            "Cookie",
            "Last-Event-ID",
            "Via",
            "X-Forwarded-For",
        ]
    ),
    st.text(TCHAR, min_size=1, max_size=20),
)
# field-value: visible ASCII and obs-text, inner spaces and tabs; no leading/trailing space.
VALUE_CHARS = "".join(chr(c) for c in [*range(0x21, 0x7F), *range(0x80, 0x100)])
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "sha256=",
            "sha256=zz",
            "sha256=" + "0" * 64,
            "t=1,v1=00",
            "t=,v1=",
            "t=99999999999999999999,v1=" + "a" * 64,
            "v0=00",
            "v1,AAAA v1,!!!",
            "v1," + "A" * 4000,
            "whsec_",
            "gzip",
            "application/json",
            "multipart/form-data; boundary=",
            "text/plain; charset=utf-16",
            "2025-01-15T08:30:00Z",
            "-1",
            "1e999",
            "caf\xe9 \xff",
        ]
    ),
    st.text(VALUE_CHARS + " \t", max_size=40).map(lambda v: v.strip(" \t")),
)
HOSTS = st.sampled_from(
    ["localhost", "127.0.0.1:1", "evil.example", "[::1]", "", "a" * 200, "x:y:z", "caf\xe9"]
)
JSON_TEMPLATES = st.sampled_from(
    [
        '{"event": %s, "timestamp": %s, "data": {"messageId": %s, "content": %s}}',
        '{"id": %s, "object": "event", "type": %s, "data": {"object": {"k": %s, "v": %s}}}',
        '{"event": "message.received", "data": {"sender": %s, "channelId": %s,'
        ' "type": %s, "content": %s}}',
        '{"event": "file.uploaded", "data": {"fileSize": %s, "fileType": %s,'
        ' "sender": {"displayName": %s}, "channelId": %s}}',
        '\ufeff{"type": %s, "a": %s, "b": %s, "c": %s}',
    ]
)
JSON_PIECES = st.one_of(
    st.sampled_from(
        [
            '"\\ud800"',
            '"\\udfff tail"',
            '"ok"',
            '""',
            "null",
            "1e999",
            "-0",
            "NaN",
            "123456789012345678901234567890",
            '"' + "x" * 500 + '"',
            "[1, {}]",
            '{"displayName": "\\ud83d"}',
            '"\\u202e\\u0000"',
            "true",
        ]
    ),
    st.text(max_size=12).map(json.dumps),
)
JSON_BODIES = st.tuples(JSON_TEMPLATES, st.lists(JSON_PIECES, min_size=4, max_size=4)).map(
    lambda tp: (tp[0] % tuple(tp[1])).encode("utf-8")
)
BODIES = st.one_of(
    st.binary(max_size=600),
    JSON_BODIES,
    JSON_BODIES,
    st.binary(min_size=MAX_BODY - 1, max_size=MAX_BODY + 2),  # at and over --max-body
)


def read_response(sock: socket.socket, method: str) -> tuple[list[int], bytes, bool]:
    """Statuses of the answer (1xx first, then the final one) and its body; and whether the
    connection closed before a final answer."""
    data = b""
    statuses: list[int] = []
    while True:
        head_end = data.find(b"\r\n\r\n")
        if head_end == -1:
            chunk = sock.recv(65536)
            if not chunk:
                return statuses, b"", True
            data += chunk
            continue
        head, data = data[:head_end], data[head_end + 4 :]
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        statuses.append(status)
        if status < 200:
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304):
            return statuses, b"", False
        length = int(headers.get(b"content-length", b"-1"))
        while length < 0 or len(data) < length:
            chunk = sock.recv(65536)
            if not chunk:
                if length < 0:
                    return statuses, data, False
                return statuses, data, True
            data += chunk
        return statuses, data[:length], False


@pytest.mark.parametrize("endpoint", sorted(CAPTURE_ENDPOINTS))
def test_capture_stores_every_request_it_answers(server: Server, endpoint: str) -> None:
    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        method=METHODS,
        sub_path=SUB_PATHS,
        query=RAW_QUERIES,
        host=HOSTS,
        headers=st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=8),
        duplicate=st.booleans(),
        body=BODIES,
        send_length=st.booleans(),
    )
    def run(
        method: str,
        sub_path: str,
        query: str | None,
        host: str,
        headers: list[tuple[str, str]],
        duplicate: bool,
        body: bytes,
        send_length: bool,
    ) -> None:
        framing = {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade"}
        headers = [(n, v) for n, v in headers if n.lower() not in framing]
        if duplicate and headers:
            headers.append(headers[0])
        tid = uuid.uuid4().hex
        path = f"/h/{endpoint}{sub_path}"
        target = path if query is None else f"{path}?{query}"
        sent = [("Host", host), ("X-Test-Id", tid), *headers]
        if body or send_length:
            sent.append(("Content-Length", str(len(body))))
        raw = f"{method} {target} HTTP/1.1\r\n".encode("latin-1")
        raw += b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in sent)
        raw += b"\r\n" + body
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(raw)
            statuses, answer, closed = read_response(sock, method)
        final = statuses[-1] if statuses and statuses[-1] >= 200 else None
        shown = f"{raw[:400]!r} -> {statuses} {answer[:200]!r} closed={closed}"
        with server.client() as client:
            found = find_capture(client, endpoint, tid)
        assert found is not None, f"not stored: {shown}"
        assert found["method"] == method, shown
        assert found["path"] == path, shown
        assert found["query"] == (query or ""), shown
        assert [tuple(h) for h in found["headers"]] == [(n.lower(), v) for n, v in sent], shown
        oversize = len(body) > MAX_BODY  # answered 413 unread: recorded, body not kept
        assert base64.b64decode(found["body_base64"]) == (b"" if oversize else body), shown
        assert found["size"] == len(body), shown
        assert found["truncated"] is oversize, shown
        recorded = found["response"]
        assert recorded["in_progress"] is False, shown
        if final is not None:
            assert not closed, shown
            assert recorded["status"] == final, shown
            assert not recorded["dropped"], shown
            if method != "HEAD" and final not in (204, 304):
                assert base64.b64decode(recorded["body_base64"]) == answer, shown
            if oversize:
                assert final == 413, shown
            if endpoint == "cap-enforce":  # nothing unsigned gets through; 413, then 401 first
                assert final in (401, 413), shown
                assert (found["signature"] or {}).get("status") != "valid", shown
        else:
            assert closed and recorded["dropped"], shown
        if final is not None and final >= 500:  # chosen by a failure mode, never a crash
            assert endpoint == "cap-rules" or re.search(
                r"(^|&)(status|fail|rate|fail_status)=", unquote(query or "")
            ), shown

    run()


POISON_BODIES = [
    b'{"event": "\\ud800", "timestamp": 1}',
    b'{"id": "\\udc00", "object": "event", "type": "x"}',
    b'{"event": "x", "data": {"messageId": "a\\ud800"}}',
    b'{"type": "\\ud800\\udfff\\udfff"}',
    b'{"event": "message.received", "data": {"content": "\\ud800 hi",'
    b' "sender": {"displayName": "\\udfff"}, "channelId": "\\ud83d"}}',
    b'{"event": "custom", "data": {"object": {"k\\ud800": "v\\ud800"}}}',
]


@pytest.mark.parametrize("body", POISON_BODIES)
def test_lone_surrogates_in_a_json_body_are_stored_and_every_view_still_answers(
    server: Server, body: bytes
) -> None:
    """JSON escapes that decode to lone surrogates must neither cost the capture (SQLite
    cannot store them as text) nor break the views that show it (UTF-8 responses)."""
    tid = uuid.uuid4().hex
    with server.client() as client:
        answer = client.post("/h/poison", content=body, headers={"x-test-id": tid})
        assert answer.status_code == 200, answer.text
        found = find_capture(client, "poison", tid)
        assert found is not None and base64.b64decode(found["body_base64"]) == body
        key = quote(found["event_key"], safe="")
        for path in [
            "/api/requests?limit=5",
            "/api/requests?endpoint=poison&limit=5",
            f"/api/requests/{found['id']}/curl",
            "/api/events?endpoint=poison",
            f"/api/events/poison/{key}",
            "/api/export?endpoint=poison",
            "/api/export?endpoint=poison&format=har",
            "/?endpoint=poison",
        ]:
            response = client.get(path)
            assert response.status_code == 200, f"{path}: {response.text[:300]}"
        stream = f"/api/stream?endpoint=poison&after={found['id'] - 1}"
        with client.stream("GET", stream) as response:
            assert response.status_code == 200
            first = itertools.islice(response.iter_lines(), 20)
            assert f"id: {found['id']}" in first


@pytest.mark.parametrize(
    "name",
    ["", "%00", "a%2Fb/../", "x" * 65, "%E7%8E%8B", "a b", "a%20b", "@", "%ff", "a%0D%0Ab"],
)
def test_invalid_endpoint_name_gets_400_with_an_explanation(server: Server, name: str) -> None:
    target = f"/h/{name}" if " " not in name else f"/h/{quote(name)}"
    decoded = unquote(target)[3:].split("/", 1)[0]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode())
        statuses, answer, _closed = read_response(sock, "POST")
    if ENDPOINT_RE.fullmatch(decoded):
        assert statuses == [200], (statuses, answer)
    else:
        assert statuses == [400], (statuses, answer)
        assert b"Invalid endpoint name" in answer and b"A-Z a-z 0-9" in answer
    assert_alive(server)


# -- 3. raw socket abuse ---------------------------------------------------------------------


@dataclass
class Abuse:
    """Raw bytes for the capture route; each ``{tid}`` becomes a fresh test id."""

    raw: bytes
    # Per request in ``raw`` (in order): (endpoint, body) it must be stored with if it is
    # answered 2xx (body None: not checked); None for a request refused before capture.
    requests: list[tuple[str, bytes | None] | None] = field(default_factory=list)
    # The final statuses owed, when the inspector (not the HTTP parser) decides them.
    expect: list[int] | None = None
    close: bool = False  # close the connection right after sending
    half_close: bool = False  # shut down our sending side, then read
    # Recorded even though no answer came (the sender went away mid-request): the first
    # request's (endpoint, body).
    recorded: tuple[str, bytes] | None = None


def req(target: str, headers: str = "", body: bytes = b"", *, version: str = "1.1") -> bytes:
    head = f"POST {target} HTTP/{version}\r\n"
    if version == "1.1":
        head += "Host: robust\r\n"
    head += "X-Test-Id: {tid}\r\n" + headers
    if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("utf-8") + b"\r\n" + body


ANY = ("raw", None)  # a request the parser may refuse: if answered 2xx, stored (any body)
ABUSES: dict[str, Abuse] = {
    "10 KB path": Abuse(req("/h/raw/" + "p" * 10240, body=b"long"), [("raw", b"long")], [200]),
    "60 KB path": Abuse(req("/h/raw/" + "p" * 61440, body=b"x"), [("raw", b"x")]),
    "100 headers of 1 KB": Abuse(
        req("/h/raw", "".join(f"X-H{i}: {'v' * 1024}\r\n" for i in range(100)), b"h"),
        [("raw", b"h")],
    ),
    "control char in header name": Abuse(req("/h/raw", "X-B\x01d: v\r\n", b"n"), [("raw", b"n")]),
    "space in header name": Abuse(req("/h/raw", "X Bad: v\r\n", b"n"), [("raw", b"n")]),
    "NUL in header value": Abuse(req("/h/raw", "X-Bad: a\x00b\r\n", b"n"), [("raw", b"n")]),
    "header line without colon": Abuse(req("/h/raw", "NoColon\r\n", b"n"), [("raw", b"n")]),
    "obs-fold continuation": Abuse(req("/h/raw", "X-A: a\r\n  folded\r\n", b"n"), [("raw", b"n")]),
    "bare LF line endings": Abuse(
        b"POST /h/raw HTTP/1.1\nHost: x\nX-Test-Id: {tid}\nContent-Length: 2\n\nlf",
        [("raw", b"lf")],
    ),
    "Content-Length longer than the body, then half-close": Abuse(
        req("/h/raw", "Content-Length: 100\r\n", b"only ten.."),
        half_close=True,
        recorded=("raw", b"only ten.."),
    ),
    "Content-Length longer than the body, then close": Abuse(
        req("/h/raw", "Content-Length: 100\r\n", b"only ten.."),
        close=True,
        recorded=("raw", b"only ten.."),
    ),
    "Content-Length shorter than the body": Abuse(
        req("/h/raw", "Content-Length: 3\r\n", b"abcGARBAGE\r\n\r\n"), [("raw", b"abc")]
    ),
    "two different Content-Lengths": Abuse(
        req("/h/raw", "Content-Length: 3\r\nContent-Length: 4\r\n", b"abcd"),
        [("raw", b"abc")],
    ),
    "negative Content-Length": Abuse(req("/h/raw", "Content-Length: -1\r\n", b"x")),
    "Content-Length over max-body": Abuse(
        req("/h/raw", "Content-Length: 99999999999\r\n", b"x"),
        expect=[413],
        recorded=("raw", b""),
    ),
    "chunked body over max-body": Abuse(
        req(
            "/h/raw",
            "Transfer-Encoding: chunked\r\n",
            b"1000\r\n" + b"c" * 4096 + b"\r\n10\r\n" + b"d" * 16 + b"\r\n0\r\n\r\n",
        ),
        expect=[413],
        recorded=("raw", b""),
    ),
    "Content-Length and chunked": Abuse(
        req(
            "/h/raw",
            "Content-Length: 50\r\nTransfer-Encoding: chunked\r\n",
            b"3\r\nabc\r\n0\r\n\r\n",
        ),
        [("raw", b"abc")],
    ),
    "valid chunked with extension and trailer": Abuse(
        req(
            "/h/raw",
            "Transfer-Encoding: chunked\r\n",
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        [("raw", b"abcde")],
        [200],
    ),
    "malformed chunk size": Abuse(
        req("/h/raw", "Transfer-Encoding: chunked\r\n", b"zz\r\nabc\r\n0\r\n\r\n"), [ANY]
    ),
    "chunk longer than announced": Abuse(
        req("/h/raw", "Transfer-Encoding: chunked\r\n", b"2\r\nabcdef\r\n0\r\n\r\n"), [ANY]
    ),
    "chunked, closed mid-chunk": Abuse(
        req("/h/raw", "Transfer-Encoding: chunked\r\n", b"a\r\n12345"),
        close=True,
        recorded=("raw", b"12345"),
    ),
    "unknown transfer-coding": Abuse(
        req("/h/raw", "Transfer-Encoding: gzip, chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n"), [ANY]
    ),
    "HTTP/1.0 without Host": Abuse(
        req("/h/raw", body=b"ten", version="1.0"), [("raw", b"ten")], [200]
    ),
    "HTTP/1.1 without Host": Abuse(
        b"POST /h/raw HTTP/1.1\r\nX-Test-Id: {tid}\r\nContent-Length: 2\r\n\r\nnh",
        [("raw", b"nh")],
    ),
    "HTTP/0.9 request line": Abuse(b"GET /h/raw\r\n\r\n"),
    "HTTP/2 preface": Abuse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    "TLS client hello": Abuse(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64),
    "garbage": Abuse(b"\x00\xff GARBAGE \r\n\r\n"),
    "raw UTF-8 in the path": Abuse(req("/h/raw/王", body=b"u"), [("raw", b"u")]),
    "NUL in the path": Abuse(req("/h/raw/\x00", body=b"z"), [("raw", b"z")]),
    "absolute-form target": Abuse(req("http://evil.example/h/raw", body=b"a"), [("raw", b"a")]),
    "lowercase version": Abuse(b"POST /h/raw http/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
    "Expect: 100-continue": Abuse(
        req("/h/raw", "Expect: 100-continue\r\n", b"ok"), [("raw", b"ok")], [200]
    ),
    "pipelined": Abuse(
        req("/h/raw", body=b"one") + req("/h/raw2", body=b"two") + req("/h/raw", body=b""),
        [("raw", b"one"), ("raw2", b"two"), ("raw", b"")],
        [200, 200, 200],
    ),
    "pipelined after a refused request": Abuse(
        req("/h/", body=b"x") + req("/h/raw?status=201", body=b"next"),
        [None, ("raw", b"next")],
        [400, 201],
    ),
    "pipelined with a drop first": Abuse(
        req("/h/raw?drop=1", body=b"d") + req("/h/raw", body=b"after"),
        [("raw", b"d"), ("raw", b"after")],
        [],
        recorded=("raw", b"d"),
    ),
    "closed mid-request-line": Abuse(b"POST /h/raw HT", close=True),
    "closed mid-headers": Abuse(b"POST /h/raw HTTP/1.1\r\nHost: x\r\nX-Te", close=True),
    "closed after headers, before the body": Abuse(
        req("/h/raw", "Content-Length: 5\r\n"), close=True, recorded=("raw", b"")
    ),
}


def parse_responses(data: bytes) -> list[int]:
    """Final statuses of the complete HTTP/1.1 responses at the start of ``data``."""
    statuses = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end == -1:
            return statuses
        lines = data[:end].split(b"\r\n")
        try:
            status = int(lines[0].split(b" ")[1])
        except (IndexError, ValueError):
            return statuses
        headers = dict(line.lower().partition(b":")[::2] for line in lines[1:])
        data = data[end + 4 :]
        if status < 200:
            continue
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            last = data.find(b"\r\n0\r\n\r\n")
            if last == -1:
                return statuses
            data = data[last + 7 :]
        else:
            length = int(headers.get(b"content-length", b"0"))
            if len(data) < length:
                return statuses
            data = data[length:]
        statuses.append(status)


def read_answers(sock: socket.socket, count: int | None) -> bytes:
    """What the server sends: ``count`` complete answers, or until it closes or goes quiet."""
    sock.settimeout(5.0)
    data = b""
    while count is None or len(parse_responses(data)) < count:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
        sock.settimeout(0.3)  # more answers follow at once, if any
    return data


@pytest.mark.parametrize("case", list(ABUSES))
def test_raw_socket_abuse_leaves_the_server_up(server: Server, case: str) -> None:
    abuse = ABUSES[case]
    tids = []
    raw = abuse.raw
    while b"{tid}" in raw:
        tids.append(uuid.uuid4().hex)
        raw = raw.replace(b"{tid}", tids[-1].encode(), 1)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        data = b""
        if abuse.half_close:
            sock.shutdown(socket.SHUT_WR)
        if not abuse.close:
            data = read_answers(sock, None if abuse.expect is None else len(abuse.expect))
    statuses = parse_responses(data)
    shown = f"{case}: {data[:600]!r}"
    assert all(s < 500 for s in statuses), shown
    if abuse.expect is not None:
        assert statuses == abuse.expect, shown
    for expected, tid, status in zip(abuse.requests, tids, statuses, strict=False):
        if expected is None:
            continue
        if not 200 <= status < 300:
            break  # after a refused request, answers no longer line up with requests
        endpoint, body = expected
        found = wait_for_capture(server, endpoint, tid)
        assert found is not None, f"answered {status} but not stored: {shown}"
        assert found["response"]["status"] == status, shown
        if body is not None:
            assert base64.b64decode(found["body_base64"]) == body, shown
    if abuse.recorded is not None:
        endpoint, body = abuse.recorded
        found = wait_for_capture(server, endpoint, tids[0])
        assert found is not None, f"not recorded: {shown}"
        assert base64.b64decode(found["body_base64"]) == body, shown
        response = found["response"]
        if case == "pipelined with a drop first":
            assert not found["truncated"] and response["dropped"], shown
        elif 413 in (abuse.expect or ()):
            assert found["truncated"] and response["status"] == 413, shown
        else:  # the sender left mid-body: recorded with what arrived, and no answer
            assert found["truncated"] and response["status"] is None, shown
    assert_alive(server)


def test_many_half_open_connections_leave_the_server_up(server: Server) -> None:
    socks = []
    head = b"POST /h/raw HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc"
    try:
        for i in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(head[: i + 1])
            socks.append(sock)
        assert_alive(server)
    finally:
        for sock in socks:
            sock.close()
    assert_alive(server)


# -- 4. SSE resume points --------------------------------------------------------------------

BAD_AFTER = [
    "abc",
    "-1",
    "1.5",
    "1e3",
    "0x10",
    "99999999999999999999",
    "1" * 19,
    "\xb2",  # "²" as a latin-1 header byte: isdigit() but not a number
    "\xb9\xb3",
    "1 2",
    "+1",
    "١",  # Arabic-Indic one: int() takes it, but it is not a request id (query only)
    "１",  # fullwidth one (query only)
]


BAD_RESUME = [
    *(("after", value) for value in BAD_AFTER),
    *(("last-event-id", value) for value in BAD_AFTER if max(map(ord, value)) < 256),
]


@pytest.mark.parametrize(("via", "value"), BAD_RESUME)
def test_stream_resume_point_that_is_not_an_id_gets_400_json(
    server: Server, via: str, value: str
) -> None:
    if via == "last-event-id":
        path, headers = "/api/stream", {"last-event-id": value.encode("latin-1")}
    else:
        path, headers = f"/api/stream?after={quote(value)}", {}
    with server.client() as client, client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 400, f"{via}={value!r}: {response.status_code}"
        response.read()
        check_control_answer("GET", path, response)
        assert "Last-Event-ID" in response.json()["detail"]


@pytest.mark.parametrize("via", ["after", "last-event-id"])
def test_stream_resume_point_that_is_an_id_still_streams(server: Server, via: str) -> None:
    headers: dict[str, Any] = {"last-event-id": "1"} if via == "last-event-id" else {}
    path = "/api/stream?after=1" if via == "after" else "/api/stream"
    with server.client() as client, client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
        assert first.startswith(("event: ready", "event: resync", "id:", "retry:", ":"))


# -- a delivery header value httpx could never send is refused up front ------------------------


def test_delivery_with_a_non_ascii_header_value_is_refused_or_attempted(server: Server) -> None:
    with server.client() as client:
        created = client.post(
            "/api/deliveries",
            json={
                "event": "member.joined",
                "url": f"http://127.0.0.1:{server.closed_port}/app",
                "secret": "s3cret",
                "headers": {"X-Name": "王小明"},
                "schedule": [],
            },
        )
        if created.status_code == 400:
            return
        assert created.status_code == 201, created.text
        delivery_id = created.json()["id"]
        try:
            deadline = time.monotonic() + 15
            while True:
                found = client.get(f"/api/deliveries/{delivery_id}").json()
                if found["log"] or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert found["log"], f"no attempt logged: {found['state']}"
        finally:
            client.post(f"/api/deliveries/{delivery_id}/cancel")
