"""``webhook-inspector diff A [B]``: what differs between two captures (``inspector.diff``),
read straight from the store, so it works with or without a running server."""

from __future__ import annotations

import argparse
import json

from inspector import diff
from inspector.cli.options import CliError, Commands, add_command, add_data_dir, int_in, open_store
from inspector.cli.terminal import echo
from inspector.display import human_size
from inspector.store import Store, requests

MARKS = {diff.ADDED: "+", diff.REMOVED: "-", diff.CHANGED: "~", diff.MOVED: "order"}


def cmd_diff(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, database=args.database)
    try:
        # Alone, A is the later of the two: its partner came before it.
        a_id, b_id = (args.a, args.b) if args.b is not None else (_partner(store, args.a), args.a)
        a, b = _side(store, a_id), _side(store, b_id)
    finally:
        store.close()
    result = diff.diff(a, b, ignore_key_order=args.ignore_key_order)
    if args.json:
        print(json.dumps(result, indent=2))  # ensure_ascii: inert on any terminal
    else:
        for line in render(result):
            echo(line)
    return 0


def _side(store: Store, request_id: int) -> diff.Side:
    found = store.read_sync(requests.get_request, request_id)
    if found is None:
        raise CliError(f"No request {request_id}.")
    return diff.captured(found)


def _partner(store: Store, request_id: int) -> int:
    """What one capture is compared with: its event's previous attempt, else the capture
    before it on its endpoint."""
    found = store.read_sync(requests.diff_partners, request_id)
    if found is None:
        raise CliError(f"No request {request_id}.")
    partner = found["previous_attempt"] or found["previous"]
    if partner is None:
        raise CliError(f"Request {request_id} is the first on its endpoint: name another (B).")
    return partner


def _value(text: str | None) -> str:
    if text is None:
        return "(none)"
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _changes(changes: list[diff.Change], more: int = 0) -> list[str]:
    lines = []
    for change in changes:
        mark = MARKS.get(change["kind"], "?")
        if change["kind"] == diff.ADDED:
            lines.append(f"  {mark} {change['where']}: {_value(change['b'])}")
        elif change["kind"] == diff.REMOVED:
            lines.append(f"  {mark} {change['where']}: {_value(change['a'])}")
        else:
            what = f"{change['where']}: {_value(change['a'])}  ->  {_value(change['b'])}"
            lines.append(f"  {mark} {what}")
    if more:
        lines.append(f"  ... and {more} more")
    return lines


def render(result: diff.RequestDiff) -> list[str]:
    """The diff as lines of text (captured text still to be made inert by ``echo``)."""
    lines = [f"diff {result['a']} -> {result['b']}"]
    if result["equal"]:
        return [*lines, "identical, byte for byte"]
    if result["line"]:
        lines += ["request line", *_changes(result["line"])]
    if result["query"]:
        lines += ["query", *_changes(result["query"], result["more_query"])]
    headers = result["headers"]
    if headers["changes"] or headers["order_changed"]:
        lines.append("headers")
        lines += _changes(headers["changes"])
        if headers["order_changed"]:
            order = ", ".join(headers["order_a"]), ", ".join(headers["order_b"])
            lines.append(f"  order {order[0]}  ->  {order[1]}")
    lines += _body_lines(result["body"], result["ignore_key_order"])
    return lines


def _body_lines(body: diff.BodyDiff, ignoring: bool) -> list[str]:
    sizes = f"{human_size(body['size_a'])} -> {human_size(body['size_b'])}"
    if body["equal"]:
        return [f"body: identical ({human_size(body['size_a'])})"]
    mode = body["mode"] + (", key order ignored" if ignoring and body["mode"] == "json" else "")
    lines = [f"body ({mode}; {sizes})", *_changes(body["changes"], body["more"])]
    if body["note"]:
        lines.append(f"  note: {body['note']}")
    span = body["bytes"]
    if span is not None:
        lines.append(
            f"  bytes differ at {span['offset']}: A [{span['offset']}:{span['a_end']}] "
            f"B [{span['offset']}:{span['b_end']}]"
        )
        lines.append(f"    A {span['a_hex'] or '(end)'}")
        lines.append(f"    B {span['b_hex'] or '(end)'}")
    return lines


def register(sub: Commands) -> None:
    cmd = add_command(
        sub,
        "diff",
        "What differs between two captures: request line, query, headers, body.",
        "What differs from capture A to capture B: method, path and query; headers (added, "
        "removed, changed, order); the body by JSON path, form field, text line, or bytes. "
        "Without B, A is compared with the previous attempt of its event, else with the "
        "capture before it on its endpoint. Reads the store; no server needed.",
    )
    cmd.add_argument("a", type=int_in(1, 2**62), metavar="A", help="A capture's id.")
    cmd.add_argument(
        "b", type=int_in(1, 2**62), nargs="?", metavar="B", help="The capture compared with."
    )
    cmd.add_argument(
        "--ignore-key-order",
        action="store_true",
        help="JSON objects with the same keys in another order are the same.",
    )
    cmd.add_argument("--json", action="store_true", help="The diff as JSON (the API's shape).")
    add_data_dir(cmd)
    cmd.set_defaults(func=cmd_diff)
