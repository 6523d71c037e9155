"""``GET /api/requests/wait``: long-polls over a real server — at once, later, on time-out,
with filters, on updates, within its bounds, and cleaned up when the client leaves."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.live, pytest.mark.backends]


def runtime_of(live: Any) -> Any:
    return live.server.config.app.state.runtime


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Background:
    """A wait running in a thread; ``result()`` joins it."""

    def __init__(self, live: Any, **params: Any) -> None:
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with live.client(timeout=60) as client:
                    self.response = client.get("/api/requests/wait", params=params)
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def result(self) -> dict[str, Any]:
        self.thread.join(60)
        assert self.error is None and self.response is not None
        assert self.response.status_code == 200, self.response.text
        data: dict[str, Any] = self.response.json()
        return data


def test_answers_at_once_when_enough_are_stored(live, client) -> None:
    for i in range(3):
        client.post("/h/now", json={"n": i})
    waited = client.get("/api/requests/wait", params={"endpoint": "now", "count": 2}).json()
    assert waited["timed_out"] is False
    listed = client.get("/api/requests", params={"endpoint": "now"}).json()["requests"]
    # The oldest two, oldest first, shaped exactly as /api/requests shows them.
    assert waited["requests"] == list(reversed(listed))[:2]


def test_waits_for_captures_that_come_later(live, client) -> None:
    waiting = Background(live, endpoint="later", count=2, timeout=60)
    until(lambda: runtime_of(live).waiters.active == 1)
    client.post("/h/later", content=b"one")
    client.post("/h/other", content=b"not this endpoint")
    client.post("/h/later", content=b"two")
    got = waiting.result()
    assert got["timed_out"] is False
    assert [(r["endpoint"], r["size"]) for r in got["requests"]] == [("later", 3), ("later", 3)]
    assert got["requests"][0]["id"] < got["requests"][1]["id"]


def test_times_out_with_what_did_match(live, client) -> None:
    client.post("/h/few")
    started = time.monotonic()
    got = client.get(
        "/api/requests/wait", params={"endpoint": "few", "count": 3, "timeout": 0.3}
    ).json()
    assert time.monotonic() - started >= 0.3
    assert got["timed_out"] is True
    assert [r["endpoint"] for r in got["requests"]] == ["few"]


def test_after_and_filters(live, client) -> None:
    first = client.post("/h/f", json={"event": "member.joined", "timestamp": "t", "data": {}})
    assert first.status_code == 200
    head = client.get("/api/requests", params={"limit": 1}).json()["requests"][0]["id"]
    client.put("/h/f?status=503")
    client.post("/h/f", json={"event": "member.joined", "timestamp": "t2", "data": {"x": "needle"}})
    client.post("/h/f-two", content=b"prefix match")

    def wait(**params: Any) -> dict[str, Any]:
        got: dict[str, Any] = client.get(
            "/api/requests/wait", params={"timeout": 0.2, **params}
        ).json()
        return got

    # Newer than `after` only: the first capture is not counted.
    got = wait(endpoint="f", after=head, count=5)
    assert [r["method"] for r in got["requests"]] == ["PUT", "POST"]
    assert wait(endpoint="f", method="put")["requests"][0]["response"]["status"] == 503
    assert len(wait(endpoint="f", status=503, count=5)["requests"]) == 1
    typed = wait(endpoint="f", event_type="member.joined", count=5)["requests"]
    assert len(typed) == 2
    found = wait(endpoint="f", q="needle", count=5)["requests"]
    assert len(found) == 1 and found[0]["id"] > head
    # A prefix covers every endpoint whose name starts with it.
    assert {r["endpoint"] for r in wait(endpoint="f*", count=10)["requests"]} == {"f", "f-two"}
    assert wait(endpoint="f", signature="none", count=10)["timed_out"] is True


def test_a_prefix_wait_is_woken_by_its_endpoints_only(live, client) -> None:
    waiting = Background(live, endpoint="ci-*", count=2, timeout=60)
    until(lambda: runtime_of(live).waiters.active == 1)
    client.post("/h/other")
    client.post("/h/ci-a")
    client.post("/h/ci-b")
    assert [r["endpoint"] for r in waiting.result()["requests"]] == ["ci-a", "ci-b"]


def test_an_update_can_make_a_request_match(live, client) -> None:
    body = b'{"event": "message.received"}'
    digest = hmac.new(b"late-secret", body, hashlib.sha256).hexdigest()
    client.post("/h/sig", content=body, headers={"x-webhook-signature": f"sha256={digest}"})
    waiting = Background(live, endpoint="sig", signature="valid", timeout=60)
    until(lambda: runtime_of(live).waiters.active == 1)
    # The verdict was no_secret; giving the endpoint its secret re-verifies it: now valid.
    client.put("/api/endpoints/sig", json={"secret": "late-secret"})
    got = waiting.result()
    assert got["timed_out"] is False
    assert got["requests"][0]["signature"]["status"] == "valid"


def test_bounds_are_clear_errors(live, client) -> None:
    for params, word in [
        ({"timeout": 301}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": "nan"}, "timeout"),
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"after": -1}, "after"),
        ({"endpoint": "bad name"}, "endpoint"),
        ({"endpoint": "bad*name*"}, "endpoint"),
    ]:
        answer = client.get("/api/requests/wait", params=params)
        assert answer.status_code == 400, params
        assert word in answer.json()["detail"].lower()


def test_too_many_waiters_get_503_with_retry_after(live, client) -> None:
    runtime_of(live).waiters.limit = 1
    first = Background(live, endpoint="busy", timeout=60)
    until(lambda: runtime_of(live).waiters.active == 1)
    refused = client.get("/api/requests/wait", params={"endpoint": "busy"})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "busy"
    client.post("/h/busy")
    assert first.result()["timed_out"] is False
    until(lambda: runtime_of(live).waiters.active == 0)
    assert client.get("/api/requests/wait", params={"endpoint": "busy"}).status_code == 200


def test_a_client_that_leaves_frees_its_waiter(live) -> None:
    rt = runtime_of(live)
    with live.client(timeout=0.5) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.get("/api/requests/wait", params={"endpoint": "gone", "timeout": 60})
    # Cleaned up long before the 60 s: no waiter, no subscription left.
    until(lambda: rt.waiters.active == 0 and rt.hub.subscriber_count == 0)
