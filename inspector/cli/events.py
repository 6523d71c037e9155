"""``webhook-inspector events``: an endpoint's events and their retry timelines, judged
against the expected schedule (straight from the store): the endpoint's, or for an event one
of our own deliveries sent here, the (scaled) schedule that delivery kept."""

from __future__ import annotations

import argparse

from inspector import timeline
from inspector.cli.options import (
    CliError,
    Commands,
    add_command,
    add_data_dir,
    int_in,
    open_store,
    parse_schedule,
)
from inspector.cli.terminal import BLANK, echo, print_table
from inspector.display import seconds
from inspector.endpoints import EndpointSettings
from inspector.store import Store, attempts, deliveries, endpoints


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
        explicit = bool(args.schedule or args.wait_from)
        expected = timeline.Expected(
            schedule,
            tolerance,
            args.wait_from or settings.wait_from,
            "query" if explicit else "endpoint",
        )
        if args.key:
            summary = store.read_sync(attempts.event_summary, args.endpoint, args.key)
            if summary is None:
                raise CliError(f"No event {args.key!r} at endpoint {args.endpoint!r}.")
            found = store.read_sync(attempts.event_attempts, args.endpoint, args.key)
            ours = {} if explicit else _ours(store, args.endpoint, [args.key])
            report = timeline.timeline_report(summary, found, expected.of(ours.get(args.key)))
            print_timeline(report)
            return 0
        rows, by_key, _ = store.read_sync(attempts.list_events, args.endpoint, args.limit, None)
        ours = {} if explicit else _ours(store, args.endpoint, [r["event_key"] for r in rows])
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    if not rows:
        echo(f"No events at endpoint {args.endpoint!r} yet.")
        return 0
    table = [["EVENT", "TYPE", "ATTEMPTS", "LAST", "VERDICT"]]
    for row in rows:
        judged = expected.of(ours.get(row["event_key"]))
        report = timeline.timeline_report(row, by_key[row["event_key"]], judged)
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


def _ours(store: Store, endpoint: str, keys: list[str]) -> dict[str, timeline.SenderSchedule]:
    """Events our own deliveries sent here: judged by the (scaled) schedule they kept."""
    return store.read_sync(deliveries.sender_schedules, endpoint, keys)


def print_timeline(report: timeline.TimelineReport) -> None:
    echo(f"event     {report['event_key']}  ({report['event_type'] or 'untyped'})")
    waits = ", ".join(f"{s:g} s" for s in report["schedule"])
    echo(
        f"schedule  {waits}, each from the failed attempt's {report['wait_from']}"
        f" ({report['schedule_from']})"
    )
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


def register(sub: Commands) -> None:
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
        help="Expected retry schedule, e.g. 60,300,1800 (default: the endpoint's; for an event "
        "our own delivery sent, the scaled schedule it kept).",
    )
    ev.add_argument(
        "--tolerance",
        type=float,
        metavar="FRACTION",
        help="Allowed deviation from the schedule, e.g. 0.1 (default: the endpoint's).",
    )
    ev.add_argument(
        "--wait-from",
        choices=timeline.WAIT_FROM,
        help="Whether each wait counts from the failed attempt's start or its end "
        "(default: the endpoint's, end).",
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
