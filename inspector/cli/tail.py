"""``webhook-inspector tail``: print captures live from a running server's stream.

One line per request — time, id, endpoint, method, path, size, answer, signature — read from
``GET /api/stream``. If the server goes away (restart, crash) ``tail`` keeps retrying and
resumes with ``Last-Event-ID``, so the requests captured meanwhile are printed too, once
each. Ctrl-C exits 0. Captured text is escaped before it reaches the terminal: a path or
header cannot move the cursor or recolour the screen.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

import httpx

from inspector.cli.options import CliError, Commands, add_command, add_token, int_in
from inspector.cli.terminal import BLANK, answer, safe, stop_on_ctrl_c
from inspector.client import Client, ServerEvent, parse_sse
from inspector.display import human_size
from inspector.errors import InspectorError
from inspector.store.requests import RequestItem

DEFAULT_URL = "http://127.0.0.1:8765"
MAX_BACKOFF = 5.0
__all__ = ["describe", "follow", "parse_sse", "register", "request_line"]


def clock(received_at: str) -> str:
    """``2026-11-28T07:30:00.123456Z`` -> ``08:30:00.123`` in local time."""
    try:
        when = datetime.strptime(received_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return safe(received_at)[:12]
    return when.astimezone().strftime("%H:%M:%S.%f")[:12]


def signature(item: RequestItem) -> str:
    sig = item.get("signature")
    return safe(str(sig.get("status"))) if isinstance(sig, dict) else BLANK


def request_line(item: RequestItem) -> str:
    path = item["path"] + (f"?{item['query']}" if item.get("query") else "")
    path = safe(path)
    if len(path) > 60:
        path = path[:59] + "…"
    size = human_size(item["size"]) + ("+" if item.get("truncated") else "")
    parts = [
        clock(item["received_at"]),
        f"#{item['id']:<6}",
        f"{safe(item['endpoint']):<16}",
        f"{safe(item['method']):<7}",
        f"{path:<40}",
        f"{size:>9}",
        f"{answer(item['response']):<7}",
        signature(item),
    ]
    if item.get("attempt", 1) > 1:
        parts.append(f"attempt {item['attempt']}")
    event_type = item.get("event_type")
    if event_type:
        parts.append(safe(event_type))
    return "  ".join(parts)


def describe(event: ServerEvent) -> str | None:
    """The line to print for an event, or None (ready, unknown kinds)."""
    try:
        data = json.loads(event.data)
    except ValueError:
        return None
    if event.event == "request":
        return request_line(data)
    if event.event == "update":
        return f"{'':12}  #{data['id']:<6}  now: {answer(data['response'])}  {signature(data)}"
    if event.event == "deleted":
        return f"{'':12}  #{data['id']:<6}  deleted"
    if event.event == "cleared":
        what = safe(data["endpoint"]) if data.get("endpoint") else "every endpoint"
        return f"{'':12}  cleared {what}"
    return None


def follow(
    url: str,
    endpoint: str | None,
    after: int | None,
    out: TextIO,
    err: TextIO,
    *,
    token: str | None = None,
    max_backoff: float = MAX_BACKOFF,
) -> None:
    """Print the stream for ever, reconnecting from the last request id seen (``token``: the
    server's, if it requires one)."""
    cursor = after
    backoff = 0.25
    connected_once = False
    down_since: float | None = None
    params = {"endpoint": endpoint} if endpoint else {}
    with Client(url, token=token) as client:
        while True:
            try:
                events = client.stream("/api/stream", last_event_id=cursor, **params)
                try:
                    first = next(events, None)
                except InspectorError as exc:
                    raise CliError(f"{url} answered {exc.status}: {exc.detail}") from None
                if down_since is not None:
                    print(f"tail: reconnected to {url}", file=err, flush=True)
                elif not connected_once:
                    what = f"endpoint {endpoint}" if endpoint else "every endpoint"
                    print(f"tail: following {what} at {url} (Ctrl-C to stop)", file=err)
                    err.flush()
                connected_once, down_since, backoff = True, None, 0.25
                for event in itertools.chain([first] if first else [], events):
                    if event.id is not None and event.id.isdigit():
                        cursor = int(event.id)
                    if event.event == "resync":
                        cursor = _resync(event, err)
                        backoff = 0.0
                        break
                    line = describe(event)
                    if line is not None:
                        print(line, file=out, flush=True)
                else:  # a clean end: the server is shutting down
                    down_since = time.monotonic()
                    print(f"tail: {url} closed the stream; reconnecting…", file=err)
                    err.flush()
                events.close()
            except httpx.TransportError as exc:
                if down_since is None:
                    down_since = time.monotonic()
                    verb = "lost" if connected_once else "cannot reach"
                    print(f"tail: {verb} {url} ({exc}); retrying…", file=err, flush=True)
            time.sleep(backoff)
            backoff = min(max(backoff * 2, 0.25), max_backoff)


def _resync(event: ServerEvent, err: TextIO) -> int | None:
    data = json.loads(event.data)
    if data.get("reason") == "behind":
        print("tail: fell behind; catching up from the store", file=err, flush=True)
        after = data.get("after")
        return after if isinstance(after, int) else None
    print("tail: the server has a different store; following from its newest", file=err)
    return None


def cmd_tail(args: argparse.Namespace) -> int:
    stop_on_ctrl_c()
    try:
        follow(args.url, args.endpoint, args.after, sys.stdout, sys.stderr, token=args.token)
    except KeyboardInterrupt:
        return 0
    return 0


def register(sub: Commands) -> None:
    tail = add_command(
        sub,
        "tail",
        "Print captures live from a running inspector, one line each (Ctrl-C stops).",
        "Follow a running inspector's stream and print one line per capture: time, id, "
        "endpoint, method, path, size, answer, signature. Survives server restarts without "
        "missing or repeating a request; Ctrl-C (or SIGTERM) exits 0.",
    )
    tail.add_argument("--endpoint", metavar="E", help="Only this endpoint's requests.")
    tail.add_argument(
        "--url",
        default=DEFAULT_URL,
        metavar="URL",
        help="The inspector's address (default: %(default)s).",
    )
    tail.add_argument(
        "--after",
        type=int_in(0, 2**62),
        metavar="ID",
        help="First print every stored request after this id, then follow.",
    )
    add_token(tail)
    tail.set_defaults(func=cmd_tail)
