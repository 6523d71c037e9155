"""One line that says what a captured event is about: ``王小明 in C1234567890: 大家早安!``.

Computed at read time, from the stored body, for list pages and stream backfills — never on
the capture path, which stays body-parse-free beyond ``events.event_identity``. Only JSON
objects whose ``event_type`` was recognised at capture, and at most ``MAX_BYTES`` of them, are
summarised, so a list page costs one bounded query and a few small ``json.loads``.

The text is display-only and untrusted: control and bidirectional-override characters are
dropped and it is cut to ``MAX_CHARS``. Nothing here raises on odd input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from inspector.display import human_size

MAX_BYTES = 64 * 1024
MAX_CHARS = 160
CONTENT_CHARS = 100

# C0/C1 controls and the bidi controls that could reorder what the page or a terminal shows,
# and lone surrogates (JSON's "\ud800"), which no UTF-8 response can carry.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SPACE = re.compile(r"\s+")


def clean(text: str, limit: int = MAX_CHARS) -> str:
    """One line of inert display text, at most ``limit`` characters (with an ellipsis)."""
    text = _SPACE.sub(" ", _UNSAFE.sub(" ", text)).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _who(obj: object) -> str | None:
    if not isinstance(obj, dict):
        return None
    return _text(obj.get("displayName")) or _text(obj.get("userId"))


def _platform(event: str, data: Mapping[str, object]) -> str | None:
    """The platform's four events (see the seed README)."""
    channel = _text(data.get("channelId"))
    where = f" in {channel}" if channel else ""
    if event == "message.received":
        who = _who(data.get("sender")) or "someone"
        kind = _text(data.get("type"))
        content = _text(data.get("content"))
        if content is not None and kind in (None, "text"):
            return f"{who}{where}: {clean(content, CONTENT_CHARS)}"
        return f"{who}{where}: [{kind or 'message'}]"
    if event in ("member.joined", "member.left"):
        who = _who(data.get("member")) or "someone"
        verb = "joined" if event == "member.joined" else "left"
        return f"{who} {verb} {channel}" if channel else f"{who} {verb}"
    if event == "file.uploaded":
        who = _who(data.get("sender")) or "someone"
        kind = _text(data.get("fileType")) or "a file"
        size = data.get("fileSize")
        sized = ""
        if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
            sized = f" ({human_size(size)})"
        return f"{who} uploaded {kind}{sized}{where}"
    return None


def _scalars(obj: Mapping[str, object], limit: int = 3) -> str | None:
    parts = []
    for key, value in obj.items():
        text = _text(value)
        if text is not None and isinstance(key, str):
            parts.append(f"{key}: {clean(text, 40)}")
            if len(parts) == limit:
                break
    return " · ".join(parts) or None


def summarize(event_type: str | None, body: bytes) -> str | None:
    """A one-line summary of a JSON event body, or None when there is nothing to say."""
    if event_type is None or not body or len(body) > MAX_BYTES:
        return None
    try:
        obj = json.loads(body.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    data = obj.get("data")
    found: str | None = None
    if isinstance(data, dict):
        found = _platform(event_type, data)
        if found is None:
            # Stripe-like envelopes keep the resource in data.object.
            inner = data.get("object")
            found = _scalars(inner if isinstance(inner, dict) else data)
    if found is None:
        rest = {k: v for k, v in obj.items() if k not in ("event", "type", "timestamp")}
        found = _scalars(rest)
    return clean(found) if found else None
