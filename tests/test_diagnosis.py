"""The doctor after the answer: the Diagnoser in-process, then over HTTP (the answer never
waits for it, a flood is answered while it is busy, its finding arrives as an ``update``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from inspector.broadcast import Broadcaster
from inspector.capture import CapturedRequest, ResponseRecord
from inspector.diagnosis import QUEUE, Diagnoser, waiting
from inspector.endpoints import Endpoint, EndpointSettings
from inspector.reverify import Reverifier
from inspector.signatures import SignatureConfig, verify
from inspector.store import Store, intake, requests, verdicts
from tests.conftest import LiveInspector
from tests.test_stream import SSEClient

pytestmark = pytest.mark.backends

SECRET = "platform-secret"
EVENT = {"event": "message.received", "data": {"messageId": "msg_001", "content": "大家早安!"}}
PRETTY = json.dumps(EVENT, ensure_ascii=False, indent=2).encode()
COMPACT = json.dumps(EVENT, ensure_ascii=False, separators=(",", ":")).encode()


def sig(signed: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


# -- in-process ------------------------------------------------------------------------------


@pytest.fixture
def store(store_location: Path | str) -> Iterator[Store]:
    store = Store(store_location).open()
    store.start()
    yield store
    store.close()


def endpoint(**settings: Any) -> Endpoint:
    """Endpoint "e" compiled from ``settings`` (secret: SECRET), as the cache compiles it."""
    s = EndpointSettings.from_dict({"secret": SECRET, **settings})
    return Endpoint("e", s, s.signature_config(), {}, False, {}, s.retired_secrets)


def captured(signature: str, target: str = "/h/e", **headers: str) -> CapturedRequest:
    pairs = [("host", "hooks.example.com"), ("x-webhook-signature", signature), *headers.items()]
    path, _, query = target.partition("?")
    return CapturedRequest(
        endpoint="e",
        method="POST",
        path=path,
        query=query,
        headers=pairs,
        body=PRETTY,
        client="127.0.0.1:1",
        received_at="2026-11-28T00:00:00.000000Z",
        received_ts=time.time(),
        size=len(PRETTY),
        content_type="application/json",
    )


async def capture(store: Store, rec: CapturedRequest, ep: Endpoint) -> int:
    """Store ``rec`` with its verdict as the receiver computes it (without the doctor)."""
    verdict = verify(rec.headers, rec.body, ep.signature, diagnose=False)
    assert verdict is not None
    rec.signature = verdict.to_dict()
    inserted = await store.write(intake.insert_request, rec, lambda _: ResponseRecord(200))
    return inserted.id


def stored_verdict(store: Store, request_id: int) -> dict[str, Any]:
    found = store.read_sync(requests.get_request, request_id)
    assert found is not None and found["signature"] is not None
    return dict(found["signature"])


def diagnose(store: Store, rec: CapturedRequest, ep: Endpoint) -> tuple[dict[str, Any], list]:
    """Capture ``rec``, let a Diagnoser run, return the stored verdict and the updates."""

    async def main() -> tuple[int, list]:
        hub = Broadcaster()
        listener = hub.subscribe()
        doctor = Diagnoser(store, hub)
        request_id = await capture(store, rec, ep)
        assert waiting(stored_verdict(store, request_id))
        assert doctor.request(request_id, ep)
        await doctor.wait()
        return request_id, list(listener.pending)

    request_id, updates = asyncio.run(main())
    return stored_verdict(store, request_id), updates


def test_a_pending_verdict_is_diagnosed_stored_and_published(store: Store) -> None:
    verdict, updates = diagnose(store, captured(sig(COMPACT)), endpoint())
    assert verdict["status"] == "invalid" and verdict["doctor"] is None
    assert "JSON.stringify" in verdict["diagnosis"]
    assert [m.event for m in updates] == ["update"]
    assert json.loads(updates[0].data)["signature"] == verdict


def test_the_request_line_is_part_of_the_search(store: Store) -> None:
    # A sender that signed the URL it posted to, then the body.
    url = b"https://hooks.example.com/h/e?x=1"
    rec = captured(sig(url + PRETTY), "/h/e?x=1", **{"x-forwarded-proto": "https"})
    verdict, _ = diagnose(store, rec, endpoint())
    assert "included the URL ('https://hooks.example.com/h/e?x=1')" in verdict["diagnosis"]


def test_a_rotated_out_secret_is_remembered_and_named(store: Store) -> None:
    before = EndpointSettings.from_dict({"secret": ["old-secret"]})
    after = before.merged({"secret": [SECRET]})
    assert after.retired_secrets == ("old-secret",)
    ep = endpoint(retired_secrets=list(after.retired_secrets))
    verdict, _ = diagnose(store, captured(sig(PRETTY, "old-secret")), ep)
    assert "rotated out" in verdict["diagnosis"]


def test_retired_secrets_are_bounded_newest_first_and_never_current() -> None:
    settings = EndpointSettings()
    for n in range(12):
        settings = settings.merged({"secret": f"s{n}"})
    assert settings.secrets == ("s11",)
    assert settings.retired_secrets == tuple(f"s{n}" for n in range(10, 2, -1))
    # Back to an old secret: it is current again, not retired.
    settings = settings.merged({"secret": ["s5", "s11"]})
    assert "s5" not in settings.retired_secrets and settings.retired_secrets[0] == "s10"
    # A reset forgets the settings, not the secrets it removes.
    assert settings.reset().retired_secrets[:2] == ("s11", "s5")
    # Stored settings read back as they were.
    assert EndpointSettings.from_dict(settings.to_dict()) == settings


def test_a_verdict_that_moved_on_is_left_alone(store: Store) -> None:
    ep = endpoint()

    async def main() -> int:
        doctor = Diagnoser(store, Broadcaster())
        request_id = await capture(store, captured(sig(COMPACT)), ep)
        # Re-verification stored another verdict before the doctor got to it.
        moved = json.dumps({"status": "valid", "scheme": "platform", "reason": "ok"})
        await store.write(verdicts.set_signatures, [(request_id, moved)])
        doctor.request(request_id, ep)
        await doctor.wait()
        return request_id

    request_id = asyncio.run(main())
    assert stored_verdict(store, request_id)["status"] == "valid"


def test_the_queue_is_bounded_and_says_why_it_skipped(store: Store) -> None:
    async def main() -> None:
        doctor = Diagnoser(store, Broadcaster(), capacity=2)
        assert doctor.claim() and doctor.claim()
        assert not doctor.claim()
        pending = {"status": "invalid", "diagnosis": None, "doctor": "pending"}
        skipped = doctor.skipped(pending)
        assert skipped["doctor"] == "skipped" and waiting(skipped)
        assert "busy" in skipped["diagnosis"] and "Open this request again" in skipped["diagnosis"]
        doctor.release()
        assert doctor.claim()

    asyncio.run(main())


def test_a_queued_diagnosis_takes_the_settings_changed_while_it_waited(store: Store) -> None:
    """The secret rotates while a failure waits for the doctor (held busy): it is diagnosed
    with the endpoint's new settings, which remember the rotated-out secret."""
    rotated = endpoint(secret=SECRET, retired_secrets=["old-secret"])

    async def main() -> int:
        doctor = Diagnoser(store, Broadcaster())
        held = object()
        doctor._limiter.acquire_on_behalf_of_nowait(held)
        request_id = await capture(store, captured(sig(PRETTY, "old-secret")), endpoint())
        assert doctor.request(request_id, endpoint())
        await asyncio.sleep(0)  # the worker takes the job and waits for the doctor's thread
        doctor.retarget(rotated)
        doctor._limiter.release_on_behalf_of(held)
        await doctor.wait()
        return request_id

    assert "rotated out" in stored_verdict(store, asyncio.run(main()))["diagnosis"]


def test_re_verification_leaves_waiting_failures_in_the_doctors_queue(store: Store) -> None:
    """Captures judged by the settings of their time wait in the doctor's queue (more than
    the half of it re-verification may use); the secret rotates. They keep their places —
    not one is marked "skipped" — and are diagnosed with the new settings."""
    rotated = endpoint(secret=SECRET, retired_secrets=["old-secret"])
    count = QUEUE // 2 + 8

    async def main() -> list[int]:
        hub = Broadcaster()
        doctor = Diagnoser(store, hub)
        held = object()
        doctor._limiter.acquire_on_behalf_of_nowait(held)
        ids = []
        for _ in range(count):
            ids.append(await capture(store, captured(sig(PRETTY, "old-secret")), endpoint()))
            assert doctor.request(ids[-1], endpoint())
        reverifier = Reverifier(store, hub, doctor)
        reverifier.schedule({"e": rotated})
        await reverifier.wait()
        assert [stored_verdict(store, i)["doctor"] for i in ids] == ["pending"] * count
        doctor._limiter.release_on_behalf_of(held)
        await doctor.wait()
        assert doctor.done == count
        return ids

    for request_id in asyncio.run(main()):
        assert "rotated out" in stored_verdict(store, request_id)["diagnosis"]


def test_verify_without_the_doctor_says_the_diagnosis_is_pending() -> None:
    config = SignatureConfig(secrets=(SECRET,))
    quick = verify([("x-webhook-signature", sig(COMPACT))], PRETTY, config, diagnose=False)
    assert quick is not None and quick.doctor == "pending" and quick.diagnosis is None
    full = verify([("x-webhook-signature", sig(COMPACT))], PRETTY, config)
    assert full is not None and full.doctor is None and full.diagnosis
    valid = verify([("x-webhook-signature", sig(PRETTY))], PRETTY, config, diagnose=False)
    assert valid is not None and valid.doctor is None


# -- over HTTP -------------------------------------------------------------------------------

live = pytest.mark.live


def doctor_of(live_server: LiveInspector) -> Diagnoser:
    runtime = live_server.server.config.app.state.runtime  # type: ignore[attr-defined]
    doctor: Diagnoser = runtime.diagnoser
    return doctor


def wait_diagnosed(client: httpx.Client, request_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        verdict: dict[str, Any] = client.get(f"/api/requests/{request_id}").json()["signature"]
        if not waiting(verdict):
            return verdict
        assert time.monotonic() < deadline, verdict
        time.sleep(0.05)


@live
def test_the_diagnosis_arrives_after_the_answer(live: LiveInspector, database: str | None) -> None:
    stream = SSEClient(live.url + "/api/stream")
    try:
        ready = stream.next()
        assert ready is not None and ready.event == "ready"
        with live.client() as client:
            client.put("/api/endpoints/late", json={"secret": SECRET})
            answer = client.post(
                "/h/late", content=PRETTY, headers={"x-webhook-signature": sig(COMPACT)}
            )
            assert answer.status_code == 200
            (created,) = stream.take(1, timeout=60)
            assert created.event == "request"
            assert created.json["signature"]["status"] == "invalid"
            finding = created.json["signature"]
            if finding["doctor"] == "pending":
                # What was committed before the answer: the verdict, the doctor still to come.
                assert finding["diagnosis"] is None
                # The settings change re-verifies the endpoint's captures in the background:
                # one visible by then is announced again, still pending (a capture is visible
                # from its commit, before its answer). Then the finding, as an update.
                (update,) = stream.take(1, timeout=60)
                while update.event == "update" and update.json["signature"]["doctor"] == "pending":
                    (update,) = stream.take(1, timeout=60)
                assert update.event == "update" and update.json["id"] == created.json["id"]
                finding = update.json["signature"]
            else:
                # A replica of a shared store reads what a notification names when it arrives
                # (inspector/relay.py): by then the doctor may have written its finding.
                assert database is not None, "SQLite announces the capture as committed"
        assert finding["doctor"] is None
        assert "JSON.stringify" in finding["diagnosis"]
    finally:
        stream.close()


@live
def test_a_flood_of_failing_captures_is_answered_while_the_doctor_is_busy(
    live: LiveInspector,
) -> None:
    doctor = doctor_of(live)
    loop = live.server.servers[0].get_loop()
    # Hold the doctor's one thread for the whole flood: however slow diagnosing is, no answer
    # may wait for it, and the queue must fill up and say so.
    held = object()
    limiter = doctor._limiter
    loop.call_soon_threadsafe(limiter.acquire_on_behalf_of_nowait, held)
    count = doctor.capacity + 16
    body = PRETTY * 4
    headers = {"x-webhook-signature": sig(body, "nobody-has-this")}
    with live.client() as client:
        client.put("/api/endpoints/flood", json={"secret": SECRET})

        def post(_: int) -> int:
            with live.client() as c:
                return c.post("/h/flood", content=body, headers=headers).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(post, range(count)))
        assert statuses == [200] * count
        assert doctor.busy and doctor.done == 0
        items = client.get("/api/requests?endpoint=flood&limit=200").json()["requests"]
        states = [it["signature"]["doctor"] for it in items]
        # One in the doctor's hands, a full queue behind it, the rest skipped.
        assert states.count("pending") == doctor.capacity + 1
        assert states.count("skipped") == count - doctor.capacity - 1
        skipped = next(it for it in items if it["signature"]["doctor"] == "skipped")
        assert "busy" in skipped["signature"]["diagnosis"]

        # Let go: the queue drains, and what was skipped is diagnosed when someone opens it.
        loop.call_soon_threadsafe(limiter.release_on_behalf_of, held)
        deadline = time.monotonic() + 120
        while doctor.busy:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert doctor.done == doctor.capacity + 1
        verdict = wait_diagnosed(client, skipped["id"])
        assert verdict["diagnosis"].startswith("None of the common mistakes explain it")


@live
def test_rotated_secret_and_signed_url_over_http(live: LiveInspector) -> None:
    with live.client() as client:
        client.put("/api/endpoints/rot", json={"secret": "old-secret"})
        put = client.put("/api/endpoints/rot", json={"secret": SECRET})
        assert put.json()["settings"]["retired_secrets"] == ["old-secret"]
        client.post("/h/rot", content=PRETTY, headers={"x-webhook-signature": sig(PRETTY, "old")})
        client.post(
            "/h/rot", content=PRETTY, headers={"x-webhook-signature": sig(PRETTY, "old-secret")}
        )
        url = f"http://127.0.0.1:{live.port}/h/rot?shop=1".encode()
        client.post(
            "/h/rot?shop=1", content=PRETTY, headers={"x-webhook-signature": sig(url + PRETTY)}
        )
        other, rotated, signed_url = (
            wait_diagnosed(client, it["id"])
            for it in reversed(client.get("/api/requests?endpoint=rot").json()["requests"])
        )
    assert other["diagnosis"].startswith("None of the common mistakes explain it")
    assert "rotated out" in rotated["diagnosis"]
    assert "included the URL" in signed_url["diagnosis"]


@live
def test_re_verification_queues_its_failures_for_the_doctor(live: LiveInspector) -> None:
    """Rotating the secret turns what was captured invalid; re-verification runs without the
    doctor and hands the failures to it, which names the rotated-out secret."""
    with live.client() as client:
        client.put("/api/endpoints/turn", json={"secret": "old-secret"})
        signed = {"x-webhook-signature": sig(PRETTY, "old-secret")}
        client.post("/h/turn", content=PRETTY, headers=signed)
        (captured,) = client.get("/api/requests?endpoint=turn").json()["requests"]
        assert captured["signature"]["status"] == "valid"
        client.put("/api/endpoints/turn", json={"secret": SECRET})
        deadline = time.monotonic() + 30
        while True:  # the list, which (unlike opening the request) never asks for the doctor
            (item,) = client.get("/api/requests?endpoint=turn").json()["requests"]
            verdict = item["signature"]
            if verdict["status"] == "invalid" and not waiting(verdict):
                break
            assert time.monotonic() < deadline, verdict
            time.sleep(0.05)
    assert "rotated out" in verdict["diagnosis"]
