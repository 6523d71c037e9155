from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.timeline import (
    DEFAULT_SCHEDULE,
    DEFAULT_WAIT_FROM,
    SENDER_SLACK,
    Attempt,
    Expected,
    SenderSchedule,
    build_timeline,
    event_identity,
    event_key,
    event_type,
    timeline_report,
)
from inspector.timeline import _fields as _fields_of

PLATFORM = {
    "event": "message.received",
    "timestamp": "2025-01-15T08:30:00Z",
    "data": {"channelId": "C1234567890", "messageId": "msg_001", "content": "大家早安!"},
}
STRIPE = {"id": "evt_1Abc", "object": "event", "type": "charge.succeeded", "data": {}}


def _json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _hash_key(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()[:16]


# -- event_key -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["webhook-id", "X-Webhook-Id", "X-GitHub-Delivery", "x-shopify-webhook-id"]
)
def test_key_from_each_id_header(name: str) -> None:
    assert event_key([("Content-Type", "application/json"), (name, " abc-1 ")], b"{}") == "abc-1"


def test_id_header_priority_is_by_name_not_position() -> None:
    headers = [
        ("X-Shopify-Webhook-Id", "shopify"),
        ("X-GitHub-Delivery", "github"),
        ("X-Webhook-Id", "generic"),
        ("Webhook-Id", "standard"),
    ]
    assert event_key(headers, b"") == "standard"
    assert event_key(headers[:3], b"") == "generic"
    assert event_key(headers[:2], b"") == "github"


def test_empty_id_header_is_skipped() -> None:
    headers = [("webhook-id", "  "), ("x-github-delivery", "gh-1")]
    assert event_key(headers, _json(PLATFORM)) == "gh-1"


def test_header_beats_body() -> None:
    assert event_key([("X-Webhook-Id", "h1")], _json(STRIPE)) == "h1"


def test_stripe_event_id() -> None:
    assert event_key([], _json(STRIPE)) == "evt_1Abc"


def test_stripe_signature_header_accepts_any_string_id() -> None:
    body = _json({"id": "custom_9", "type": "thing.happened"})
    assert event_key([("Stripe-Signature", "t=1,v1=abc")], body) == "custom_9"
    assert event_key([], body) == _hash_key(body)


def test_stripe_id_needs_the_event_object() -> None:
    body = _json({"id": "evt_1", "object": "charge"})
    assert event_key([], body) == _hash_key(body)


def test_stripe_beats_platform_rule() -> None:
    body = _json({**STRIPE, "event": "message.received", "timestamp": "t"})
    assert event_key([], body) == "evt_1Abc"


def test_platform_rule_with_message_id() -> None:
    assert event_key([], _json(PLATFORM)) == "message.received-msg_001"


def test_platform_rule_falls_back_to_timestamp() -> None:
    body = {
        "event": "member.joined",
        "timestamp": "2025-01-15T08:30:00Z",
        "data": {"channelId": "C1", "member": {"userId": "U1"}, "messageId": ""},
    }
    assert event_key([], _json(body)) == "member.joined-2025-01-15T08:30:00Z"
    assert event_key([], _json({"event": "e", "timestamp": 1736929800})) == "e-1736929800"


def test_platform_rule_without_id_or_timestamp_hashes() -> None:
    body = _json({"event": "member.left", "data": {}})
    assert event_key([], body) == _hash_key(body)


def test_platform_rule_tolerates_bom_and_whitespace() -> None:
    assert event_key([], b"\xef\xbb\xbf \r\n\t" + _json(PLATFORM)) == "message.received-msg_001"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b'{"event": "message.received", "data": {"messageId": "m"',  # truncated JSON
        b'{"event": "x", "timestamp": "\xff\xfe"}',  # not UTF-8
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b'["event", "timestamp"]',
        b"event=message.received&timestamp=1",
        b"{" * 100_000,  # would recurse deeply
        b'{"event": "big", "timestamp": "t", "pad": "' + b"x" * (1024 * 1024) + b'"}',
    ],
    ids=["empty", "truncated", "not-utf8", "binary", "array", "form", "deep", "huge"],
)
def test_unusable_bodies_fall_back_to_the_hash(body: bytes) -> None:
    assert event_key([("Content-Type", "application/json")], body) == _hash_key(body)


def test_identical_bodies_identical_keys() -> None:
    body = b"payload=1"
    assert event_key([], body) == event_key([("User-Agent", "other")], bytes(body))
    assert event_key([], body) != event_key([], b"payload=2")


def test_long_keys_are_capped_without_merging() -> None:
    first = event_key([("webhook-id", "a" * 300 + "1")], b"")
    second = event_key([("webhook-id", "a" * 300 + "2")], b"")
    assert len(first) == len(second) == 200
    assert first != second


# -- event_type ----------------------------------------------------------------------------


def test_event_type_platform_and_stripe() -> None:
    assert event_type(_json(PLATFORM), "application/json") == "message.received"
    assert event_type(_json(STRIPE), "application/json; charset=utf-8") == "charge.succeeded"


def test_event_type_sniffs_mislabelled_json() -> None:
    assert event_type(_json(PLATFORM), "text/plain") == "message.received"
    assert event_type(_json(PLATFORM), None) == "message.received"


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1]", b'{"event": 5}', b'{"type": ""}', b"{oops"]
)
def test_event_type_none(body: bytes) -> None:
    assert event_type(body, "application/json") is None


def test_event_identity_matches_the_two_functions() -> None:
    headers = [("X-GitHub-Delivery", "d1")]
    body = _json(STRIPE)
    assert event_identity(headers, body) == (event_key(headers, body), event_type(body, None))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=20), st.text(max_size=300)), max_size=5),
    st.binary(max_size=500)
    | st.builds(
        lambda v: json.dumps(v).encode(),
        st.dictionaries(
            st.sampled_from(["id", "object", "event", "type", "timestamp", "data"]),
            st.none()
            | st.booleans()
            | st.integers()
            | st.text()
            | st.dictionaries(st.text(), st.text()),
        ),
    ),
)
def test_key_and_type_never_raise(headers: list[tuple[str, str]], body: bytes) -> None:
    key, kind = event_identity(headers, body)
    assert 0 < len(key) <= 200
    assert kind is None or 0 < len(kind) <= 200


# -- timelines -----------------------------------------------------------------------------

T0 = 1_736_929_800.0


def _attempts(*spec: tuple[float, int | None]) -> list[Attempt]:
    """(seconds after T0, status) pairs -> attempts with ids 1, 2, ..."""
    return [Attempt(i, T0 + at, status) for i, (at, status) in enumerate(spec, start=1)]


def test_succeeded_first_try() -> None:
    timeline = build_timeline(_attempts((0, 200)), now=T0 + 5)
    assert timeline.succeeded and timeline.stopped == "succeeded"
    assert timeline.intervals == []
    assert timeline.summary == "Succeeded on the first attempt."


def test_on_time_retries_then_success() -> None:
    timeline = build_timeline(_attempts((0, 500), (61.2, 503), (61.2 + 298, 200)), now=T0 + 999)
    assert [i.verdict for i in timeline.intervals] == ["ok", "ok"]
    assert [i.attempt for i in timeline.intervals] == [2, 3]
    assert timeline.intervals[0].expected == 60.0
    assert timeline.intervals[0].actual == pytest.approx(61.2)
    assert (
        timeline.intervals[0].message == "retried 61.2 s after attempt 1 ended, expected 60 s: ok"
    )
    assert "expected 300 s" in timeline.intervals[1].message
    assert timeline.succeeded and timeline.stopped == "succeeded"
    assert "attempt 3 after 2 retries" in timeline.summary
    assert "on schedule" in timeline.summary


def test_early_retry() -> None:
    timeline = build_timeline(_attempts((0, 500), (30, 200)), now=T0 + 100)
    interval = timeline.intervals[0]
    assert interval.verdict == "early"
    assert "retried 30.0 s after attempt 1 ended, expected 60 s" in interval.message
    assert "30.0 s early" in interval.message and "tolerance 6 s" in interval.message
    assert "attempt 2 early" in timeline.summary


def test_late_retry() -> None:
    timeline = build_timeline(_attempts((0, 500), (60, 500), (60 + 400, 200)), now=T0 + 999)
    assert [i.verdict for i in timeline.intervals] == ["ok", "late"]
    assert (
        "retried 400.0 s after attempt 2 ended, expected 300 s (100.0 s late"
        in timeline.intervals[1].message
    )


def test_tolerance_boundaries() -> None:
    # 60 s expected, tolerance max(1, 6) = 6 s either side.
    verdicts = [
        build_timeline(_attempts((0, 500), (gap, 200)), now=T0 + 999).intervals[0].verdict
        for gap in (53.9, 54.0, 66.0, 66.1)
    ]
    assert verdicts == ["early", "ok", "ok", "late"]


def test_min_tolerance_applies_to_short_intervals() -> None:
    timeline = build_timeline(_attempts((0, 500), (5.9, 200)), schedule=(5.0,), now=T0 + 99)
    assert timeline.intervals[0].verdict == "ok"  # 0.9 s off, but min_tolerance is 1 s


def test_missing_retry() -> None:
    now = T0 + 360 + 1800 + 200  # tolerance is 180 s
    timeline = build_timeline(_attempts((0, 500), (60, 500), (360, 500)), now=now)
    missing = timeline.intervals[-1]
    assert (missing.attempt, missing.expected, missing.actual) == (4, 1800.0, None)
    assert missing.verdict == "missing"
    assert missing.message == (
        "retry 3 (attempt 4) expected 1800 s after attempt 3 ended, "
        "not received (overdue by 200.0 s, tolerance 180 s): missing"
    )
    assert timeline.stopped == "stopped_early" and not timeline.succeeded
    assert "retry 3 is overdue by 200.0 s" in timeline.summary


def test_pending_retry() -> None:
    timeline = build_timeline(_attempts((0, 500)), now=T0 + 20)
    pending = timeline.intervals[0]
    assert (pending.attempt, pending.expected, pending.actual, pending.verdict) == (
        2,
        60.0,
        None,
        "pending",
    )
    assert "expected 60 s after attempt 1 ended, due in 40.0 s" in pending.message
    assert timeline.stopped == "waiting"
    assert "retry 1 is due in 40.0 s" in timeline.summary


def test_pending_within_tolerance_is_due_now() -> None:
    timeline = build_timeline(_attempts((0, 500)), now=T0 + 63)
    assert timeline.intervals[0].verdict == "pending"
    assert "due now" in timeline.intervals[0].message
    late = build_timeline(_attempts((0, 500)), now=T0 + 66.5)
    assert late.intervals[0].verdict == "missing" and late.stopped == "stopped_early"


def test_gave_up_after_schedule() -> None:
    attempts = _attempts((0, 500), (60, 500), (360, 500), (2160, 500))
    timeline = build_timeline(attempts, now=T0 + 99_999)
    assert [i.verdict for i in timeline.intervals] == ["ok", "ok", "ok"]
    assert timeline.stopped == "gave_up_after_schedule" and not timeline.succeeded
    assert "all 3 scheduled retries" in timeline.summary


def test_kept_going_beyond_the_schedule() -> None:
    attempts = _attempts((0, 500), (60, 500), (360, 500), (2160, 500), (2165, 500))
    timeline = build_timeline(attempts, now=T0 + 99_999)
    extra = timeline.intervals[-1]
    assert (extra.attempt, extra.expected, extra.verdict) == (5, None, "unexpected")
    assert extra.message == "retried after 5.0 s beyond the schedule: unexpected"
    assert timeline.stopped == "kept_going"
    assert "5 attempts" in timeline.summary


def test_success_then_duplicate() -> None:
    timeline = build_timeline(_attempts((0, 500), (60, 200), (75, 200)), now=T0 + 999)
    assert [i.verdict for i in timeline.intervals] == ["ok", "unexpected"]
    assert "after a success" in timeline.intervals[1].message
    assert "15.0 s" in timeline.intervals[1].message
    assert timeline.succeeded and timeline.stopped == "succeeded"
    assert timeline.summary == (
        "Succeeded on attempt 2 after 1 retry; retries on schedule; "
        "1 duplicate delivery after a success."
    )


def test_first_try_success_then_duplicate() -> None:
    timeline = build_timeline(_attempts((0, 200), (2, 200)), now=T0 + 9)
    assert [i.verdict for i in timeline.intervals] == ["unexpected"]
    assert timeline.summary == (
        "Succeeded on the first attempt; 1 duplicate delivery after a success."
    )


def test_dropped_and_timed_out_attempts_count_as_failures() -> None:
    attempts = [
        Attempt(1, T0, None, dropped=True),
        Attempt(2, T0 + 60, 200, client_gave_up_after_ms=30_000),
        Attempt(3, T0 + 360, None, dropped=True),
    ]
    timeline = build_timeline(attempts, now=T0 + 400)
    assert [i.verdict for i in timeline.intervals] == ["ok", "ok", "pending"]
    assert not timeline.succeeded and timeline.stopped == "waiting"
    assert "attempt 3 dropped" in timeline.summary
    gave_up = build_timeline(attempts[:2], now=T0 + 61)
    assert "timed out after 30.0 s" in gave_up.summary


def test_in_progress_attempt_is_not_a_success() -> None:
    timeline = build_timeline([Attempt(1, T0, None)], now=T0 + 1)
    assert not timeline.succeeded and timeline.stopped == "waiting"
    assert "in progress" in timeline.summary


def test_attempts_are_sorted() -> None:
    shuffled = [Attempt(3, T0 + 360, 200), Attempt(1, T0, 500), Attempt(2, T0 + 60, 500)]
    timeline = build_timeline(shuffled, now=T0 + 999)
    assert [a.id for a in timeline.attempts] == [1, 2, 3]
    assert [i.verdict for i in timeline.intervals] == ["ok", "ok"]


def test_scaled_schedule() -> None:
    schedule = (0.6, 3.0, 18.0)
    attempts = _attempts((0, 500), (0.61, 500), (0.61 + 3.5, 500), (0.61 + 3.5 + 18.1, 200))
    timeline = build_timeline(attempts, schedule, now=T0 + 30, min_tolerance=0.2)
    assert [i.verdict for i in timeline.intervals] == ["ok", "late", "ok"]
    assert (
        timeline.intervals[0].message == "retried 0.61 s after attempt 1 ended, expected 0.6 s: ok"
    )
    assert "expected 3 s (0.50 s late, tolerance 0.3 s)" in timeline.intervals[1].message
    assert timeline.stopped == "succeeded"


def test_scaled_schedule_missing() -> None:
    timeline = build_timeline(
        _attempts((0, 500)), (0.6, 3.0, 18.0), now=T0 + 1.0, min_tolerance=0.2
    )
    assert timeline.intervals[0].verdict == "missing"
    assert "overdue by 0.40 s" in timeline.intervals[0].message


def test_no_attempts() -> None:
    timeline = build_timeline([], now=T0)
    assert (timeline.attempts, timeline.intervals, timeline.stopped) == ([], [], "waiting")


def test_to_dict_is_json_ready() -> None:
    timeline = build_timeline(_attempts((0, 500), (61, 200)), DEFAULT_SCHEDULE, now=T0 + 99)
    data = json.loads(json.dumps(timeline.to_dict()))
    assert data["stopped"] == "succeeded"
    assert data["attempts"][0] == {
        "id": 1,
        "received_at": T0,
        "status": 500,
        "dropped": False,
        "client_gave_up_after_ms": None,
        "answered_after_ms": None,
    }
    assert data["intervals"][0]["verdict"] == "ok"


# -- the sender's clock: waits from an attempt's start or its end ----------------------------


def test_waits_count_from_the_end_of_a_timed_out_attempt_or_from_its_start() -> None:
    # Attempt 1 hung until the sender gave up after 30 s; attempt 2 came 90 s after it began.
    attempts = [
        Attempt(1, T0, None, client_gave_up_after_ms=30_000),
        Attempt(2, T0 + 90, 200, answered_after_ms=4.0),
    ]
    from_end = build_timeline(attempts, now=T0 + 999, wait_from="end")
    assert from_end.intervals[0].verdict == "ok"
    assert from_end.intervals[0].actual == pytest.approx(60)
    assert "60.0 s after attempt 1 ended" in from_end.intervals[0].message
    from_start = build_timeline(attempts, now=T0 + 999, wait_from="start")
    assert from_start.intervals[0].verdict == "late"
    assert "90.0 s after attempt 1 started" in from_start.intervals[0].message
    # A sender that counted from the start, after the same 30 s timeout: 30 s early from the end.
    hurried = [attempts[0], Attempt(2, T0 + 60, 200)]
    assert build_timeline(hurried, now=T0 + 999, wait_from="end").intervals[0].verdict == "early"
    assert build_timeline(hurried, now=T0 + 999, wait_from="start").intervals[0].verdict == "ok"
    # The retry still to come is due 60 s after the end, not after the start.
    waiting = build_timeline(attempts[:1], now=T0 + 70, wait_from="end")
    assert waiting.stopped == "waiting" and "due in 20.0 s" in waiting.intervals[0].message


def test_our_own_deliveries_are_judged_by_the_schedule_they_kept() -> None:
    endpoint = Expected(DEFAULT_SCHEDULE, 0.1)
    assert endpoint.wait_from == DEFAULT_WAIT_FROM == "end"
    ours = endpoint.of(SenderSchedule(7, (60.0, 300.0, 1800.0), 0.01, "start"))
    source = "delivery #7 (time scale 0.01)"
    assert ours == Expected((0.6, 3.0, 18.0), 0.1, "start", source, SENDER_SLACK)
    assert endpoint.of(None) is endpoint
    attempts = _attempts((0, 500), (0.61, 200))
    row = {
        "event_key": "k",
        "event_type": None,
        "attempts": 2,
        "first_id": 1,
        "last_id": 2,
        "first_at": "",
        "last_at": "",
    }
    judged = timeline_report(row, attempts, ours)  # type: ignore[arg-type]
    assert [i["verdict"] for i in judged["intervals"]] == ["ok"]
    assert judged["schedule_from"] == "delivery #7 (time scale 0.01)"
    assert judged["wait_from"] == "start"
    minutes = timeline_report(row, attempts, endpoint)  # type: ignore[arg-type]
    assert "59.4 s early" in minutes["intervals"][0]["message"]


# -- the members read without parsing the whole body -----------------------------------------

_KEYS = st.sampled_from(["id", "object", "event", "type", "timestamp", "data", "messageId", "x"])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


def _reference(obj: dict[str, object]) -> tuple[object, ...]:
    """What the key and type read, as ``obj.get`` on the whole object parsed with json."""
    data = obj.get("data")
    message_id = data.get("messageId") if isinstance(data, dict) else None
    return (*(obj.get(k) for k in ("id", "object", "event", "type", "timestamp")), message_id)


def _read(body: bytes) -> tuple[object, ...] | None:
    found = _fields_of(body)
    if found is None:
        return None
    return (found.id, found.object_, found.event, found.type_, found.timestamp, found.message_id)


@settings(max_examples=300, deadline=None)
@given(obj=st.dictionaries(_KEYS, _JSON, max_size=6), ascii_only=st.booleans())
def test_the_identifying_members_are_those_of_the_whole_object(
    obj: dict[str, object], ascii_only: bool
) -> None:
    body = json.dumps(obj, ensure_ascii=ascii_only).encode()
    assert _read(body) == _reference(obj)
    assert _read(b"\xef\xbb\xbf \n" + body) == _reference(obj)


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "a", "event": "b", "data": 1, "data": {"messageId": "m", "messageId": 2}}',
        b'{"event": "e", "x": NaN, "data": {"messageId": "m"}}',  # json reads NaN
        b'{"event": "\\ud800", "timestamp": 1e400, "data": {"messageId": "\\udfff"}}',
        b'{"event": "e", "big": 123456789012345678901234567890, "timestamp": 1}',
        b'{"data": [{"messageId": "no"}], "event": "e", "timestamp": 5}',
        b'{"data": null, "id": "evt_1", "object": "event"}',
        b'{"event": "e"' + b', "n": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ],
)
def test_odd_bodies_read_as_the_whole_object_reads(body: bytes) -> None:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        assert _read(body) is None
        return
    assert _read(body) == _reference(obj)
