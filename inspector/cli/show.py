"""``webhook-inspector list`` and ``show``: read captures straight from the store, so they
work with or without a running server."""

from __future__ import annotations

import argparse
import base64
import re
import sys
from collections.abc import Mapping

from inspector.cli.options import CliError, Commands, add_command, add_data_dir, int_in, open_store
from inspector.cli.terminal import BLANK, answer, echo, print_table, safe
from inspector.display import describe_answer, human_size
from inspector.store import listing, requests


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, database=args.database)
    try:
        flt = listing.RequestFilter(endpoint=args.endpoint)
        items, _ = store.read_sync(listing.list_requests, flt, args.limit, None)
    finally:
        store.close()
    if not items:
        echo(
            "No requests captured yet."
            if not args.endpoint
            else f"No requests for {args.endpoint}."
        )
        return 0
    rows = [["ID", "RECEIVED (UTC)", "ENDPOINT", "METHOD", "PATH", "SIZE", "ANSWER", "SIGNATURE"]]
    for it in items:
        path = it["path"] + (f"?{it['query']}" if it["query"] else "")
        rows.append(
            [
                str(it["id"]),
                it["received_at"].replace("T", " ")[:23],
                it["endpoint"],
                it["method"],
                path if len(path) <= 48 else path[:45] + "...",
                human_size(it["size"]) + (" (truncated)" if it["truncated"] else ""),
                answer(it["response"]),
                it["signature"]["status"] if it["signature"] else BLANK,
            ]
        )
    print_table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, database=args.database)
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
    echo(f"#{found['id']}  {found['method']} {target}")
    echo(f"endpoint  {found['endpoint']}")
    echo(f"received  {found['received_at']}  from {found['client'] or '?'}")
    echo(f"size      {human_size(found['size'])}  {found['content_type'] or ''}".rstrip())
    if found["note"]:
        echo(f"note      {found['note']}")
    echo(f"answer    {answer_line(found['response'])}")
    if found["signature"]:
        for line in signature_lines(found["signature"]):
            echo(line)
    echo(f"event     {found['event_key'] or BLANK}  attempt {found['attempt']}")
    print()
    for name, value in found["headers"]:
        echo(f"{name}: {value}")
    print()
    print(render_body(body))
    return 0


def answer_line(response: Mapping[str, object]) -> str:
    """``200  in 3.2 ms``, or the page's words and why: ``dropped  (Closed the connection...)``."""
    found = describe_answer(response, blank=BLANK)
    status = response.get("status")
    if status is None or found.text != str(status):  # stalling, dropped, gave up, none
        return f"{found.text}  ({found.title})"
    ms = response.get("ms")
    timed = found.text + (f"  in {ms:.1f} ms" if ms is not None else "")
    return timed + (f"  ({found.title})" if response.get("delay_ms") else "")


def signature_lines(sig: Mapping[str, object]) -> list[str]:
    """``signature valid (github): ...``; parts the verdict lacks are left out, never "None"."""
    line = f"signature {sig.get('status') or BLANK}"
    if sig.get("scheme"):
        line += f" ({sig['scheme']})"
    if sig.get("reason"):
        line += f": {sig['reason']}"
    lines = [line]
    if sig.get("doctor") == "pending":
        lines.append("          doctor: not run yet (a running server runs it after answering)")
    elif sig.get("diagnosis"):
        lines.append(f"          doctor: {sig['diagnosis']}")
    return lines


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def render_body(body: bytes, limit: int = 64 * 1024) -> str:
    """Text if it is printable UTF-8, else a hex dump; cut at ``limit`` bytes. Tabs and line
    breaks stay; any other control a terminal could act on is shown escaped."""
    shown = body[:limit]
    more = f"\n... ({len(body) - limit} more bytes; use --raw)" if len(body) > limit else ""
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        return hexdump(shown) + more
    return (hexdump(shown) if _CONTROL.search(text) else safe(text, keep="\t\n\r\f")) + more


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<47}  {text}")
    return "\n".join(lines)


def register(sub: Commands) -> None:
    lst = add_command(
        sub,
        "list",
        "List captured requests, newest first (reads the store; no server needed).",
    )
    lst.add_argument("--endpoint", metavar="E", help="Only this endpoint's requests.")
    lst.add_argument(
        "--limit",
        type=int_in(1, 10_000),
        default=50,
        metavar="N",
        help="How many (default: %(default)s).",
    )
    add_data_dir(lst)
    lst.set_defaults(func=cmd_list)

    show = add_command(
        sub,
        "show",
        "Show one captured request: metadata, answer, verdict, headers, body.",
        "Show one captured request: metadata, the answer it got, the signature verdict, its "
        "headers in order and its body (text, or a hex dump if binary). Reads the store; no "
        "server needed.",
    )
    show.add_argument("id", type=int_in(1, 2**62), metavar="ID", help="The request's id.")
    show.add_argument("--raw", action="store_true", help="Write the exact body bytes to stdout.")
    add_data_dir(show)
    show.set_defaults(func=cmd_show)
