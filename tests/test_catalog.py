"""The event catalog: the platform's envelope and fields, overrides, the exact bytes sent."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from inspector import catalog, timeline
from inspector.errors import BadRequest

FIELDS = {
    "message.received": {"channelId", "messageId", "sender", "type", "content"},
    "member.joined": {"channelId", "member"},
    "member.left": {"channelId", "member"},
    "file.uploaded": {"channelId", "messageId", "sender", "fileType", "fileSize"},
}


@pytest.mark.parametrize("event", catalog.EVENT_TYPES)
def test_samples_use_the_platform_envelope_and_documented_fields(event: str) -> None:
    body = catalog.sample(event)
    assert list(body) == ["event", "timestamp", "data"]
    assert body["event"] == event
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    assert set(body["data"]) == FIELDS[event]
    assert body["data"]["channelId"] == "C1234567890"
    person = body["data"].get("sender") or body["data"]["member"]
    assert set(person) == {"userId", "displayName"}
    assert person["displayName"] in ("王小明", "李小華")


def test_the_four_event_types_are_the_platforms() -> None:
    assert set(catalog.EVENT_TYPES) == set(FIELDS)


def test_timestamp_is_now_in_utc_whole_seconds() -> None:
    fixed = datetime(2025, 1, 15, 8, 30, 0, 123456, tzinfo=UTC)
    assert catalog.sample("member.joined", now=fixed)["timestamp"] == "2025-01-15T08:30:00Z"
    stamp = datetime.strptime(catalog.sample("member.left")["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(stamp.replace(tzinfo=UTC).timestamp() - datetime.now(UTC).timestamp()) < 5


def test_message_ids_are_fresh_so_each_sample_is_a_new_event() -> None:
    ids = {catalog.sample("message.received")["data"]["messageId"] for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"msg_[0-9a-f]{12}", i) for i in ids)
    body = catalog.build("file.uploaded")
    key = timeline.event_key([], body)
    assert key == f"file.uploaded-{json.loads(body)['data']['messageId']}"


def test_render_is_compact_utf8_with_non_ascii_kept_like_json_stringify() -> None:
    raw = catalog.build("message.received", {"data.content": "早安 / <b>"})
    text = raw.decode("utf-8")
    assert "王小明" in text and "早安 / <b>" in text
    assert "\\u" not in text and "\\/" not in text
    assert ": " not in text and ", " not in text
    # What a receiver that re-serializes (JSON.stringify(req.body)) computes is the same bytes.
    assert catalog.render(json.loads(raw)) == raw


def test_overrides_use_dotted_paths_and_parse_json_values() -> None:
    pairs = [
        catalog.parse_set("data.content=hello"),
        catalog.parse_set("data.fileSize=42"),
        catalog.parse_set("data.sender.displayName=Ada"),
        catalog.parse_set('data.extra={"a": [1, true]}'),
        catalog.parse_set("data.flag=true"),
        catalog.parse_set('data.quoted="42"'),
        catalog.parse_set("data.new.deep=x=y"),
        catalog.parse_set("data.empty="),
    ]
    body = json.loads(catalog.build("message.received", pairs))
    data = body["data"]
    assert data["content"] == "hello"
    assert data["fileSize"] == 42
    assert data["sender"] == {"userId": "U1234567890", "displayName": "Ada"}
    assert data["extra"] == {"a": [1, True]}
    assert data["flag"] is True
    assert data["quoted"] == "42"
    assert data["new"] == {"deep": "x=y"}
    assert data["empty"] == ""
    assert body["event"] == "message.received"


def test_overrides_do_not_touch_the_catalog() -> None:
    body = catalog.sample("member.joined")
    changed = catalog.apply_overrides(body, [("data.member.displayName", "X")])
    assert body["data"]["member"]["displayName"] == "李小華"
    assert changed["data"]["member"]["displayName"] == "X"
    assert catalog.MEMBER["displayName"] == "李小華"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data.content", "PATH=VALUE"),
        ("=x", "PATH=VALUE"),
    ],
)
def test_bad_set_syntax_is_explained(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        catalog.parse_set(text)


def test_overriding_inside_a_non_object_is_refused() -> None:
    with pytest.raises(BadRequest, match=r"data\.content is str, not an object"):
        catalog.build("message.received", [("data.content.x", 1)])
    with pytest.raises(BadRequest, match="empty part"):
        catalog.build("message.received", [("data..x", 1)])


def test_unknown_event_lists_the_four() -> None:
    with pytest.raises(BadRequest) as caught:
        catalog.sample("message.deleted")
    detail = str(caught.value.detail)
    assert all(event in detail for event in catalog.EVENT_TYPES)
    with pytest.raises(BadRequest, match="required"):
        catalog.check_event(None)
