"""Endpoint commands: ``endpoint`` (settings), ``sign`` (headers for a signed curl), ``events``
(retry timelines). They read and write the store directly; a running server picks up
settings changes within a second."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspector import faults, timeline
from inspector.cli.options import CliError, add_data_dir, int_in, open_store, print_table
from inspector.endpoints import EndpointSettings
from inspector.signatures import SCHEMES, SignatureConfig, sign
from inspector.store import attempts, endpoints


def parse_rule(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or name not in faults.PARAMS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(faults.PARAMS)}; got {text!r}"
        )
    return name, value


def parse_schedule(text: str) -> tuple[float, ...]:
    """``60,300,1800`` -> (60.0, 300.0, 1800.0); every interval a positive number."""
    try:
        schedule = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise CliError(f"--schedule: comma-separated seconds, got {text!r}.") from None
    if any(not 0 < s < 1e7 for s in schedule):
        raise CliError("--schedule: every interval must be a positive number of seconds.")
    return schedule


def cmd_endpoint(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser(), must_exist=False)
    try:
        stored = store.read_sync(endpoints.get_endpoint_settings, args.name) or {}
        current = EndpointSettings.from_dict(stored)
        changes: dict[str, Any] = {}
        if args.reset:
            current = EndpointSettings()
        if args.secret:
            changes["secret"] = args.secret
        if args.no_secret:
            changes["secret"] = None
        for key in ("scheme", "tolerance", "forward_to", "forward_mode"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        if args.enforce is not None:
            changes["enforce"] = args.enforce
        hmac = {
            k: getattr(args, f"hmac_{k}")
            for k in ("header", "algorithm", "encoding", "prefix")
            if getattr(args, f"hmac_{k}") is not None
        }
        if hmac:
            changes["hmac"] = {**current.hmac, **hmac}
        if args.clear_response:
            changes["response"] = None
        if args.response:
            # Same vocabulary and validation as the query parameters.
            query = "&".join(f"{k}={v}" for k, v in args.response)
            rules = faults.parse_query(query, max_delay=float("inf"))
            changes["response"] = {**({} if args.clear_response else current.response), **rules}
        if args.schedule:
            changes["schedule"] = list(parse_schedule(args.schedule))
        if changes or args.reset:
            updated = current.merged(changes)
            now = datetime.now(UTC).isoformat(timespec="seconds")
            store.write_sync(endpoints.put_endpoint_settings, args.name, updated.to_dict(), now)
            current = updated
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(json.dumps({"name": args.name, "settings": current.to_dict()}, indent=2))
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    if args.file in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.file).read_bytes()
        except OSError as exc:
            raise CliError(f"Cannot read {args.file}: {exc.strerror}") from None
    config = SignatureConfig(
        hmac_header=args.hmac_header or "X-Signature",
        hmac_algorithm=args.hmac_algorithm or "sha256",
        hmac_encoding=args.hmac_encoding or "hex",
        hmac_prefix=args.hmac_prefix or "",
    )
    headers = sign(
        args.scheme, args.secret, body, timestamp=args.timestamp, msg_id=args.id, config=config
    )
    if args.curl:
        parts = ["curl", "-X", "POST", shlex.quote(args.curl)]
        for name, value in headers:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
        parts += ["-H", shlex.quote("Content-Type: application/json")]
        source = "@-" if args.file in (None, "-") else f"@{args.file}"
        parts += ["--data-binary", shlex.quote(source)]
        print(" ".join(parts))
    else:
        for name, value in headers:
            print(f"{name}: {value}")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    try:
        stored = store.read_sync(endpoints.get_endpoint_settings, args.endpoint) or {}
        settings = EndpointSettings.from_dict(stored)
        schedule = settings.schedule
        if args.schedule:
            schedule = parse_schedule(args.schedule)
        tolerance = args.tolerance if args.tolerance is not None else settings.schedule_tolerance
        if not 0 <= tolerance <= 1:
            raise CliError(f"--tolerance: a fraction between 0 and 1, got {tolerance}.")
        if args.key:
            summary = store.read_sync(attempts.event_summary, args.endpoint, args.key)
            if summary is None:
                raise CliError(f"No event {args.key!r} at endpoint {args.endpoint!r}.")
            found = store.read_sync(attempts.event_attempts, args.endpoint, args.key)
            report = timeline.timeline_report(summary, found, schedule, tolerance)
            print_timeline(report)
            return 0
        rows, by_key, _ = store.read_sync(attempts.list_events, args.endpoint, args.limit, None)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    if not rows:
        print(f"No events at endpoint {args.endpoint!r} yet.")
        return 0
    table = [["EVENT", "TYPE", "ATTEMPTS", "LAST", "VERDICT"]]
    for row in rows:
        report = timeline.timeline_report(row, by_key[row["event_key"]], schedule, tolerance)
        last = report["attempt_list"][-1]
        table.append(
            [
                row["event_key"] if len(row["event_key"]) <= 40 else row["event_key"][:37] + "...",
                row["event_type"] or "-",
                str(row["attempts"]),
                str(last["status"] if last["status"] is not None else "-"),
                report["stopped"],
            ]
        )
    print_table(table)
    return 0


def print_timeline(report: timeline.TimelineReport) -> None:
    print(f"event     {report['event_key']}  ({report['event_type'] or 'untyped'})")
    print(f"schedule  {', '.join(f'{s:g} s' for s in report['schedule'])}")
    for attempt in report["attempt_list"]:
        status = attempt["status"] if attempt["status"] is not None else "-"
        extra = ""
        if attempt["client_gave_up_after_ms"] is not None:
            extra = f"  sender gave up after {attempt['client_gave_up_after_ms'] / 1000:.1f} s"
        elif attempt["dropped"]:
            extra = "  connection dropped"
        print(f"  #{attempt['attempt']}  {attempt['received_at']}  -> {status}{extra}")
    for interval in report["intervals"]:
        print(f"  {interval['message']}")
    print(report["summary"])


def register(sub: Any) -> None:
    ep = sub.add_parser(
        "endpoint", help="Show or change an endpoint's settings (secret, scheme, rules...)."
    )
    ep.add_argument("name")
    ep.add_argument(
        "--secret",
        action="append",
        metavar="S",
        help="Signature secret; repeat for rotation (all are tried).",
    )
    ep.add_argument("--no-secret", action="store_true", help="Remove the endpoint's secrets.")
    ep.add_argument("--scheme", choices=("auto", *SCHEMES))
    ep.add_argument("--tolerance", type=int_in(0), help="Seconds of timestamp skew allowed.")
    ep.add_argument(
        "--enforce",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Answer 401 to requests whose signature is not valid.",
    )
    ep.add_argument("--hmac-header")
    ep.add_argument("--hmac-algorithm", choices=("sha1", "sha256", "sha512"))
    ep.add_argument("--hmac-encoding", choices=("hex", "base64"))
    ep.add_argument("--hmac-prefix")
    ep.add_argument(
        "--response",
        action="append",
        type=parse_rule,
        metavar="NAME=VALUE",
        help="A failure-mode rule, e.g. fail=2, delay=3, status=503; repeatable.",
    )
    ep.add_argument("--clear-response", action="store_true", help="Remove all response rules.")
    ep.add_argument("--schedule", help="Expected retry schedule, e.g. 60,300,1800 (seconds).")
    ep.add_argument("--forward-to", metavar="URL")
    ep.add_argument("--forward-mode", choices=("mirror", "proxy"))
    ep.add_argument("--reset", action="store_true", help="Back to default settings first.")
    add_data_dir(ep)
    ep.set_defaults(func=cmd_endpoint)

    sg = sub.add_parser("sign", help="Print the signature header(s) for a body.")
    sg.add_argument("file", nargs="?", help="Body file, or - (default) for stdin.")
    sg.add_argument("--scheme", default="platform", choices=SCHEMES)
    sg.add_argument("--secret", required=True)
    sg.add_argument("--timestamp", type=int, help="Unix time for timestamped schemes.")
    sg.add_argument("--id", help="Message id (standard scheme).")
    sg.add_argument("--hmac-header")
    sg.add_argument("--hmac-algorithm", choices=("sha1", "sha256", "sha512"))
    sg.add_argument("--hmac-encoding", choices=("hex", "base64"))
    sg.add_argument("--hmac-prefix")
    sg.add_argument("--curl", metavar="URL", help="Print a whole curl command for this URL.")
    sg.set_defaults(func=cmd_sign)

    ev = sub.add_parser("events", help="Events of an endpoint and their retry timelines.")
    ev.add_argument("--endpoint", required=True)
    ev.add_argument("key", nargs="?", help="One event's key: show its timeline.")
    ev.add_argument("--schedule", help="Expected retry schedule in seconds, e.g. 60,300,1800.")
    ev.add_argument("--tolerance", type=float, help="Allowed deviation as a fraction (0.1).")
    ev.add_argument("--limit", type=int_in(1, 1000), default=50)
    add_data_dir(ev)
    ev.set_defaults(func=cmd_events)
