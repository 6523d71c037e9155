"""``webhook-inspector wait``: block until captures arrive at a running server, for shell CI.

``wait --endpoint E --count N --timeout S [filters]`` long-polls ``GET /api/requests/wait``
and prints one line per matching capture (as ``tail`` does; ``--json`` for the items). Exit
status 0 when ``N`` arrived, 1 on time-out (the ones that did match are still printed), 2 on
a usage error or a server that cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import sys

import httpx

from inspector import waiters
from inspector.cli.options import CliError, Commands, add_command, add_token, int_in
from inspector.cli.tail import DEFAULT_URL, request_line
from inspector.client import Client, Filters


def cmd_wait(args: argparse.Namespace) -> int:
    filters: Filters = {}
    for key in ("method", "status", "signature", "event_type", "q"):
        value = getattr(args, key)
        if value is not None:
            filters[key] = value
    try:
        with Client(args.url, token=args.token) as client:
            got = client.wait(
                args.endpoint, count=args.count, after=args.after, timeout=args.timeout, **filters
            )
    except httpx.TransportError as exc:
        raise CliError(f"No inspector is answering at {args.url}: {exc}.") from None
    if args.json:  # ASCII escapes: captured text cannot reach the terminal raw
        print(json.dumps(got, indent=2))
    else:
        for item in got["requests"]:
            print(request_line(item))  # made inert by request_line
    if got["timed_out"]:
        found = len(got["requests"])
        print(
            f"wait: timed out after {args.timeout:g} s with {found} of {args.count}.",
            file=sys.stderr,
        )
        return 1
    return 0


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= waiters.MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {waiters.MAX_TIMEOUT:g} s")
    return value


def register(sub: Commands) -> None:
    wait = add_command(
        sub,
        "wait",
        "Wait until captures arrive at a running inspector (exit 1 on time-out).",
        "Block until COUNT captures matching the filters (with ids above --after) are stored "
        "at a running inspector, print them, and exit 0; exit 1 if --timeout passes first. "
        "For shell CI scripts: send, then `webhook-inspector wait --endpoint E`.",
    )
    wait.add_argument(
        "--endpoint", metavar="E", help="Only this endpoint (E* for every name starting with E)."
    )
    wait.add_argument(
        "--count",
        type=int_in(1, waiters.MAX_COUNT),
        default=1,
        metavar="N",
        help="How many captures to wait for (default: %(default)s).",
    )
    wait.add_argument(
        "--timeout",
        type=timeout_seconds,
        default=30.0,
        metavar="S",
        help=f"Seconds to wait at most, up to {waiters.MAX_TIMEOUT:g} (default: %(default)s).",
    )
    wait.add_argument(
        "--after",
        type=int_in(0, 2**62),
        default=0,
        metavar="ID",
        help="Only captures with a larger id (default: any).",
    )
    wait.add_argument("--method", metavar="M", help="Only this HTTP method.")
    wait.add_argument("--status", type=int_in(100, 599), metavar="N", help="Only this answer.")
    wait.add_argument(
        "--signature", metavar="V", help="Only this verdict (valid, invalid, ..., none)."
    )
    wait.add_argument("--event-type", metavar="T", help="Only events of this type.")
    wait.add_argument("--q", metavar="TEXT", help="Only requests containing this text.")
    wait.add_argument("--json", action="store_true", help="Print the items as JSON.")
    wait.add_argument(
        "--url", default=DEFAULT_URL, metavar="URL", help="The inspector (default: %(default)s)."
    )
    add_token(wait)
    wait.set_defaults(func=cmd_wait)
