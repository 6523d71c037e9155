"""Forwarding to the user's app: mirror (a copy in the background) and proxy (the app answers
the sender), per endpoint or for all with ``serve --forward-to``."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import pytest

from inspector.cli import build_parser
from inspector.signatures import sign
from tests.conftest import LiveInspector, latest, put_endpoint
from tests.test_replay import recorder_app

pytestmark = [pytest.mark.live, pytest.mark.backends]

app = pytest.fixture(recorder_app)


def replays_of(client: httpx.Client, request_id: int, count: int = 1) -> list[dict[str, Any]]:
    """The request's replays, once ``count`` are recorded (forwards finish in the background)."""
    deadline = time.monotonic() + 15
    while True:
        listed = client.get(f"/api/requests/{request_id}/replays").json()["replays"]
        if len(listed) >= count or time.monotonic() > deadline:
            return listed
        time.sleep(0.02)


def forward(client: httpx.Client, endpoint: str, url: str, mode: str) -> None:
    put_endpoint(client, endpoint, forward_to=url, forward_mode=mode)


# -- mirror ----------------------------------------------------------------------------------


def test_mirror_answers_at_once_and_forwards_in_the_background(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.delay = 1.5
    forward(client, "mir", f"{server.url}/hook", "mirror")
    body = bytes(range(256))
    response = client.post("/h/mir/x?a=1", content=body, headers=[("X-D", "1"), ("X-D", "2")])
    assert recorder.answered == 0  # the sender has its answer before the slow app answered
    assert response.status_code == 200 and response.text == "OK"
    captured = latest(client, "mir")
    assert captured["response"]["status"] == 200
    seen = recorder.wait_for(1)[0]
    assert seen.body == body and seen.target == b"/hook/x?a=1"
    assert [v for n, v in seen.headers if n == "x-d"] == ["1", "2"]
    assert any(n == "via" and "webhook-inspector-" in v for n, v in seen.headers)
    listed = replays_of(client, captured["id"])
    assert len(listed) == 1
    assert listed[0]["kind"] == "mirror" and listed[0]["status"] == 200
    assert listed[0]["elapsed_ms"] >= 1400


def test_mirror_to_an_app_that_is_down_keeps_the_capture(
    client: httpx.Client, refused_port: int
) -> None:
    forward(client, "mdown", f"http://127.0.0.1:{refused_port}/", "mirror")
    response = client.post("/h/mdown", content=b"kept")
    assert response.status_code == 200
    captured = latest(client, "mdown")
    assert base64.b64decode(captured["body_base64"]) == b"kept"
    listed = replays_of(client, captured["id"])
    assert listed[0]["kind"] == "mirror" and listed[0]["status"] is None
    assert listed[0]["error"].startswith("connection refused")


def test_a_forward_that_loops_back_is_not_forwarded_again(live: LiveInspector) -> None:
    with live.client() as client:
        forward(client, "loop", f"{live.url}/h/loop", "mirror")
        client.post("/h/loop", content=b"x")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            items = client.get("/api/requests?endpoint=loop").json()["requests"]
            if len(items) == 2 and replays_of(client, items[0]["id"]):
                break
            time.sleep(0.05)
        time.sleep(0.2)
        items = client.get("/api/requests?endpoint=loop").json()["requests"]
        assert len(items) == 2  # the original and its one mirrored copy
        echo = replays_of(client, items[0]["id"])
        assert echo[0]["error"].startswith("not forwarded: loop")
        assert replays_of(client, items[1]["id"])[0]["status"] == 200


# -- proxy -----------------------------------------------------------------------------------


def test_proxy_relays_the_apps_answer_both_ways(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.status = 201
    recorder.body = b"\x00\xffapp-bytes"
    recorder.headers = [
        ("content-type", "application/octet-stream"),
        ("set-cookie", "a=1"),
        ("x-app", "yes"),
        ("set-cookie", "b=2"),
    ]
    forward(client, "prx", server.url, "proxy")
    body = b'{"event": "member.joined"}'
    response = client.put(
        "/h/prx/sub?x=1", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 201
    assert response.content == b"\x00\xffapp-bytes"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["x-app"] == "yes"
    seen = recorder.wait_for(1)[0]
    assert seen.method == "PUT" and seen.body == body and seen.target == b"/sub?x=1"
    captured = latest(client, "prx")
    relayed = captured["response"]
    assert relayed["status"] == 201 and relayed["in_progress"] is False
    assert base64.b64decode(relayed["body_base64"]) == b"\x00\xffapp-bytes"
    assert [h for h in relayed["headers"] if h[0] == "set-cookie"] == [
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
    ]
    listed = replays_of(client, captured["id"])
    assert listed[0]["kind"] == "proxy" and listed[0]["status"] == 201


def test_proxy_answers_502_when_the_app_is_down(client: httpx.Client, refused_port: int) -> None:
    forward(client, "pdown", f"http://127.0.0.1:{refused_port}/", "proxy")
    response = client.post("/h/pdown", content=b"x")
    assert response.status_code == 502
    assert "connection refused" in response.text
    captured = latest(client, "pdown")
    assert captured["response"]["status"] == 502
    listed = replays_of(client, captured["id"])
    assert listed[0]["kind"] == "proxy" and listed[0]["error"].startswith("connection refused")


def test_proxy_answers_504_when_the_app_is_too_slow(make_live, app) -> None:
    recorder, server = app
    recorder.delay = 0.8
    live = make_live(replay_timeout=0.2)
    with live.client() as client:
        forward(client, "pslow", server.url, "proxy")
        response = client.post("/h/pslow", content=b"x")
        assert response.status_code == 504
        assert "timeout" in response.text


def test_a_sender_that_gives_up_on_a_proxied_request_is_recorded(client: httpx.Client, app) -> None:
    recorder, server = app
    recorder.delay = 1.5
    forward(client, "pgone", server.url, "proxy")
    with pytest.raises(httpx.ReadTimeout):
        client.post("/h/pgone", content=b"x", timeout=0.2)
    captured = latest(client, "pgone")
    listed = replays_of(client, captured["id"])  # the app's answer is still recorded
    assert listed[0]["kind"] == "proxy" and listed[0]["status"] == 200
    deadline = time.monotonic() + 15
    while latest(client, "pgone")["response"]["in_progress"] and time.monotonic() < deadline:
        time.sleep(0.02)
    answer = latest(client, "pgone")["response"]
    assert answer["status"] is None
    # When the sender gave up (its 0.2 s), not when the app answered (1.5 s).
    assert 150 < answer["client_gave_up_after_ms"] < 1500


def test_enforcement_and_failure_modes_answer_before_the_app(client: httpx.Client, app) -> None:
    recorder, server = app
    secret = "s3cret"
    client.put(
        "/api/endpoints/pfm",
        json={"forward_to": server.url, "forward_mode": "proxy", "secret": secret},
    )
    body = b"{}"
    good = sign("platform", secret, body)
    assert client.post("/h/pfm?fail=1", content=body, headers=good).status_code == 500
    assert client.post("/h/pfm?status=202", content=body, headers=good).status_code == 202
    with pytest.raises(httpx.TransportError):
        client.post("/h/pfm?drop=1", content=body, headers=good)
    with pytest.raises(httpx.TransportError):  # a delayed drop is still a drop, not the app
        client.post("/h/pfm?drop=1&delay=0.1", content=body, headers=good)
    client.put("/api/endpoints/pfm", json={"enforce": True})
    bad = [("X-Webhook-Signature", "sha256=" + "0" * 64)]
    assert client.post("/h/pfm", content=body, headers=bad).status_code == 401
    time.sleep(0.1)
    assert recorder.seen == []  # none of these reached the app
    started = time.monotonic()
    response = client.post("/h/pfm?delay=0.3", content=body, headers=good)
    assert response.status_code == 200 and response.text == "app ok"
    assert time.monotonic() - started >= 0.3
    captured = latest(client, "pfm")
    assert captured["response"]["delay_ms"] == 300
    assert len(recorder.wait_for(1)) == 1


def test_serve_forward_to_applies_to_every_endpoint(make_live, app) -> None:
    recorder, server = app
    live = make_live(forward_to=server.url, forward_mode="proxy")
    with live.client() as client:
        for name in ("one", "two"):
            response = client.post(f"/h/{name}", content=name.encode())
            assert response.text == "app ok"
        # An endpoint may still choose mirror by naming its own target.
        forward(client, "own", server.url, "mirror")
        assert client.post("/h/own", content=b"own").text == "OK"
    assert sorted(s.body for s in recorder.wait_for(3)) == [b"one", b"own", b"two"]


def test_serve_accepts_forward_mode() -> None:
    args = build_parser().parse_args(
        ["serve", "--forward-to", "http://127.0.0.1:3000", "--forward-mode", "proxy"]
    )
    assert (args.forward_to, args.forward_mode) == ("http://127.0.0.1:3000", "proxy")
    assert build_parser().parse_args(["serve"]).forward_mode == "mirror"
