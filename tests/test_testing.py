"""The pytest plugin's fixtures (``inspector.testing``), used as a test suite would use them."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest

from inspector.testing import AsyncWebhookInspector, CaptureTimeout, WebhookInspector

pytestmark = pytest.mark.live

SECRET = "whsec_plugin"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_a_capture_as_the_test_sees_it(webhook_inspector: WebhookInspector) -> None:
    webhook_inspector.configure("orders", secret=SECRET)
    url = webhook_inspector.url("orders", "/v1/hook")
    body = b'{"event": "member.joined", "timestamp": "2025-01-15T08:30:00Z", "data": {}}'
    headers = [("X-Webhook-Signature", sign(body)), ("X-Dup", "1"), ("X-Dup", "2")]
    assert httpx.post(url + "?a=1", content=body, headers=headers).status_code == 200
    (capture,) = webhook_inspector.wait_for("orders")
    assert capture.endpoint == "orders"
    assert capture.method == "POST"
    assert capture.path == f"/h/{webhook_inspector.prefix}orders/v1/hook"
    assert capture.query == "a=1"
    assert capture.body == body and capture.json()["event"] == "member.joined"
    assert capture.header("x-dup") == "1" and capture.header_values("X-DUP") == ["1", "2"]
    assert ("x-webhook-signature", sign(body)) in capture.headers
    assert capture.signature.status == "valid" and capture.signature.scheme == "platform"
    assert capture.event_type == "member.joined" and capture.attempt == 1
    assert capture.response.status == 200 and capture.response.body == b"OK"


def test_failure_modes_in_the_url_and_settings_at_once(webhook_inspector) -> None:
    url = webhook_inspector.url("flaky", fail=2)
    statuses = [httpx.post(url, content=b'{"id": "evt_1"}').status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    attempts = webhook_inspector.wait_for("flaky", count=3)
    assert [c.attempt for c in attempts] == [1, 2, 3]
    for status in (418, 503, 201):
        webhook_inspector.configure("teapot", response={"status": status})
        assert httpx.post(webhook_inspector.url("teapot")).status_code == status


def test_a_bad_signature_is_explained(webhook_inspector) -> None:
    webhook_inspector.configure("sig", secret=SECRET)
    body = b'{"event": "x"}'
    httpx.post(
        webhook_inspector.url("sig"),
        content=body,
        headers={"X-Webhook-Signature": sign(body, "wrong")},
    )
    (capture,) = webhook_inspector.wait_for("sig", signature="invalid")
    assert capture.signature.status == "invalid"
    assert capture.signature.reason


def test_wait_for_fails_with_what_did_arrive(webhook_inspector) -> None:
    httpx.post(webhook_inspector.url("seen", status=503), json={"event": "order.paid"})
    with pytest.raises(CaptureTimeout) as failed:
        webhook_inspector.wait_for("seen", count=2, timeout=0.3, method="POST")
    message = str(failed.value)
    assert "2 capture(s) at endpoint 'seen' matching method='POST': 1 matched" in message
    assert "endpoint=seen" in message and "answered 503" in message
    assert "event_type=order.paid" in message
    with pytest.raises(CaptureTimeout, match="Nothing arrived"):
        WebhookInspector(webhook_inspector.base_url).wait_for(timeout=0.1)


def test_a_test_sees_only_its_own_captures(webhook_inspector_server) -> None:
    earlier = WebhookInspector(webhook_inspector_server.url)
    current = WebhookInspector(webhook_inspector_server.url)
    try:
        # The earlier test's sender is still retrying while the current test runs.
        stop = threading.Event()

        def retrying() -> None:
            while not stop.is_set():
                httpx.post(earlier.url("orders"), content=b"late retry")
                time.sleep(0.01)

        sender = threading.Thread(target=retrying)
        sender.start()
        try:
            httpx.post(current.url("orders"), content=b"mine")
            got = current.wait_for("orders", count=1)
            assert [c.body for c in got] == [b"mine"]
            assert [c.body for c in current.wait_for()] == [b"mine"]
            assert [c.body for c in current.captures()] == [b"mine"]
        finally:
            stop.set()
            sender.join()
        assert earlier.captures("orders")[0].body == b"late retry"
    finally:
        earlier.close()
        current.close()


def test_send_plays_the_platform(webhook_inspector) -> None:
    webhook_inspector.configure("rx", secret=SECRET)
    receiver = webhook_inspector.url("rx", fail=1)  # 500 once, then 200
    delivery = webhook_inspector.send("message.received", to=receiver, secret=SECRET)
    assert delivery.succeeded and delivery.statuses == [500, 200]
    assert delivery.attempts[1].response_body == b"OK"
    first, second = webhook_inspector.wait_for("rx", count=2)
    assert first.body == second.body == delivery.body
    assert second.signature.status == "valid" and second.attempt == 2
    failed = webhook_inspector.send(
        "member.joined",
        to=webhook_inspector.url("down", status=503),
        secret=SECRET,
        schedule=[1, 1],
    )
    assert failed.state == "failed" and failed.statuses == [503, 503, 503]


@pytest.mark.anyio
async def test_the_async_flavour(async_webhook_inspector: AsyncWebhookInspector) -> None:
    await async_webhook_inspector.configure("a", secret=SECRET)
    async with httpx.AsyncClient() as http:
        body = b'{"event": "member.joined"}'
        url = async_webhook_inspector.url("a")
        await http.post(url, content=body, headers={"X-Webhook-Signature": sign(body)})
    (capture,) = await async_webhook_inspector.wait_for("a")
    assert capture.signature.status == "valid"
    delivery = await async_webhook_inspector.send(
        "message.received", to=async_webhook_inspector.url("b", fail=1), secret=SECRET
    )
    assert delivery.statuses == [500, 200]
    assert len(await async_webhook_inspector.captures("b")) == 2
    with pytest.raises(CaptureTimeout):
        await async_webhook_inspector.wait_for("nothing", timeout=0.1)


@pytest.mark.slow
def test_one_server_per_xdist_worker(tmp_path: Path) -> None:
    (tmp_path / "test_workers.py").write_text(
        textwrap.dedent(
            """
            import os, httpx, pytest

            @pytest.mark.parametrize("n", range(6))
            def test_capture(webhook_inspector, webhook_inspector_server, n, tmp_path_factory):
                httpx.post(webhook_inspector.url("w"), content=str(n).encode())
                (capture,) = webhook_inspector.wait_for("w")
                assert capture.body == str(n).encode()
                worker = os.environ["PYTEST_XDIST_WORKER"]
                out = tmp_path_factory.getbasetemp().parent.parent / "servers"
                with open(out, "a") as f:
                    f.write(f"{worker} {webhook_inspector_server.url}\\n")
            """
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'base'}",
            "test_workers.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout
    seen = {tuple(line.split()) for line in (tmp_path / "servers").read_text().splitlines()}
    workers = {w for w, _ in seen}
    servers = {u for _, u in seen}
    assert workers == {"gw0", "gw1"}
    assert len(servers) == 2 and len(seen) == 2  # one server per worker, reused by its tests
