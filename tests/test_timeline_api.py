"""Retry timelines over the API (in-process): a scaled sender, and an injected clock."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from inspector.cli import main
from inspector.store import Store
from tests.conftest import (
    InProcessInspector,
    LiveInspector,
    answering,
    captured_request,
    store_request,
)

pytestmark = pytest.mark.backends

SCALED = (0.3, 0.6, 1.2)  # the platform's 60/300/1800 s, scaled by 1/200


def test_scaled_sender_with_fail_2_gives_an_on_time_timeline(app_client: httpx.Client) -> None:
    """A small sender playing the platform's policy on a scaled clock: retry on non-2xx."""
    body = json.dumps({"event": "message.received", "data": {"messageId": "msg_42"}}).encode()
    statuses = []
    due = time.monotonic()
    for wait in (0, *SCALED):
        # Each retry is due ``wait`` after the previous one was sent, like the platform's:
        # the time a request took does not push the next one later.
        due += wait
        time.sleep(max(0.0, due - time.monotonic()))
        status = app_client.post("/h/scaled?fail=2", content=body).status_code
        statuses.append(status)
        if status < 300:
            break
    assert statuses == [500, 500, 200]
    schedule = ",".join(str(s) for s in SCALED)
    # A retry is on time within the tolerance (here 100 %: 0.3 s either way of the first):
    # a loaded machine can hold a request up for a tenth of a second; early and late
    # verdicts are judged exactly in test_verdicts_with_an_injected_clock.
    report = app_client.get(
        f"/api/events/scaled/message.received-msg_42?schedule={schedule}&tolerance=1"
    ).json()
    assert report["attempts"] == 3
    assert [i["verdict"] for i in report["intervals"]] == ["ok", "ok"]
    assert report["stopped"] == "succeeded"
    assert "expected 0.3 s: ok" in report["intervals"][0]["message"]
    listing = app_client.get(f"/api/events?endpoint=scaled&schedule={schedule}").json()["events"]
    assert [e["event_key"] for e in listing] == ["message.received-msg_42"]
    assert [a["status"] for a in listing[0]["attempt_list"]] == [500, 500, 200]


def inject(
    inspector: InProcessInspector, key: str, ages_and_statuses: list[tuple[float, int]]
) -> None:
    """Store attempts of one event as if they arrived ``age`` seconds ago (injected clock)."""
    store = Store(inspector.settings.store_location).open()
    now = time.time()
    try:
        for age, status in ages_and_statuses:
            arrived = captured_request(
                "clock",
                b"{}",
                headers=[],
                client=None,
                received_at="",
                received_ts=now - age,
                content_type="application/json",
                event_key=key,
            )
            store_request(store, arrived, answering(status))
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
    in_process: InProcessInspector,
    attempts: list[tuple[float, int]],
    verdicts: list[str],
    stopped: str,
) -> None:
    inject(in_process, "evt", attempts)
    with in_process.client() as client:
        report = client.get("/api/events/clock/evt").json()
    assert [i["verdict"] for i in report["intervals"]] == verdicts, report["intervals"]
    assert report["stopped"] == stopped, report["summary"]


def test_unknown_event_and_missing_endpoint(app_client: httpx.Client) -> None:
    assert app_client.get("/api/events/nowhere/nothing").status_code == 404
    assert app_client.get("/api/events").status_code == 400
    assert app_client.get("/api/events?endpoint=x&schedule=a,b").status_code == 400


def test_cli_events_prints_the_timeline(
    in_process: InProcessInspector, capsys: pytest.CaptureFixture[str]
) -> None:
    inject(in_process, "evt-cli", [(400, 500), (339, 200)])
    data_dir = str(in_process.settings.data_dir)
    assert main(["events", "--endpoint", "clock", "--data-dir", data_dir]) == 0
    assert "evt-cli" in capsys.readouterr().out
    assert main(["events", "--endpoint", "clock", "evt-cli", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "expected 60 s: ok" in out and "#2" in out


def test_our_own_scaled_delivery_is_judged_by_its_own_clock(
    live: LiveInspector, capsys: pytest.CaptureFixture[str]
) -> None:
    """`send --time-scale` into the capture route: the timeline knows the schedule it kept,
    in the API and in `events`, without being told; `--schedule` still overrides it."""
    data = ["--data-dir", str(live.settings.data_dir)]
    send = ["send", "member.joined", "--to", f"{live.url}/h/own?fail=1", "--secret", "s"]
    sent = main([*send, "--wait", "--time-scale", "0.005", *data])  # waits from the end
    assert sent == 0, capsys.readouterr()
    assert "retries 0.3 s, 1.5 s, 9 s after each failed attempt ends" in capsys.readouterr().out
    with live.client() as client:
        (event,) = client.get("/api/events?endpoint=own").json()["events"]
    assert event["schedule_from"] == "delivery #1 (time scale 0.005)"
    assert event["wait_from"] == "end" and event["schedule"] == pytest.approx([0.3, 1.5, 9])
    assert [i["verdict"] for i in event["intervals"]] == ["ok"], event["intervals"]
    assert main(["events", "--endpoint", "own", event["event_key"], *data]) == 0
    out = capsys.readouterr().out
    assert "schedule  0.3 s, 1.5 s, 9 s, each from the failed attempt's end" in out
    assert "(delivery #1 (time scale 0.005))" in out and ": ok" in out
    # Told otherwise, it judges by what it is told: the platform's minutes, from the start.
    told = ["events", "--endpoint", "own", event["event_key"], "--wait-from", "start", *data]
    assert main(told) == 0
    out = capsys.readouterr().out
    assert "(query)" in out and "s early" in out
