"""Retry timelines over HTTP: a scaled sender against a live server, and an injected clock."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from inspector.capture import CapturedRequest, ResponseRecord
from inspector.cli import main
from inspector.store import Store, requests
from tests.conftest import LiveInspector

pytestmark = [pytest.mark.live, pytest.mark.backends]

SCALED = (0.3, 0.6, 1.2)  # the platform's 60/300/1800 s, scaled by 1/200


def test_scaled_sender_with_fail_2_gives_an_on_time_timeline(client: httpx.Client) -> None:
    """A small sender playing the platform's policy on a scaled clock: retry on non-2xx."""
    body = json.dumps({"event": "message.received", "data": {"messageId": "msg_42"}}).encode()
    statuses = []
    for wait in (0, *SCALED):
        time.sleep(wait)
        status = client.post("/h/scaled?fail=2", content=body).status_code
        statuses.append(status)
        if status < 300:
            break
    assert statuses == [500, 500, 200]
    schedule = ",".join(str(s) for s in SCALED)
    report = client.get(f"/api/events/scaled/message.received-msg_42?schedule={schedule}").json()
    assert report["attempts"] == 3
    assert [i["verdict"] for i in report["intervals"]] == ["ok", "ok"]
    assert report["stopped"] == "succeeded"
    assert "expected 0.3 s: ok" in report["intervals"][0]["message"]
    listing = client.get(f"/api/events?endpoint=scaled&schedule={schedule}").json()["events"]
    assert [e["event_key"] for e in listing] == ["message.received-msg_42"]
    assert [a["status"] for a in listing[0]["attempt_list"]] == [500, 500, 200]


def inject(live: LiveInspector, key: str, ages_and_statuses: list[tuple[float, int]]) -> None:
    """Store attempts of one event as if they arrived ``age`` seconds ago (injected clock)."""
    store = Store(live.settings.store_location).open()
    now = time.time()
    try:
        for age, status in ages_and_statuses:
            rec = CapturedRequest(
                endpoint="clock",
                method="POST",
                path="/h/clock",
                query="",
                headers=[],
                body=b"{}",
                client=None,
                received_at="",
                received_ts=now - age,
                size=2,
                content_type="application/json",
                event_key=key,
            )
            response = ResponseRecord(status, [], b"")
            store.write_sync(requests.insert_request, rec, lambda _a, r=response: r)
    finally:
        store.close()


@pytest.mark.parametrize(
    ("attempts", "verdicts", "stopped"),
    [
        # on time: 61 s then 302 s, then success
        ([(400, 500), (339, 500), (37, 200)], ["ok", "ok"], "succeeded"),
        # early: retried after 20 s instead of 60 s
        ([(100, 500), (80, 200)], ["early"], "succeeded"),
        # late: the second retry came 500 s after the first instead of 300 s
        ([(700, 500), (640, 500), (140, 200)], ["ok", "late"], "succeeded"),
        # missing: failed twice, and the 5-minute retry never came (10 minutes ago)
        ([(660, 500), (600, 500)], ["ok", "missing"], "stopped_early"),
        # all retries made, all failed: the sender gave up as promised
        (
            [(2300, 500), (2240, 500), (1940, 500), (140, 500)],
            ["ok", "ok", "ok"],
            "gave_up_after_schedule",
        ),
    ],
)
def test_verdicts_with_an_injected_clock(
    live: LiveInspector, attempts: list[tuple[float, int]], verdicts: list[str], stopped: str
) -> None:
    inject(live, "evt", attempts)
    with live.client() as client:
        report = client.get("/api/events/clock/evt").json()
    assert [i["verdict"] for i in report["intervals"]] == verdicts, report["intervals"]
    assert report["stopped"] == stopped, report["summary"]


def test_unknown_event_and_missing_endpoint(client: httpx.Client) -> None:
    assert client.get("/api/events/nowhere/nothing").status_code == 404
    assert client.get("/api/events").status_code == 400
    assert client.get("/api/events?endpoint=x&schedule=a,b").status_code == 400


def test_cli_events_prints_the_timeline(
    live: LiveInspector, capsys: pytest.CaptureFixture[str]
) -> None:
    inject(live, "evt-cli", [(400, 500), (339, 200)])
    data_dir = str(live.settings.data_dir)
    assert main(["events", "--endpoint", "clock", "--data-dir", data_dir]) == 0
    assert "evt-cli" in capsys.readouterr().out
    assert main(["events", "--endpoint", "clock", "evt-cli", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "expected 60 s: ok" in out and "#2" in out
