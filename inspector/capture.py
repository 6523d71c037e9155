"""Turn an ASGI request into a ``CapturedRequest``: raw bytes, headers as ordered pairs.

Nothing here parses or re-serializes a body. Header names and values are kept as the
server delivered them (latin-1 text of the raw bytes, so they round-trip exactly; the ASGI
server lower-cases names), in order, duplicates kept.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.types import Receive, Scope

from inspector.errors import BadRequest

ENDPOINT_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
CAPTURE_PREFIX = "/h/"

# What the connection layer (``connections.py``) tells the request it serves, through the ASGI
# scope, when it happens (never on the fast path): the body made no progress for this many
# seconds, so it answered 408 and closed the connection; the client went away (closed or
# half-closed) before the answer was complete.
BODY_STALLED = "inspector.body_stalled_after"
PEER_GONE = "inspector.peer_gone"


@dataclass(slots=True)
class CapturedRequest:
    endpoint: str
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client: str | None
    received_at: str
    received_ts: float
    size: int
    content_type: str | None
    truncated: bool = False
    oversize: bool = False  # over --max-body: answered 413, body not kept
    busy: bool = False  # over the memory budget for bodies: answered 503, body not read
    held: int = 0  # bytes of the budget this body holds until it is stored
    stalled_after: float | None = None  # the body made no progress this long: answered 408
    note: str | None = None
    event_key: str | None = None
    event_type: str | None = None
    signature: dict[str, Any] | None = None
    tls_version: str | None = None  # "TLSv1.3" for a capture that came over TLS; None: HTTP
    tls_server_name: str | None = None  # the SNI name its client asked for


# The headers of the answer to nearly every capture (200, "OK"): one list, shared by those
# answers, so that the receiver sends it and the store records it prepared once (identity
# tells them apart). Shared: never mutate.
OK_HEADERS: list[tuple[str, str]] = [("content-type", "text/plain; charset=utf-8")]


@dataclass(slots=True)
class ResponseRecord:
    """The answer the inspector gave (or will give, while ``in_progress``)."""

    status: int | None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    ms: float | None = None
    delay_ms: float | None = None
    dropped: bool = False
    in_progress: bool = False


_second: list[Any] = [None, ""]  # the last whole second formatted: strftime is the costly part


def utc_timestamp(ts: float) -> str:
    """ISO 8601, UTC, microseconds: ``2026-11-28T07:30:00.123456Z``."""
    whole = int(ts // 1)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    if _second[0] != whole:
        _second[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = whole
    return f"{_second[1]}.{micros:06d}Z"


# Bodies up to this size are read without the budget: uvicorn buffers as much per connection
# anyway, so the fast path (most webhooks are a few KiB) does no accounting.
SMALL_BODY = 64 * 1024


class BodyBudget:
    """Bytes of request bodies being received and stored, all requests together.

    A body over ``SMALL_BODY`` takes its share before it is read (its ``Content-Length``; a
    chunked body as it arrives) and gives it back once stored; one that finds the budget
    spent is not read and gets 503 with ``Retry-After``, which senders retry.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> bool:
        if self.used + n > self.limit:
            return False
        self.used += n
        return True

    def give(self, n: int) -> None:
        self.used -= n


def endpoint_from_path(path: str) -> str:
    """The endpoint name of a capture path ``/h/{endpoint}[/...]``; ``BadRequest`` if invalid."""
    name = path[len(CAPTURE_PREFIX) :].split("/", 1)[0]
    if not ENDPOINT_RE.fullmatch(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise BadRequest(
            f"Invalid endpoint name {shown!r}: use 1 to 64 characters from A-Z a-z 0-9 . _ -, "
            "as in /h/my-endpoint or /h/my-endpoint/any/sub/path.",
            error="invalid_endpoint",
        )
    return name


def text_pairs(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Raw header pairs as text that round-trips exactly (latin-1), in order."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


def header_value(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """First value of a header (``name`` lower-case)."""
    for key, value in headers:
        if key == name or key.lower() == name:
            return value
    return None


async def read_request(
    scope: Scope, receive: Receive, endpoint: str, max_body: int, budget: BodyBudget | None = None
) -> CapturedRequest:
    """Read the whole request. Bodies over ``max_body`` are not kept: the record says
    ``truncated`` and why, and holds no body (memory stays bounded by ``max_body``). A large
    body that does not fit the ``budget`` is not read (``busy``); one that does holds its
    share (``held``) until the caller gives it back."""
    received_ts = time.time()
    # The pairs as text, and the two headers the capture needs (first of each).
    headers = [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
    ]
    content_type = declared = None
    for name, value in headers:
        if name == "content-type":
            content_type = value if content_type is None else content_type
        elif name == "content-length":
            declared = value if declared is None else declared
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
    client = scope.get("client")
    # Positional: a dataclass takes keywords at twice the cost, on every capture.
    rec = CapturedRequest(
        endpoint,
        scope["method"],
        raw_path.decode("latin-1"),  # path
        scope["query_string"].decode("latin-1"),  # query
        headers,
        b"",  # body, below
        f"{client[0]}:{client[1]}" if client else None,
        utc_timestamp(received_ts),  # received_at
        received_ts,
        0,  # size, below
        content_type,
    )
    if declared is not None and declared.isdigit():
        length = int(declared)
        if length > max_body:
            rec.size = length
            rec.truncated = rec.oversize = True
            rec.note = (
                f"Body of {rec.size} bytes (Content-Length) exceeds the limit of {max_body} "
                "bytes; not read."
            )
            return rec
        if budget is not None and length > SMALL_BODY:
            if not budget.take(length):
                rec.size = length
                _busy(rec, budget, "not read")
                return rec
            rec.held = length
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            rec.truncated = True
            stalled = rec.stalled_after = scope.get(BODY_STALLED)
            if stalled is not None:
                rec.note = (
                    f"Body incomplete: the client sent nothing for {stalled:g} s after {size} "
                    "bytes; answered 408 and closed the connection."
                )
            else:
                rec.note = f"The client disconnected after sending {size} bytes of the body."
            break
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_body:
                rec.oversize = rec.truncated = True
                rec.note = (
                    f"Body exceeded the limit of {max_body} bytes while streaming; "
                    f"stopped reading after {size} bytes."
                )
                break
            if budget is not None and size > rec.held and size > SMALL_BODY:
                # A chunked body (no Content-Length) takes its share as it grows.
                if not budget.take(size - rec.held):
                    _busy(rec, budget, f"stopped reading after {size} bytes")
                    break
                rec.held = size
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    rec.size = size
    if not (rec.oversize or rec.busy):  # a disconnect keeps what arrived; a refusal nothing
        rec.body = b"".join(chunks)
    return rec


def _busy(rec: CapturedRequest, budget: BodyBudget, what: str) -> None:
    rec.truncated = rec.busy = True
    rec.note = (
        f"Bodies being received already hold the memory budget ({budget.limit} bytes): "
        f"{what}, answered 503 with Retry-After."
    )
