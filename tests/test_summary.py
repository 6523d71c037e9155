"""Event summaries (read time) and the list's text search, over a real store (no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from inspector import timeline
from inspector.store import Store, listing
from inspector.summary import MAX_BYTES, clean, summarize
from tests.conftest import answering, captured_request, store_request


def platform(event: str, data: dict[str, Any]) -> bytes:
    payload = {"event": event, "timestamp": "2025-01-15T08:30:00Z", "data": data}
    return json.dumps(payload, ensure_ascii=False).encode()


WANG = {"userId": "U1234567890", "displayName": "王小明"}
LI = {"userId": "U0987654321", "displayName": "李小華"}


@pytest.mark.parametrize(
    ("event", "data", "expected"),
    [
        (
            "message.received",
            {
                "channelId": "C1234567890",
                "messageId": "msg_001",
                "sender": WANG,
                "type": "text",
                "content": "大家早安!",
            },
            "王小明 in C1234567890: 大家早安!",
        ),
        ("member.joined", {"channelId": "C1234567890", "member": LI}, "李小華 joined C1234567890"),
        ("member.left", {"channelId": "C1234567890", "member": LI}, "李小華 left C1234567890"),
        (
            "file.uploaded",
            {
                "channelId": "C1234567890",
                "messageId": "msg_002",
                "sender": WANG,
                "fileType": "image",
                "fileSize": 102400,
            },
            "王小明 uploaded image (100 KiB) in C1234567890",
        ),
        (
            "message.received",
            {"channelId": "C1", "sender": {"userId": "U1"}, "type": "sticker"},
            "U1 in C1: [sticker]",
        ),
        ("member.joined", {}, "someone joined"),
    ],
)
def test_the_platforms_four_events(event: str, data: dict[str, Any], expected: str) -> None:
    assert summarize(event, platform(event, data)) == expected


def test_other_json_events_show_a_few_fields() -> None:
    stripe = {
        "id": "evt_1",
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "amount_paid": 2000, "currency": "usd", "lines": {}}},
    }
    assert (
        summarize("invoice.paid", json.dumps(stripe).encode())
        == "id: in_1 · amount_paid: 2000 · currency: usd"
    )
    flat = {"type": "push", "ref": "refs/heads/main", "size": 3, "deep": {"x": 1}}
    assert summarize("push", json.dumps(flat).encode()) == "ref: refs/heads/main · size: 3"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[1, 2]", b'{"event": 1', b"\xff\xfe{}", b"[" * 100_000, b'{"data": []}'],
)
def test_odd_bodies_have_no_summary_and_never_raise(body: bytes) -> None:
    assert summarize("x", body) is None


def test_only_recognised_events_of_bounded_size_are_summarised() -> None:
    body = platform("member.joined", {"channelId": "C1", "member": LI})
    assert summarize(None, body) is None
    padded = json.dumps(
        {
            "event": "member.joined",
            "data": {"channelId": "C1", "member": LI},
            "pad": "x" * MAX_BYTES,
        }
    ).encode()
    assert summarize("member.joined", padded) is None


def test_summaries_are_one_short_line_of_inert_text() -> None:
    content = "line one\nline two\x1b[2J\u202eevil\t" + "字" * 300
    text = summarize(
        "message.received",
        platform("message.received", {"channelId": "C1", "sender": WANG, "content": content}),
    )
    assert text is not None
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert text.startswith("王小明 in C1: line one line two [2J evil")
    assert text.endswith("…") and len(text) <= 160
    assert clean("a" * 10, 5) == "aaaa…"


# -- over a store ------------------------------------------------------------------------------


def add(
    store: Store,
    body: bytes,
    *,
    path: str = "/h/e",
    headers: list[tuple[str, str]] | None = None,
    truncated: bool = False,
) -> int:
    headers = headers or [("content-type", "application/json")]
    key, event_type = timeline.event_identity(headers, body)
    rec = captured_request(
        "e",
        body,
        path=path,
        headers=headers,
        client=None,
        content_type="application/json",
        truncated=truncated,
        event_key=key,
        event_type=event_type,
    )
    return store_request(store, rec, answering(200)).id


def listed(store: Store, **flt: Any) -> list[dict[str, Any]]:
    items, _ = store.read_sync(listing.list_requests, listing.RequestFilter(**flt), 100, None)
    return items


def test_list_items_carry_summaries_and_the_backlog_does_too(store: Store) -> None:
    joined = add(store, platform("member.joined", {"channelId": "C1", "member": LI}))
    plain = add(store, b"hello")
    items = {it["id"]: it for it in listed(store)}
    assert items[joined]["summary"] == "李小華 joined C1"
    assert items[plain]["summary"] is None
    backlog = store.read_sync(listing.items_after, 0, None, 10)
    assert [it["summary"] for it in backlog] == ["李小華 joined C1", None]


def test_search_covers_the_whole_store_case_insensitively(store: Store) -> None:
    needle = add(store, b'{"note": "The Needle is here"}')
    for n in range(120):
        add(store, f"filler {n}".encode())
    binary = add(store, b"\x00\x01\xffBINARY-Marker\x00")
    header = add(store, b"x", headers=[("x-name", "café Señor")])
    pathy = add(store, b"x", path="/h/e/Orders/42")
    assert [it["id"] for it in listed(store, q="needle")] == [needle]  # not among the newest
    assert [it["id"] for it in listed(store, q="NEEDLE IS")] == [needle]
    assert [it["id"] for it in listed(store, q="binary-marker")] == [binary]
    assert [it["id"] for it in listed(store, q="café")] == [header]  # JSON-escaped in storage
    assert [it["id"] for it in listed(store, q="CAFÉ")] == []  # ASCII letters fold, others not
    assert [it["id"] for it in listed(store, q="orders/42")] == [pathy]
    underscore = add(store, b"x", headers=[("x-under", "a_b")])
    add(store, b"x", headers=[("x-under", "axb")])
    assert [it["id"] for it in listed(store, q="a_b")] == [underscore]  # LIKE wildcards escaped
    assert listed(store, q="100%") == []
    assert len(listed(store, q="filler 1")) == 31  # 1, 10-19, 100-119


def test_search_matches_event_types_and_keys(store: Store) -> None:
    event = add(
        store, platform("file.uploaded", {"channelId": "C1", "messageId": "msg_9", "sender": WANG})
    )
    add(store, b"other")
    assert [it["id"] for it in listed(store, q="FILE.UPLOADED")] == [event]
    assert [it["id"] for it in listed(store, q="msg_9")] == [event]
