"""``webhook-inspector send``: send a signed platform event with its retry policy.

``send`` hands the delivery to a running server that uses the same data dir (so the server
carries the retries and its page shows them live), or — with ``--wait``, or when no such
server answers — runs the delivery engine in this process until the delivery succeeds or
fails, printing each attempt as it happens.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import cast

import httpx

from inspector import catalog, sender, timeline
from inspector.cli.options import (
    INSECURE_WARNING,
    TOKEN_ENV,
    CliError,
    Commands,
    add_command,
    add_data_dir,
    add_signing,
    add_tls_options,
    add_token,
    open_store,
    signing_secret,
    tls_options,
)
from inspector.cli.terminal import echo, stop_on_ctrl_c
from inspector.client import Client
from inspector.errors import InspectorError, Unauthorized
from inspector.settings import local_ca_file
from inspector.shapes import CreatedDelivery
from inspector.store import Store, deliveries, is_database_url

DEFAULT_SERVER = "http://127.0.0.1:8765"


def _read_body(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).expanduser().read_bytes()
    except OSError as exc:
        raise CliError(f"Cannot read --body {source}: {exc.strerror or exc}.") from None


def _header_pairs(values: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for value in values or []:
        name, sep, rest = value.partition(":")
        if not sep:
            raise CliError(f"--header needs 'Name: value', got {value!r}.")
        pairs.append((name.strip(), rest.strip()))
    return pairs


def cmd_send(args: argparse.Namespace) -> int:
    body = _read_body(args.body) if args.body is not None else None
    if body is not None and args.set:
        raise CliError("--set edits generated bodies; a --body is sent byte-exact as it is.")
    overrides = [catalog.parse_set(text) for text in args.set or []]
    tls = tls_options(args)
    if tls.insecure:
        echo(INSECURE_WARNING, file=sys.stderr, flush=True)
    wanted = sender.prepare(
        args.event,
        args.to,
        signing_secret(args),
        body=body,
        overrides=overrides,
        scheme=args.scheme,
        schedule=args.schedule,
        timeout=args.timeout,
        time_scale=args.time_scale,
        headers=_header_pairs(args.header),
        ca_file=tls.ca_file,
        insecure=tls.insecure,
        wait_from=args.wait_from,
    )
    if not args.wait:
        handed = hand_over(
            args.server, wanted, args.database or args.data_dir / "inspector.db", args.token
        )
        if handed is not None:
            echo(
                f"delivery #{handed['id']} ({wanted.event} -> {wanted.url}) handed to the "
                f"server at {args.server}, which carries its retries."
            )
            echo(f"  follow it: {args.server.rstrip('/')}/deliveries")
            echo(f"        or: webhook-inspector deliveries --id {handed['id']}")
            return 0
    stop_on_ctrl_c()
    return asyncio.run(send_and_wait(wanted, args.data_dir, args.database))


def hand_over(
    server: str, wanted: sender.DeliveryRequest, location: Path | str, token: str | None = None
) -> CreatedDelivery | None:
    """POST the delivery to a server using the store at ``location``; None (and why, on
    stderr) if none."""
    base = server.rstrip("/")
    try:
        text = wanted.body.decode("utf-8")
    except UnicodeDecodeError:
        _note("the body is not UTF-8, which the API cannot carry: sending from this process.")
        return None
    try:
        with Client(base, token=token, timeout=5) as client:
            try:
                store = client.deliveries(limit=1)["store"]
            except Unauthorized:
                raise CliError(
                    f"the inspector at {base} requires its token: --token TOKEN or {TOKEN_ENV}."
                ) from None
            except (InspectorError, KeyError, TypeError, ValueError):
                _note(f"{base} is not a webhook-inspector with deliveries: sending from here.")
                return None
            if not same_store(store, location):
                _note(
                    f"the server at {base} keeps its store in {store}, not {location}: sending "
                    "from this process (pass that --data-dir or --database to hand deliveries"
                    " over)."
                )
                return None
            try:
                return client.deliver(
                    event=wanted.event,
                    url=wanted.url,
                    secret=wanted.secret,
                    body=text,
                    scheme=wanted.scheme,
                    schedule=list(wanted.schedule),
                    timeout=wanted.timeout,
                    time_scale=wanted.time_scale,
                    wait_from=wanted.wait_from,
                    headers=list(wanted.headers),
                    ca_file=wanted.ca_file,
                    insecure=wanted.insecure,
                )
            except InspectorError as exc:
                raise CliError(
                    f"The server refused the delivery ({exc.status}): {exc.detail}"
                ) from None
    except httpx.HTTPError:
        _note(f"no inspector is answering at {base}: sending from this process instead.")
        return None


def _note(text: str) -> None:
    echo(f"note: {text}", file=sys.stderr, flush=True)


def same_store(described: str, location: Path | str) -> bool:
    """Is the store a server describes (``Store.description``) the one at ``location``?"""
    if isinstance(location, str):
        return is_database_url(described) and described == Store(location).description
    return not is_database_url(described) and Path(described).resolve() == location.resolve()


async def send_and_wait(
    wanted: sender.DeliveryRequest, data_dir: Path, database: str | None = None
) -> int:
    """Run the engine here until the delivery succeeds (0) or fails (1), printing attempts."""
    store = open_store(data_dir, must_exist=False, database=database)
    engine = sender.Dispatcher(store, carrier=sender.cli_carrier(), own_ca=local_ca_file(data_dir))
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[str] = loop.create_future()

    def show(change: sender.DeliveryChange) -> None:
        item, attempt = change["delivery"], change["attempt"]
        kind = change["change"]
        if kind == "attempt" and attempt is not None:
            echo(_attempt_line(item, cast(deliveries.AttemptItem, attempt)), flush=True)
        elif kind in ("succeeded", "failed", "cancelled") and not finished.done():
            finished.set_result(kind)

    engine.listeners.append(show)
    created: deliveries.DeliveryItem | None = None
    try:
        engine.start()
        created = await engine.submit(wanted)
        echo(f"delivery #{created['id']}: {wanted.event} -> {wanted.url}")
        echo(
            f"  {wanted.scheme} signature, timeout {wanted.timeout:g} s, "
            f"{sender.describe_schedule(wanted.schedule, wanted.time_scale, wanted.wait_from)}",
            flush=True,
        )
        if wanted.insecure:
            echo("  certificate NOT verified (--insecure)", flush=True)
        elif wanted.ca_file:
            echo(f"  trusting the CA in {wanted.ca_file} as well", flush=True)
        outcome = await finished
    except asyncio.CancelledError:
        await engine.stop()
        if created is not None:
            store.write_sync(deliveries.set_carrier, created["id"], None)
            _note(
                f"interrupted: delivery #{created['id']} stays pending; a `webhook-inspector "
                "serve` on this data dir carries on its retries."
            )
        raise
    finally:
        await engine.stop()
        store.close()
    assert created is not None
    print(_final_line(outcome, created["id"]), flush=True)
    return 0 if outcome == "succeeded" else 1


def _attempt_line(item: deliveries.DeliveryItem, attempt: deliveries.AttemptItem) -> str:
    number, total = attempt["attempt"], item["max_attempts"]
    if attempt["status"] is None:
        answer = attempt["error"] or "no answer"
    else:
        answer = f"{attempt['status']} in {attempt['elapsed_ms']:.0f} ms"
        if attempt["error"]:
            answer += f" ({attempt['error']})"
    if item["insecure"] and item["url"].startswith("https://"):
        answer += "  (certificate NOT verified)"
    line = f"  attempt {number}/{total}  {attempt['sent_at'][11:23]}  {answer}"
    if item["state"] == "pending" and item["next_attempt_ts"] is not None:
        since = attempt["sent_ts"]  # the wait counts from the attempt's start, or its end
        if item["wait_from"] == "end":
            since += (attempt["elapsed_ms"] or 0.0) / 1000
        wait = item["next_attempt_ts"] - since
        line += f"  -> retry {number} in {wait:.3g} s"
    return line


def _final_line(outcome: str, delivery_id: int) -> str:
    if outcome == "succeeded":
        return f"delivery #{delivery_id} succeeded."
    return f"delivery #{delivery_id} {outcome}: no attempt was accepted."


def register(sub: Commands) -> None:
    send = add_command(
        sub,
        "send",
        "Send a signed platform event with its retry policy (1, 5, 30 min).",
        "Send one event as the platform would: signed, retried after 1, 5 and 30 minutes "
        "(times --time-scale) until a 2xx, then marked failed. Without --wait the delivery is "
        "handed to the inspector at --server if it uses the same data dir.",
    )
    send.add_argument(
        "event",
        nargs="?",
        metavar="EVENT",
        help=f"Event type: {', '.join(catalog.EVENT_TYPES)} (optional with --body).",
    )
    send.add_argument("--to", required=True, metavar="URL", help="The receiver's URL.")
    add_signing(send, timeout=sender.DEFAULT_TIMEOUT)
    send.add_argument(
        "--set",
        action="append",
        metavar="PATH=VALUE",
        help="Override a field of the sample, e.g. data.content=hello (JSON if it parses).",
    )
    send.add_argument(
        "--body", metavar="FILE", help="Send this file's bytes as they are ('-' reads stdin)."
    )
    send.add_argument(
        "--header", action="append", metavar="'NAME: VALUE'", help="Extra request header."
    )
    send.add_argument(
        "--schedule",
        default=",".join(f"{s:g}" for s in timeline.DEFAULT_SCHEDULE),
        metavar="SECONDS,...",
        help="Seconds before each retry (default: %(default)s; empty for no retries).",
    )
    send.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="Multiply every retry wait by F (0.01 turns 1/5/30 min into 0.6/3/18 s).",
    )
    send.add_argument(
        "--wait-from",
        choices=timeline.WAIT_FROM,
        default=timeline.DEFAULT_WAIT_FROM,
        help="Count each retry wait from the failed attempt's start or its end (its answer or "
        "timeout), as the platform's document reads (default: %(default)s).",
    )
    send.add_argument(
        "--wait",
        action="store_true",
        help="Send from this process and wait for success or failure (exit 0 or 1).",
    )
    send.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        metavar="URL",
        help="Inspector to hand the delivery to without --wait (default: %(default)s).",
    )
    add_tls_options(send, "receiver")
    add_token(send)
    add_data_dir(send)
    send.set_defaults(func=cmd_send)
