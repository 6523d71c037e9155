"""Two replicas on one PostgreSQL store: one live view, one attempt count, one settings,
one sender. (Each replica is a real uvicorn server; they share nothing but the database.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveInspector, fresh_schema, start_app
from tests.test_stream import SSEClient

pytestmark = [pytest.mark.live]

Make = Callable[..., LiveInspector]


@pytest.fixture
def replicas(make_live: Make) -> Iterator[tuple[LiveInspector, LiveInspector]]:
    with fresh_schema() as url:
        pair = make_live(database=url), make_live(database=url)
        yield pair
        for replica in pair:  # before the schema goes
            replica.stop()


def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_a_capture_on_one_replica_reaches_the_stream_of_the_other(replicas: Any) -> None:
    a, b = replicas
    stream = SSEClient(b.url + "/api/stream")
    try:
        assert stream.next().event == "ready"
        with a.client() as client:
            assert client.post("/h/shared", content=b'{"n": 1}').status_code == 200
        event = stream.next(timeout=10)
        assert event is not None and event.event == "request"
        assert event.json["endpoint"] == "shared" and event.id == str(event.json["id"])
        # A stall's end, written by A, is an update on B as well.
        with a.client() as client:
            client.post("/h/shared?delay=0.1", content=b"x")
        got = stream.take(2, timeout=10)
        assert [e.event for e in got] == ["request", "update"]
        assert got[1].json["response"]["status"] == 200
    finally:
        stream.close()


def test_resume_is_exact_while_two_replicas_write_at_once(replicas: Any) -> None:
    """Ids drawn by two writers could commit out of order; the advisory lock makes commit
    order id order, so a client resuming from every id it has seen, on either replica,
    gets every request once, in order."""
    a, b = replicas
    count = 300
    posted: list[int] = []
    done = threading.Event()

    def load(target: LiveInspector, tag: str) -> None:
        with target.client() as client:
            for n in range(count // 6):
                assert client.post(f"/h/load?{tag}={n}", content=b"x").status_code == 200
                posted.append(1)

    writers = [threading.Thread(target=load, args=(r, f"w{i}")) for i, r in enumerate([a, b] * 3)]
    seen: list[int] = []
    hops = 0

    def follow() -> None:
        # Reconnect every few events, alternating replicas, from the last id seen.
        nonlocal hops
        last = 0
        while True:
            target = (a, b)[hops % 2]
            hops += 1
            stream = SSEClient(target.url + "/api/stream", {"Last-Event-ID": str(last)})
            try:
                ready = stream.next(timeout=10)
                assert ready is not None and ready.event == "ready"
                for _ in range(7):
                    event = stream.next(timeout=1 if done.is_set() else 10)
                    if event is None:
                        break
                    if event.event == "request":
                        seen.append(int(event.id or 0))
                        last = int(event.id or 0)
            except Exception:  # queue.Empty: nothing more is coming
                if done.is_set():
                    return
            finally:
                stream.close()

    reader = threading.Thread(target=follow)
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join(timeout=120)
    assert len(posted) == count
    with a.client() as client:
        stored = client.get("/api/requests?endpoint=load&limit=1000").json()["requests"]
    ids = sorted(r["id"] for r in stored)
    assert len(ids) == count
    assert hops > 10, "the reader should have resumed many times"
    assert seen == ids, "a resumed stream must give every request once, in id order"


def test_fail_n_counts_attempts_across_replicas(replicas: Any) -> None:
    a, b = replicas
    body = json.dumps({"event": "order.paid", "data": {"id": "evt_alternating"}}).encode()
    statuses = []
    for target in (a, b, a):
        with target.client() as client:
            statuses.append(client.post("/h/alt?fail=2", content=body).status_code)
    assert statuses == [500, 500, 200]
    with b.client() as client:
        items = client.get("/api/requests?endpoint=alt").json()["requests"]
    assert sorted(it["attempt"] for it in items) == [1, 2, 3]
    assert {it["first_attempt_id"] for it in items} == {min(it["id"] for it in items)}


def test_endpoint_settings_changed_on_one_replica_apply_on_the_other(replicas: Any) -> None:
    a, b = replicas
    with b.client() as client:
        assert client.post("/h/ruled", content=b"x").status_code == 200
    # No poll on a shared store: B's cache is reloaded by the notification...
    assert b.server.config.app.state.runtime.endpoints._task is None
    with a.client() as on_a, b.client() as on_b:
        for i in range(20):
            status = 500 + i % 10
            put = on_a.put("/api/endpoints/ruled", json={"response": {"status": status}})
            assert put.status_code == 200
            # ...and B's very next capture obeys the change, notified or not yet: B's writer
            # refuses a capture prepared with older settings (Store.write_as_of).
            assert on_b.post("/h/ruled", content=b"x").status_code == status, f"change #{i}"

    def shown_on_b() -> bool:
        with b.client() as client:
            found = client.get("/api/endpoints/ruled").json()["settings"]
        return bool(found["response"]["status"] == 509)

    wait_for(shown_on_b)  # what is not a capture (the API, the page) follows the notification


class Receiver:
    """A webhook receiver that fails the first attempt of each delivery."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []  # (webhook-id or msg, attempt header)
        self.lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            key = headers.get("webhook-id") or headers.get("x-webhook-id") or "?"
            self.attempts.append((key, str(len(self.attempts))))
            status = 500 if len(self.attempts) % 2 == 1 else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def test_each_delivery_attempt_is_sent_by_one_replica(replicas: Any) -> None:
    a, b = replicas
    target = Receiver()
    server = start_app(target)
    try:
        created = []
        for i in range(6):
            with (a, b)[i % 2].client() as client:
                answer = client.post(
                    "/api/deliveries",
                    json={
                        "event": "message.received",
                        "url": server.url + "/hook",
                        "secret": "s",
                        "schedule": [0.05],
                    },
                )
                assert answer.status_code in (200, 201), answer.text
                created.append(answer.json()["id"])

        def all_done() -> bool:
            with a.client() as client:
                listed = client.get("/api/deliveries").json()["deliveries"]
            return all(d["state"] != "pending" for d in listed) and len(listed) == 6

        wait_for(all_done, timeout=30)
        with b.client() as client:
            listed = client.get("/api/deliveries").json()["deliveries"]
        logged = sum(d["attempts"] for d in listed)
        # Every attempt sent was logged once: the receiver saw exactly the logged attempts.
        assert logged == len(target.attempts)
        assert all(d["statuses"] and len(d["statuses"]) == d["attempts"] for d in listed)
    finally:
        server.stop()


def test_a_replica_streams_deliveries_made_by_the_other(replicas: Any) -> None:
    a, b = replicas
    stream = SSEClient(b.url + "/api/deliveries/stream")
    target = Receiver()
    server = start_app(target)
    try:
        assert stream.next().event == "ready"
        with a.client() as client:
            answer = client.post(
                "/api/deliveries",
                json={
                    "event": "message.received",
                    "url": server.url + "/h",
                    "secret": "s",
                    "schedule": [0.05],
                },
            )
            assert answer.status_code in (200, 201), answer.text
        changes = []
        while "failed" not in changes and "succeeded" not in changes:
            event = stream.next(timeout=15)
            assert event is not None and event.event == "delivery"
            changes.append(event.json["change"])
        assert changes[0] == "created" and "sending" in changes and "attempt" in changes
    finally:
        stream.close()
        server.stop()


def test_two_replicas_answer_http_like_one(replicas: Any) -> None:
    a, b = replicas
    with a.client() as ca, b.client() as cb:
        ca.post("/h/both", content=b"from a")
        cb.post("/h/both", content=b"from b")
        for client in (ca, cb):
            listed = client.get("/api/requests?endpoint=both").json()["requests"]
            assert len(listed) == 2
        assert (
            httpx.get(a.url + "/api/endpoints").json() == httpx.get(b.url + "/api/endpoints").json()
        )
