"""Reading captures from a terminal: ``list``, ``show`` (straight from the store, so they work
with or without a running server)."""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path
from typing import Any

from inspector.cli.options import (
    CliError,
    add_data_dir,
    human_size,
    int_in,
    open_store,
    print_table,
)
from inspector.store import requests


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    try:
        flt = requests.RequestFilter(endpoint=args.endpoint)
        items, _ = store.read_sync(requests.list_requests, flt, args.limit, None)
    finally:
        store.close()
    if not items:
        print(
            "No requests captured yet."
            if not args.endpoint
            else f"No requests for {args.endpoint}."
        )
        return 0
    rows = [["ID", "RECEIVED (UTC)", "ENDPOINT", "METHOD", "PATH", "SIZE", "ANSWER", "SIGNATURE"]]
    for it in items:
        answer: int | str | None = it["response"]["status"]
        if it["response"]["in_progress"]:
            answer = "stalling"
        elif it["response"]["dropped"]:
            answer = "dropped"
        sig = it["signature"]["status"] if it["signature"] else "-"
        path = it["path"] + (f"?{it['query']}" if it["query"] else "")
        rows.append(
            [
                str(it["id"]),
                it["received_at"].replace("T", " ")[:23],
                it["endpoint"],
                it["method"],
                path if len(path) <= 48 else path[:45] + "...",
                human_size(it["size"]) + (" (truncated)" if it["truncated"] else ""),
                str(answer if answer is not None else "-"),
                sig,
            ]
        )
    print_table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    try:
        found = store.read_sync(requests.get_request, args.id)
    finally:
        store.close()
    if found is None:
        raise CliError(f"No request {args.id}.")
    body = base64.b64decode(found["body_base64"])
    if args.raw:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    target = found["path"] + (f"?{found['query']}" if found["query"] else "")
    print(f"#{found['id']}  {found['method']} {target}")
    print(f"endpoint  {found['endpoint']}")
    print(f"received  {found['received_at']}  from {found['client'] or '?'}")
    print(f"size      {human_size(found['size'])}  {found['content_type'] or ''}")
    if found["note"]:
        print(f"note      {found['note']}")
    response = found["response"]
    print(
        f"answer    {response['status'] if response['status'] is not None else '-'}"
        f"  in {response['ms'] or 0:.1f} ms"
    )
    if found["signature"]:
        sig = found["signature"]
        print(f"signature {sig['status']} ({sig['scheme']}): {sig['reason']}")
        if sig.get("diagnosis"):
            print(f"          doctor: {sig['diagnosis']}")
    print(f"event     {found['event_key']}  attempt {found['attempt']}")
    print()
    for name, value in found["headers"]:
        print(f"{name}: {value}")
    print()
    print(render_body(body))
    return 0


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def render_body(body: bytes, limit: int = 64 * 1024) -> str:
    """Text if it is printable UTF-8, else a hex dump; cut at ``limit`` bytes."""
    shown = body[:limit]
    more = f"\n... ({len(body) - limit} more bytes; use --raw)" if len(body) > limit else ""
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        return hexdump(shown) + more
    return (hexdump(shown) if _CONTROL.search(text) else text) + more


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<47}  {text}")
    return "\n".join(lines)


def register(sub: Any) -> None:
    lst = sub.add_parser("list", help="List captured requests, newest first (no server needed).")
    lst.add_argument("--endpoint", help="Only this endpoint.")
    lst.add_argument(
        "--limit", type=int_in(1, 10_000), default=50, help="How many (default: %(default)s)."
    )
    add_data_dir(lst)
    lst.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="Show one captured request (no server needed).")
    show.add_argument("id", type=int_in(1, 2**62))
    show.add_argument("--raw", action="store_true", help="Write the exact body bytes to stdout.")
    add_data_dir(show)
    show.set_defaults(func=cmd_show)
