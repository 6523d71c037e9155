"""The platform's event catalog: realistic sample bodies, dotted-path overrides, the bytes sent.

    body = catalog.build("message.received", {"data.content": "hello"})

Every sample uses the platform's envelope ``{"event", "timestamp", "data"}`` with the fields
its documentation lists, ``timestamp`` = now in UTC (``2025-01-15T08:30:00Z``) and a fresh
``messageId`` (``msg_<random>``) where the event has one, so each sample is a new event for a
receiver that deduplicates on ``{event}-{data.messageId || timestamp}``.

Generated bodies are serialized the way the platform's Node.js would (``JSON.stringify``):
compact, keys in insertion order, UTF-8 with non-ASCII text kept. Those bytes are what gets
signed and sent; a custom body (a file, stdin, the API's ``body``) is sent byte-exact and
never passes through here.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from inspector.errors import BadRequest
from inspector.jsontypes import JSONObject, JSONValue

EVENT_TYPES: tuple[str, ...] = (
    "message.received",
    "member.joined",
    "member.left",
    "file.uploaded",
)

CHANNEL_ID = "C1234567890"
SENDER = {"userId": "U1234567890", "displayName": "王小明"}
MEMBER = {"userId": "U0987654321", "displayName": "李小華"}

DESCRIPTIONS: dict[str, str] = {
    "message.received": "a new message was sent",
    "member.joined": "a member joined the group",
    "member.left": "a member left the group",
    "file.uploaded": "a file was uploaded",
}


# ``--set PATH=VALUE`` pairs, or the API's ``{"data.content": "hello"}``.
Overrides = Iterable[tuple[str, JSONValue]] | Mapping[str, JSONValue]


def timestamp(now: datetime | None = None) -> str:
    """The platform's timestamp format: UTC, whole seconds, ``Z`` (``2025-01-15T08:30:00Z``)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_id() -> str:
    return "msg_" + secrets.token_hex(6)


def check_event(event: object) -> str:
    """``event`` if it is one of the four event types; ``BadRequest`` listing them otherwise."""
    if event is None or event == "":
        raise BadRequest(
            f"An event type is required: one of {', '.join(EVENT_TYPES)}.", error="unknown_event"
        )
    if event not in EVENT_TYPES:
        shown = repr(event)[:60] if isinstance(event, str) else type(event).__name__
        raise BadRequest(
            f"Unknown event type {shown}; the platform sends: {', '.join(EVENT_TYPES)}.",
            error="unknown_event",
        )
    return str(event)


def sample(event: str, *, now: datetime | None = None) -> JSONObject:
    """A fresh sample body for ``event`` (a dict in the platform's key order)."""
    event = check_event(event)
    data: JSONObject
    if event == "message.received":
        data = {
            "channelId": CHANNEL_ID,
            "messageId": message_id(),
            "sender": dict(SENDER),
            "type": "text",
            "content": "大家早安!",
        }
    elif event == "file.uploaded":
        data = {
            "channelId": CHANNEL_ID,
            "messageId": message_id(),
            "sender": dict(SENDER),
            "fileType": "image",
            "fileSize": 102400,
        }
    else:  # member.joined, member.left
        data = {"channelId": CHANNEL_ID, "member": dict(MEMBER)}
    return {"event": event, "timestamp": timestamp(now), "data": data}


def render(body: JSONValue) -> bytes:
    """Serialize like ``JSON.stringify``: compact, non-ASCII kept, UTF-8."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- overrides -------------------------------------------------------------------------------


def parse_value(text: str) -> JSONValue:
    """A ``--set`` value: JSON if it parses (``42``, ``true``, ``{"a": 1}``), else the text."""
    try:
        value: JSONValue = json.loads(text)
    except ValueError:
        return text
    return value


def parse_set(text: str) -> tuple[str, JSONValue]:
    """``"data.content=hello"`` -> ``("data.content", "hello")``."""
    path, sep, value = text.partition("=")
    if not sep or not path.strip():
        raise BadRequest(f"--set needs PATH=VALUE (as in data.content=hello), got {text!r}.")
    return path.strip(), parse_value(value)


def apply_overrides(
    body: Mapping[str, JSONValue], overrides: Iterable[tuple[str, JSONValue]]
) -> JSONObject:
    """A copy of ``body`` with each dotted ``path`` set to its value.

    Missing objects along a path are created; walking into something that is not an object
    (``data.content.x`` when ``content`` is a string) is a ``BadRequest``.
    """
    result = copy.deepcopy(dict(body))
    for path, value in overrides:
        if not isinstance(path, str) or not path:
            raise BadRequest("An override path must be a non-empty string such as data.content.")
        keys = path.split(".")
        if any(not key for key in keys):
            raise BadRequest(f"Override path {path!r} has an empty part.")
        node: JSONObject = result
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise BadRequest(
                    f"Cannot set {path!r}: {where} is {type(child).__name__}, not an object."
                )
            node = child
        node[keys[-1]] = value
    return result


def build(
    event: str,
    overrides: Overrides = (),
    *,
    now: datetime | None = None,
) -> bytes:
    """A sample body for ``event`` with ``overrides`` applied, as the bytes to sign and send."""
    pairs = overrides.items() if isinstance(overrides, Mapping) else overrides
    return render(apply_overrides(sample(event, now=now), pairs))
