"""``webhook-inspector events``: an endpoint's events and their retry timelines, judged
against the expected schedule (straight from the store)."""

from __future__ import annotations

import argparse
from typing import Any

from inspector import timeline
from inspector.cli.options import (
    CliError,
    add_command,
    add_data_dir,
    int_in,
    open_store,
    parse_schedule,
)
from inspector.cli.terminal import BLANK, echo, print_table
from inspector.display import seconds
from inspector.endpoints import EndpointSettings
from inspector.store import attempts, endpoints


def cmd_events(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, database=args.database)
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
        echo(f"No events at endpoint {args.endpoint!r} yet.")
        return 0
    table = [["EVENT", "TYPE", "ATTEMPTS", "LAST", "VERDICT"]]
    for row in rows:
        report = timeline.timeline_report(row, by_key[row["event_key"]], schedule, tolerance)
        last = report["attempt_list"][-1]
        table.append(
            [
                row["event_key"] if len(row["event_key"]) <= 40 else row["event_key"][:37] + "...",
                row["event_type"] or BLANK,
                str(row["attempts"]),
                str(last["status"] if last["status"] is not None else BLANK),
                report["stopped"],
            ]
        )
    print_table(table)
    return 0


def print_timeline(report: timeline.TimelineReport) -> None:
    echo(f"event     {report['event_key']}  ({report['event_type'] or 'untyped'})")
    echo(f"schedule  {', '.join(f'{s:g} s' for s in report['schedule'])}")
    for attempt in report["attempt_list"]:
        status = attempt["status"] if attempt["status"] is not None else BLANK
        extra = ""
        if attempt["client_gave_up_after_ms"] is not None:
            extra = f"  sender gave up after {seconds(attempt['client_gave_up_after_ms'])}"
        elif attempt["dropped"]:
            extra = "  connection dropped"
        echo(f"  #{attempt['attempt']}  {attempt['received_at']}  -> {status}{extra}")
    for interval in report["intervals"]:
        echo(f"  {interval['message']}")
    echo(report["summary"])


def register(sub: Any) -> None:
    ev = add_command(
        sub,
        "events",
        "An endpoint's events and their retry timelines, judged against a schedule.",
        "List an endpoint's events (one per event key, with its attempts), or with KEY show "
        "one event's timeline: every retry interval judged against the expected schedule.",
    )
    ev.add_argument("--endpoint", required=True, metavar="E", help="The endpoint to look at.")
    ev.add_argument("key", nargs="?", metavar="KEY", help="One event's key: show its timeline.")
    ev.add_argument(
        "--schedule",
        metavar="SECONDS,...",
        help="Expected retry schedule, e.g. 60,300,1800 (default: the endpoint's).",
    )
    ev.add_argument(
        "--tolerance",
        type=float,
        metavar="FRACTION",
        help="Allowed deviation from the schedule, e.g. 0.1 (default: the endpoint's).",
    )
    ev.add_argument(
        "--limit",
        type=int_in(1, 1000),
        default=50,
        metavar="N",
        help="How many events (default: %(default)s).",
    )
    add_data_dir(ev)
    ev.set_defaults(func=cmd_events)
