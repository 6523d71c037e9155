"""The delivery engine playing the platform, against real receivers on free loopback ports.

Receivers are small Starlette apps on uvicorn (``ServerThread``). Retry waits run under a
time scale or a short schedule, so the platform's 1/5/30 minutes take a fraction of a second.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from inspector import catalog, sender
from inspector.cli import main
from inspector.errors import BadRequest
from inspector.signatures import SignatureConfig, verify
from inspector.store import Store, deliveries
from tests.conftest import (
    LiveInspector,
    ServerThread,
    Spawn,
    bind_free,
    chromium,
    post_delivery,
)

pytestmark = [pytest.mark.live, pytest.mark.backends]

SECRET = "s3cret"


# -- receivers -------------------------------------------------------------------------------


@dataclass
class Hit:
    at: float
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name.lower()), None)


Answer = Callable[[int, Request], Awaitable[Response] | Response]


class Receiver:
    """A Starlette app that records every request and answers with ``answer(n, request)``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.hits: list[Hit] = []
        self.arrived = threading.Event()

        async def endpoint(request: Request) -> Response:
            body = await request.body()
            raw = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
            self.hits.append(Hit(time.time(), request.url.path, raw, body))
            self.arrived.set()
            result = self.answer(len(self.hits), request)
            if not isinstance(result, Response):
                result = await result
            return result

        self.app = Starlette(
            routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "HEAD"])]
        )

    def posts(self, path: str = "/hook") -> list[Hit]:
        return [h for h in self.hits if h.path == path]


def statuses(*codes: int) -> Answer:
    """Answer the n-th request with codes[n-1]; the last code repeats."""

    def answer(n: int, request: Request) -> Response:
        return PlainTextResponse(f"answer {n}", status_code=codes[min(n, len(codes)) - 1])

    return answer


Serve = Callable[[Answer], tuple[Receiver, str]]


@pytest.fixture
def serve(make_server: Callable[..., ServerThread]) -> Serve:
    def start(answer: Answer) -> tuple[Receiver, str]:
        receiver = Receiver(answer)
        server = make_server(receiver.app, timeout_graceful_shutdown=1)
        return receiver, server.url + "/hook"

    return start


def request(url: str, **changes: Any) -> sender.DeliveryRequest:
    options: dict[str, Any] = {"schedule": (0.05, 0.1, 0.15)}
    options.update(changes)
    event = options.pop("event", "message.received")
    return sender.prepare(event, url, options.pop("secret", SECRET), **options)


async def deliver(
    store: Store, wanted: sender.DeliveryRequest, timeout: float = 20
) -> dict[str, Any]:
    """Run an engine until the delivery ends; return it with its log."""
    engine = sender.Dispatcher(store)
    done = asyncio.Event()
    engine.listeners.append(
        lambda change: done.set() if change["change"] in ("succeeded", "failed") else None
    )
    engine.start()
    try:
        created = await engine.submit(wanted)
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await engine.stop()
    found = store.read_sync(deliveries.get_delivery, created["id"])
    assert found is not None
    return found


def gaps(hits: list[Hit]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(hits)]


def close_to(actual: list[float], expected: list[float], slack: float = 0.4) -> bool:
    """Each gap on time: never early by more than arrival jitter, late by at most ``slack``
    plus 10 % (the tolerance ``timeline.build_timeline`` gives the platform). A sender is
    never early, but a loaded machine can make it late: the schedules in these tests keep
    neighbouring gaps further apart than ``slack``, so a retry in the wrong slot still fails."""
    return len(actual) == len(expected) and all(
        e - 0.04 <= a <= e + slack + 0.1 * e for a, e in zip(actual, expected, strict=True)
    )


# -- the engine ------------------------------------------------------------------------------


def test_a_delivery_is_signed_over_the_exact_bytes_sent(serve: Serve, store: Store) -> None:
    receiver, url = serve(statuses(200))
    found = asyncio.run(deliver(store, request(url, overrides={"data.content": "早安 \\/"})))
    [hit] = receiver.posts()
    assert hit.header("content-type") == "application/json"
    assert hit.body == base64.b64decode(found["body_base64"])
    assert json.loads(hit.body)["data"]["content"] == "早安 \\/"
    assert "早安".encode() in hit.body  # UTF-8, non-ASCII kept
    verdict = verify(hit.headers, hit.body, SignatureConfig(secrets=(SECRET,), scheme="platform"))
    assert verdict is not None and verdict.status == "valid", verdict
    assert (hit.header("x-webhook-signature") or "").startswith("sha256=")
    assert found["state"] == "succeeded"
    assert [a["status"] for a in found["log"]] == [200]
    attempt = found["log"][0]
    assert attempt["attempt"] == 1 and attempt["event"] == "message.received"
    assert attempt["url"] == url and attempt["error"] is None and attempt["ok"] is True
    assert 0 < attempt["elapsed_ms"] < 5000
    assert base64.b64decode(attempt["response_body_base64"]) == b"answer 1"
    assert ["X-Webhook-Signature", hit.header("x-webhook-signature")] in attempt["request_headers"]


def test_500_500_200_retries_on_the_scaled_platform_schedule(serve: Serve, store: Store) -> None:
    receiver, url = serve(statuses(500, 500, 200))
    scale = 0.003  # 60 s, 300 s, 1800 s -> 0.18 s, 0.9 s, 5.4 s
    found = asyncio.run(deliver(store, request(url, schedule=(60, 300, 1800), time_scale=scale)))
    hits = receiver.posts()
    assert [a["status"] for a in found["log"]] == [500, 500, 200]
    assert [a["attempt"] for a in found["log"]] == [1, 2, 3]
    assert found["state"] == "succeeded" and found["attempts"] == 3
    assert close_to(gaps(hits), [0.18, 0.9]), gaps(hits)
    logged = [a["sent_ts"] for a in found["log"]]
    assert close_to(gaps([Hit(t, "", [], b"") for t in logged]), [0.18, 0.9])
    # Every attempt is the same event: same bytes, same (untimestamped) signature.
    assert len({h.body for h in hits}) == 1
    assert len({h.header("x-webhook-signature") for h in hits}) == 1


def test_always_500_gives_four_attempts_then_failed(serve: Serve, store: Store) -> None:
    receiver, url = serve(statuses(500))
    found = asyncio.run(deliver(store, request(url, schedule=(0.1, 0.6, 1.2))))
    assert [a["status"] for a in found["log"]] == [500, 500, 500, 500]
    assert found["state"] == "failed" and found["attempts"] == 4
    assert found["next_attempt_ts"] is None
    assert close_to(gaps(receiver.posts()), [0.1, 0.6, 1.2]), gaps(receiver.posts())


def test_a_timeout_is_a_failure_recorded_with_its_error(serve: Serve, store: Store) -> None:
    async def slow(n: int, request: Request) -> Response:
        await asyncio.sleep(5.0)  # ended by the server's shutdown, after 1 s
        return PlainTextResponse("too late")

    _, url = serve(slow)
    found = asyncio.run(deliver(store, request(url, timeout=0.3, schedule=())))
    [attempt] = found["log"]
    assert found["state"] == "failed"
    assert attempt["status"] is None
    assert (
        attempt["error"] == f"timeout: no answer from {httpx.URL(url).netloc.decode()} within 0.3 s"
    )
    assert 250 < attempt["elapsed_ms"] < 2500  # the 0.3 s timeout, not the 5 s answer


def test_connection_refused_is_a_failure_recorded_with_its_error(store: Store) -> None:
    sock = bind_free()  # bound, never listening: connections are refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    try:
        found = asyncio.run(deliver(store, request(url, schedule=(0.05,))))
    finally:
        sock.close()
    assert found["state"] == "failed"
    assert [a["status"] for a in found["log"]] == [None, None]
    where = url.split("/")[2]
    assert all(
        a["error"] == f"connection refused: nothing listens on {where}" for a in found["log"]
    )


def test_a_redirect_is_a_failure_and_location_is_not_fetched(serve: Serve, store: Store) -> None:
    def answer(n: int, request: Request) -> Response:
        if request.url.path == "/elsewhere":
            return PlainTextResponse("followed!")
        return Response(status_code=302, headers={"location": "/elsewhere"})

    receiver, url = serve(answer)
    found = asyncio.run(deliver(store, request(url, schedule=(0.05,))))
    assert receiver.posts("/elsewhere") == []
    assert len(receiver.posts()) == 2
    assert found["state"] == "failed"
    assert [a["status"] for a in found["log"]] == [302, 302]
    assert found["log"][0]["error"] == "redirect to /elsewhere not followed"


def test_the_response_body_is_capped_at_64_kib(serve: Serve, store: Store) -> None:
    _, url = serve(lambda n, r: PlainTextResponse("x" * 200_000))
    found = asyncio.run(deliver(store, request(url)))
    [attempt] = found["log"]
    assert attempt["status"] == 200 and found["state"] == "succeeded"
    assert len(base64.b64decode(attempt["response_body_base64"])) == 64 * 1024
    assert attempt["response_truncated"] is True


def test_timestamped_schemes_re_sign_each_attempt_and_keep_the_message_id(
    serve: Serve, store: Store
) -> None:
    receiver, url = serve(statuses(500, 200))
    found = asyncio.run(deliver(store, request(url, scheme="standard", schedule=(1.05,))))
    first, second = receiver.posts()
    assert found["state"] == "succeeded"
    assert first.body == second.body
    assert first.header("webhook-id") == second.header("webhook-id")
    assert first.header("webhook-timestamp") != second.header("webhook-timestamp")
    assert found["event_key"] == first.header("webhook-id")
    config = SignatureConfig(secrets=(SECRET,), scheme="standard")
    for hit in (first, second):
        verdict = verify(hit.headers, hit.body, config)
        assert verdict is not None and verdict.status == "valid"


def test_an_attempt_in_flight_when_the_engine_stops_is_sent_again_on_resume(
    serve: Serve, store: Store
) -> None:
    release = threading.Event()

    async def answer(n: int, request: Request) -> Response:
        if n == 1:
            await asyncio.to_thread(release.wait, 5)
        return PlainTextResponse("ok")

    receiver, url = serve(answer)

    async def scenario() -> dict[str, Any]:
        first = sender.Dispatcher(store)
        first.start()
        created = await first.submit(request(url))
        await asyncio.to_thread(receiver.arrived.wait, 5)
        await first.stop()  # attempt 1 is in flight: abandoned, not logged
        release.set()
        found = store.read_sync(deliveries.get_delivery, created["id"])
        assert found is not None
        assert found["state"] == "pending" and found["log"] == []
        return await deliver_existing(store, created["id"])

    found = asyncio.run(scenario())
    assert len(receiver.posts()) == 2
    assert receiver.posts()[0].body == receiver.posts()[1].body
    assert [a["attempt"] for a in found["log"]] == [1]
    assert found["state"] == "succeeded"


async def deliver_existing(store: Store, delivery_id: int) -> dict[str, Any]:
    engine = sender.Dispatcher(store)
    done = asyncio.Event()
    engine.listeners.append(
        lambda change: done.set() if change["change"] in ("succeeded", "failed") else None
    )
    engine.start()
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await engine.stop()
    found = store.read_sync(deliveries.get_delivery, delivery_id)
    assert found is not None
    return found


def test_a_delivery_left_by_a_dead_send_process_is_adopted_by_the_server(
    serve: Serve, store: Store
) -> None:
    receiver, url = serve(statuses(200))

    async def scenario() -> dict[str, Any]:
        cli = sender.Dispatcher(store, carrier="cli:nowhere:1")  # never started
        created = await cli.submit(request(url))
        dead = f"cli:{socket.gethostname()}:999999999"
        store.write_sync(deliveries.set_carrier, created["id"], dead)
        # A live foreign carrier is left alone...
        assert sender.carrier_alive("cli:other-host:1")
        assert sender.carrier_alive(sender.cli_carrier())
        assert not sender.carrier_alive(dead)
        return await deliver_existing(store, created["id"])

    found = asyncio.run(scenario())
    assert found["state"] == "succeeded" and found["carrier"] == "server"
    assert len(receiver.posts()) == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"event": "order.paid"}, "message.received, member.joined, member.left, file.uploaded"),
        ({"event": None}, "event type is required"),
        ({"url": "ftp://example.test/"}, "http:// or https://"),
        ({"url": "http://"}, "with a host"),
        ({"url": "not a url"}, "without spaces"),
        ({"url": "http://127.0.0.1:99999/"}, "not a valid URL"),
        ({"secret": ""}, "secret"),
        ({"scheme": "nope"}, "unknown 'nope'"),
        ({"schedule": [60, -1]}, "schedule"),
        ({"schedule": "60,abc"}, "schedule"),
        ({"timeout": 0}, "timeout"),
        ({"time_scale": float("nan")}, "time_scale"),
        ({"headers": [["Content-Type", "x"]]}, "set by the sender"),
        ({"headers": 5}, "an object"),
        ({"headers": True}, "an object"),
        ({"body": "{}", "overrides": {"data.x": 1}}, "given body is sent as is"),
    ],
)
def test_prepare_explains_what_is_wrong(changes: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "event": "message.received",
        "url": "http://127.0.0.1:9/",
        "secret": "s",
    }
    args.update(changes)
    with pytest.raises(BadRequest, match=message):
        sender.prepare(args.pop("event"), args.pop("url"), args.pop("secret"), **args)


def test_a_given_body_is_sent_byte_exact_and_labels_itself(serve: Serve, store: Store) -> None:
    receiver, url = serve(statuses(204))
    raw = '{ "event" : "member.left",\n "data": {"x": "caf\\u00e9 \\/ é"} }'.encode()
    found = asyncio.run(deliver(store, request(url, event=None, body=raw)))
    assert receiver.posts()[0].body == raw
    assert found["event"] == "member.left" and found["state"] == "succeeded"


# -- the server: API, stream, restart, end to end --------------------------------------------


def wait_for_state(client: httpx.Client, delivery_id: int, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, Any] = client.get(f"/api/deliveries/{delivery_id}").json()
        if found["state"] != "pending":
            return found
        time.sleep(0.05)
    raise AssertionError(f"delivery {delivery_id} still pending")


def test_api_creates_lists_and_shows_deliveries(client: httpx.Client, serve: Serve) -> None:
    _, url = serve(statuses(500, 200))
    created = post_delivery(client, url=url, schedule=[0.05], set={"data.content": "hi"})
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["state"] == "pending" and item["attempts"] == 0 and item["max_attempts"] == 2
    assert "secret" not in item and SECRET not in created.text
    second = post_delivery(client, url=url, event="member.joined", schedule=[])
    found = wait_for_state(client, item["id"])
    wait_for_state(client, second.json()["id"])
    assert found["state"] == "succeeded"
    assert [a["status"] for a in found["log"]] == [500, 200]
    assert json.loads(base64.b64decode(found["body_base64"]))["data"]["content"] == "hi"
    listing = client.get("/api/deliveries").json()
    assert [d["id"] for d in listing["deliveries"]] == [second.json()["id"], item["id"]]
    summary = listing["deliveries"][1]
    assert summary["statuses"] == [500, 200] and summary["last"]["status"] == 200
    assert client.get("/api/deliveries?state=succeeded&limit=1").json()["next_before"]
    assert client.get("/api/deliveries/999").status_code == 404
    assert client.get("/api/deliveries/abc").status_code == 404
    events = client.get("/api/catalog").json()["events"]
    assert [e["event"] for e in events] == list(catalog.EVENT_TYPES)
    assert all(e["sample"]["event"] == e["event"] for e in events)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"event": "nope"}, "message.received, member.joined, member.left, file.uploaded"),
        ({"url": "javascript:alert(1)"}, "http:// or https://"),
        ({"secret": ""}, "secret"),
        ({"colour": "red"}, "Unknown field(s): colour"),
        ({"body": {"a": 1}}, "body: must be a string"),
        ({"set": ["x"]}, "set: must be an object"),
    ],
)
def test_api_validation_errors_are_400_with_clear_messages(
    app_client: httpx.Client, payload: dict[str, Any], message: str
) -> None:
    payload.setdefault("url", "http://127.0.0.1:9/hook")
    response = post_delivery(app_client, **payload)
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert app_client.post("/api/deliveries", content=b"[").status_code == 400


def test_api_refuses_form_posts_csrf(app_client: httpx.Client) -> None:
    response = app_client.post(
        "/api/deliveries",
        content=b"event=message.received&url=http://127.0.0.1:9/",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 403


def test_api_body_is_sent_byte_exact_as_utf8(client: httpx.Client, serve: Serve) -> None:
    receiver, url = serve(statuses(200))
    text = '{"event":"file.uploaded",  "data": {"name": "報告.pdf", "p": "a\\/b"}}'
    created = post_delivery(client, url=url, body=text, event=None).json()
    assert created["event"] == "file.uploaded"
    wait_for_state(client, created["id"])
    assert receiver.posts()[0].body == text.encode("utf-8")


def test_cancel_stops_the_retries(client: httpx.Client, serve: Serve) -> None:
    receiver, url = serve(statuses(500))
    created = post_delivery(client, url=url, schedule=[30]).json()
    deadline = time.monotonic() + 15
    while client.get(f"/api/deliveries/{created['id']}").json()["attempts"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    cancelled = client.post(f"/api/deliveries/{created['id']}/cancel", json={}).json()
    assert cancelled["state"] == "cancelled" and cancelled["next_attempt_ts"] is None
    assert len(receiver.posts()) == 1


def test_the_stream_reports_every_attempt_and_state_change(
    live: LiveInspector, serve: Serve
) -> None:
    _, url = serve(statuses(500, 200))
    seen: list[tuple[str, int | None]] = []
    with (
        live.client() as client,
        client.stream("GET", "/api/deliveries/stream", timeout=10) as stream,
    ):
        lines = stream.iter_lines()
        event = None
        for line in lines:
            if line == "event: ready":
                break
        post_delivery(client, url=url, schedule=[0.05])
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "delivery":
                data = json.loads(line[6:])
                attempt = data["attempt"]
                seen.append((data["change"], attempt["attempt"] if attempt else None))
                if data["change"] == "succeeded":
                    break
    assert seen == [
        ("created", None),
        ("sending", 1),
        ("attempt", 1),
        ("sending", 2),
        ("attempt", 2),
        ("succeeded", 2),
    ]


def test_a_restart_mid_schedule_resumes_the_remaining_attempts_on_time(
    live: LiveInspector, serve: Serve
) -> None:
    receiver, url = serve(statuses(500, 500, 500, 200))
    with live.client() as client:
        created = post_delivery(client, url=url, schedule=[0.2, 2.0, 0.6]).json()
        deadline = time.monotonic() + 15
        while client.get(f"/api/deliveries/{created['id']}").json()["attempts"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    live.restart()  # attempt 3 is due 2 s after attempt 2: the new server must send it
    assert len(receiver.posts()) == 2
    with live.client() as client:
        found = wait_for_state(client, created["id"])
    hits = receiver.posts()
    assert [a["status"] for a in found["log"]] == [500, 500, 500, 200]
    assert found["state"] == "succeeded"
    assert close_to(gaps(hits), [0.2, 2.0, 0.6]), gaps(hits)


def test_end_to_end_against_the_inspectors_own_capture_route(live: LiveInspector) -> None:
    """No tunnel: the sender retries into the capture route with fail=2; the delivery log
    and the receiver's retry timeline both show three attempts at the scaled 1/5 minutes."""
    # 60 s -> 0.6 s, 300 s -> 3 s: wide enough apart that a loaded machine's lateness
    # (close_to's slack; the timeline's tolerance of 80 %, 0.48 s on the first retry)
    # cannot make an on-time retry look late, nor a retry in the wrong slot look on time.
    scale = 0.01
    with live.client() as client:
        url = f"{live.url}/h/e2e?fail=2"
        # Waits from each attempt's start: the gaps between starts are the waits themselves.
        created = post_delivery(client, url=url, time_scale=scale, wait_from="start").json()
        found = wait_for_state(client, created["id"])
        assert found["state"] == "succeeded"
        assert [a["status"] for a in found["log"]] == [500, 500, 200]
        sent = [a["sent_ts"] for a in found["log"]]
        assert close_to([b - a for a, b in itertools.pairwise(sent)], [0.6, 3.0])

        captured = client.get("/api/requests?endpoint=e2e").json()["requests"][::-1]
        assert [(r["attempt"], r["response"]["status"]) for r in captured] == [
            (1, 500),
            (2, 500),
            (3, 200),
        ]
        assert {r["event_key"] for r in captured} == {created["event_key"]}
        schedule = ",".join(f"{s * scale:g}" for s in (60, 300, 1800))
        timeline = client.get(
            f"/api/events/e2e/{created['event_key']}?schedule={schedule}&tolerance=0.8"
            "&wait_from=start"
        ).json()
    assert timeline["stopped"] == "succeeded"
    assert [i["verdict"] for i in timeline["intervals"]] == ["ok", "ok"]
    assert [a["status"] for a in timeline["attempt_list"]] == [500, 500, 200]
    # Without a schedule, our own delivery is judged by the scaled schedule it kept, counted
    # as it counted (not "59.7 s early" against the endpoint's minutes).
    with live.client() as client:
        auto = client.get(f"/api/events/e2e/{created['event_key']}").json()
    assert auto["schedule_from"] == f"delivery #{created['id']} (time scale {scale:g})"
    assert auto["schedule"] == pytest.approx([s * scale for s in (60, 300, 1800)])
    assert auto["wait_from"] == "start" == created["wait_from"]
    assert [i["verdict"] for i in auto["intervals"]] == ["ok", "ok"], auto["intervals"]


def test_the_deliveries_page_and_its_assets(app_client: httpx.Client) -> None:
    page = app_client.get("/deliveries")
    assert page.status_code == 200
    html = page.text
    assert 'id="send-form"' in html and "Send test" in html
    assert f"{app_client.base_url}/h/platform-test".replace("http://", "") in html
    for event in ("message.received", "member.joined", "member.left", "file.uploaded"):
        assert f'value="{event}"' in html
    assert "/static/deliveries.js" in html and "<script>" not in html
    js = app_client.get("/static/deliveries.js")
    assert js.status_code == 200 and "/api/deliveries/stream" in js.text
    assert app_client.get("/static/deliveries.css").status_code == 200


# -- the CLI ---------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_send_wait_prints_each_attempt_and_exits_0_on_success(
    serve: Serve,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, url = serve(statuses(500, 200))
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    code, out, err = cli(
        capsys,
        "send", "message.received", "--to", url, "--wait", "--time-scale", "0.001",
        "--set", "data.content=hello", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert "attempt 1/4" in out and "500" in out and "retry 1 in 0.06 s" in out
    assert "attempt 2/4" in out and "200" in out and "succeeded" in out
    assert json.loads(receiver.posts()[0].body)["data"]["content"] == "hello"
    code, out, _ = cli(capsys, "deliveries", "--data-dir", str(tmp_path))
    assert code == 0 and "succeeded" in out and "2/4" in out and url in out
    code, out, _ = cli(capsys, "deliveries", "--id", "1", "--data-dir", str(tmp_path))
    assert code == 0 and "answer 1" in out and "answer 2" in out
    assert "SENT (UTC)" in out and "STATUS" in out


def test_send_wait_exits_1_when_the_delivery_fails(
    serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = serve(statuses(503))
    code, out, _ = cli(
        capsys,
        "send", "member.joined", "--to", url, "--secret", SECRET, "--wait",
        "--schedule", "0.02,0.02", "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 1
    # Each attempt's answer (not "503" anywhere: a port or a time of day may hold it too).
    assert len(re.findall(r"^  attempt \d/3 .* 503 in ", out, re.M)) == 3, out
    assert "failed" in out


def test_send_body_from_stdin_is_byte_exact(
    serve: Serve,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, url = serve(statuses(200))
    raw = b'{"event": "member.left" ,"data":{"n":"\xe6\x9d\x8e"}}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    code, _, err = cli(
        capsys,
        "send", "--body", "-", "--to", url, "--secret", SECRET, "--wait",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert receiver.posts()[0].body == raw


def test_send_without_wait_hands_over_to_the_server_with_the_same_store(
    make_live: Any, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver, url = serve(statuses(500, 200))
    live = make_live()
    code, out, err = cli(
        capsys,
        "send", "file.uploaded", "--to", url, "--secret", SECRET, "--schedule", "0.05",
        "--server", live.url, "--data-dir", str(live.settings.data_dir),
    )  # fmt: skip
    assert code == 0, err
    assert "handed to the server" in out
    with live.client() as client:
        found = wait_for_state(client, 1)
    assert found["state"] == "succeeded" and found["carrier"] == "server"
    assert len(receiver.posts()) == 2


@pytest.mark.sqlite_only  # two servers on two stores: PostgreSQL replicas share one
def test_send_falls_back_to_waiting_when_no_server_uses_the_store(
    make_live: Any, serve: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver, url = serve(statuses(200))
    sock = bind_free()
    nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        code, out, err = cli(
            capsys,
            "send", "member.joined", "--to", url, "--secret", SECRET,
            "--server", nobody, "--data-dir", str(tmp_path / "a"),
        )  # fmt: skip
    finally:
        sock.close()
    assert code == 0 and "no inspector is answering" in err and "succeeded" in out
    other = make_live()
    code, out, err = cli(
        capsys,
        "send", "member.joined", "--to", url, "--secret", SECRET,
        "--server", other.url, "--data-dir", str(tmp_path / "b"),
    )  # fmt: skip
    assert code == 0 and "keeps its store in" in err and "succeeded" in out
    assert len(receiver.posts()) == 2


def test_ctrl_c_during_send_wait_leaves_the_delivery_to_the_server(
    serve: Serve, spawn: Spawn, tmp_path: Path
) -> None:
    receiver, url = serve(statuses(500, 200))
    proc = spawn(
        "send", "member.left", "--to", url, "--secret", SECRET, "--wait", "--schedule", "0.5",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "attempt 1/2" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, "".join(lines) + out + err
    assert "stays pending" in err and "Traceback" not in err
    store = Store(tmp_path / "inspector.db").open()
    try:
        assert store.read_sync(deliveries.get_item, 1)["carrier"] == "server"
        found = asyncio.run(deliver_existing(store, 1))  # what a server's engine does
    finally:
        store.close()
    assert [a["status"] for a in found["log"]] == [500, 200]
    assert len(receiver.posts()) == 2


def test_send_usage_errors_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    code, _, err = cli(
        capsys, "send", "member.joined", "--to", "http://127.0.0.1:9/", "--data-dir", str(tmp_path)
    )
    assert code == 2 and "secret is required" in err
    code, _, err = cli(
        capsys,
        "send", "order.paid", "--to", "http://127.0.0.1:9/", "--secret", "s",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "member.joined" in err
    code, _, err = cli(
        capsys,
        "send", "member.joined", "--to", "http://127.0.0.1:9/", "--secret", "s", "--set", "x",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 2 and "PATH=VALUE" in err


# -- the page in a real browser --------------------------------------------------------------


@pytest.mark.browser
def test_send_test_button_delivers_and_the_log_updates_live(live: LiveInspector) -> None:
    # A browser of its own, closed before the module's later tests run asyncio.
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: errors.append(msg.text) if msg.type == "error" else None,
        )
        page.goto(f"{live.url}/deliveries")
        page.wait_for_selector("#live:text('live')")
        url_input = page.locator("input[name=url]")
        assert url_input.input_value() == f"{live.url}/h/platform-test"
        url_input.fill(f"{live.url}/h/page-test?fail=1")
        page.select_option("select[name=event]", "file.uploaded")
        page.fill("input[name=secret]", SECRET)
        page.select_option("select[name=time_scale]", "0.001")
        assert page.locator("select[name=wait_from]").input_value() == "end"  # the default
        page.select_option("select[name=wait_from]", "start")
        page.click("button[type=submit]")
        page.wait_for_selector("#send-status:text('created')")
        row = page.locator("#deliveries tbody tr").first
        row.locator(".state-succeeded").wait_for()  # pushed over SSE
        assert "2/4" in row.inner_text() and "file.uploaded" in row.inner_text()
        page.locator("#attempts tr").nth(1).wait_for()
        statuses = page.locator("#attempts tr td:nth-child(5)").all_inner_texts()
        assert statuses == ["500", "200"]
        assert "Simulated failure" in page.locator("#attempts").inner_text()
        assert '"event":"file.uploaded"' in page.locator("#detail-body").inner_text()
        summary = page.locator("#detail-summary").inner_text()
        assert "0.06 s, 0.3 s, 1.8 s after each failed attempt starts" in summary
        assert errors == []

        page.fill("input[name=secret]", "")  # the server has no default secret: a 400
        page.click("button[type=submit]")
        page.wait_for_selector("#send-status.error")
        assert "secret" in page.locator("#send-status").inner_text()


def test_deliveries_refuse_metadata_addresses(tmp_path) -> None:
    """The sender shares replay's address guard: refused at submission and at connect time."""
    from inspector.errors import Forbidden
    from inspector.sender import check_url, make_client, send_once

    for url in ("http://169.254.169.254/latest", "http://2852039166/", "http://[fd00:ec2::254]/"):
        with pytest.raises(Forbidden):
            check_url(url)

    async def main() -> str | None:
        async with make_client() as client:
            client._transport._backend.resolve = _resolve_to_metadata  # type: ignore[attr-defined]
            result = await send_once(client, "http://metadata.test/hook", [], b"{}", timeout=5)
            return result.error

    error = asyncio.run(main())
    assert error is not None and "169.254.169.254" in error


async def _resolve_to_metadata(host: str, port: int) -> list[str]:
    return ["169.254.169.254"]


def test_send_hands_over_to_a_server_that_requires_a_token_only_with_it(
    make_live: Any, serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver, url = serve(statuses(200))
    live = make_live(token="hand-over-token")
    args = [
        "send", "member.joined", "--to", url, "--secret", SECRET, "--server", live.url,
        "--data-dir", str(live.settings.data_dir),
    ]  # fmt: skip
    code, _, err = cli(capsys, *args)
    assert code == 2 and "requires its token" in err  # not silently sent from here instead
    assert receiver.posts() == []
    code, out, err = cli(capsys, *args, "--token", "hand-over-token")
    assert code == 0 and "handed to the server" in out, err
    with live.client(headers={"authorization": "Bearer hand-over-token"}) as client:
        assert wait_for_state(client, 1)["state"] == "succeeded"


@pytest.mark.parametrize("wait_from", ["start", "end"])
def test_a_retry_wait_counts_from_the_failed_attempts_start_or_end(
    serve: Serve, store: Store, wait_from: str
) -> None:
    """A 1 s wait after a failure that took 1.2 s to come: from the start it has passed, so the
    retry goes at once; from the end (the platform's reading) it is a full second more."""

    async def slow_failure_then_ok(n: int, request: Request) -> Response:
        if n == 1:
            await asyncio.sleep(1.2)
            return PlainTextResponse("slow failure", status_code=500)
        return PlainTextResponse("ok")

    _, url = serve(slow_failure_then_ok)
    wanted = request(url, schedule=(1.0,), wait_from=wait_from)
    found = asyncio.run(deliver(store, wanted))
    assert found["wait_from"] == wait_from and found["state"] == "succeeded"
    first, second = found["log"]
    ended = first["sent_ts"] + first["elapsed_ms"] / 1000
    assert first["elapsed_ms"] >= 1150
    if wait_from == "end":
        assert second["sent_ts"] - ended >= 1.0 - 0.01  # never before the wait is over
    else:
        assert second["sent_ts"] - first["sent_ts"] >= 1.0 - 0.01
        assert second["sent_ts"] - ended < 1.0  # the wait had passed: sent at once


def test_wait_from_is_checked_and_said(serve: Serve, store: Store) -> None:
    with pytest.raises(BadRequest, match="wait_from"):
        request("http://127.0.0.1:9/hook", wait_from="middle")
    assert sender.describe_schedule((60, 300), 0.01) == (
        "retries 0.6 s, 3 s after each failed attempt ends"
    )
    assert (
        sender.describe_schedule((60,), 1, "start")
        == "retries 60 s after each failed attempt starts"
    )
