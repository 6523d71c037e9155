"""Playing the platform from a terminal: ``send``, ``deliveries``, ``check``.

``send`` hands the delivery to a running server that uses the same data dir (so the server
carries the retries and its page shows them live), or — with ``--wait``, or when no such
server answers — runs the delivery engine in this process until the delivery succeeds or
fails, printing each attempt as it happens. ``deliveries`` reads the log straight from the
store. ``check`` grades a receiver and exits non-zero on any failure, for CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from pathlib import Path
from typing import Any, cast

import httpx

from inspector import catalog, check, sender, timeline
from inspector.cli.options import (
    CliError,
    add_data_dir,
    human_size,
    int_in,
    open_store,
    print_table,
)
from inspector.signatures import SCHEMES
from inspector.store import Store, deliveries

DEFAULT_SERVER = "http://127.0.0.1:8765"


# -- send ------------------------------------------------------------------------------------


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


def _secret(args: argparse.Namespace) -> str:
    secret: str | None = args.secret or os.environ.get("WEBHOOK_SECRET")
    if not secret:
        raise CliError("A signing secret is required: --secret S or WEBHOOK_SECRET.")
    return secret


def cmd_send(args: argparse.Namespace) -> int:
    body = _read_body(args.body) if args.body is not None else None
    if body is not None and args.set:
        raise CliError("--set edits generated bodies; a --body is sent byte-exact as it is.")
    overrides = [catalog.parse_set(text) for text in args.set or []]
    wanted = sender.prepare(
        args.event,
        args.to,
        _secret(args),
        body=body,
        overrides=overrides,
        scheme=args.scheme,
        schedule=args.schedule,
        timeout=args.timeout,
        time_scale=args.time_scale,
        headers=_header_pairs(args.header),
    )
    data_dir = Path(args.data_dir).expanduser()
    if not args.wait:
        handed = hand_over(args.server, wanted, data_dir / "inspector.db")
        if handed is not None:
            print(
                f"delivery #{handed['id']} ({wanted.event} -> {wanted.url}) handed to the "
                f"server at {args.server}, which carries its retries."
            )
            print(f"  follow it: {args.server.rstrip('/')}/deliveries")
            print(f"        or: webhook-inspector deliveries --id {handed['id']}")
            return 0
    return asyncio.run(send_and_wait(wanted, data_dir))


def hand_over(server: str, wanted: sender.DeliveryRequest, db_path: Path) -> dict[str, Any] | None:
    """POST the delivery to a server using ``db_path``; None (and why, on stderr) if none."""
    base = server.rstrip("/")
    try:
        text = wanted.body.decode("utf-8")
    except UnicodeDecodeError:
        _note("the body is not UTF-8, which the API cannot carry: sending from this process.")
        return None
    try:
        with httpx.Client(base_url=base, timeout=5, trust_env=False) as client:
            probe = client.get("/api/deliveries", params={"limit": 1})
            store = probe.json().get("store") if probe.status_code == 200 else None
            if store is None:
                _note(f"{base} is not a webhook-inspector with deliveries: sending from here.")
                return None
            if Path(store).resolve() != db_path.resolve():
                _note(
                    f"the server at {base} keeps its store in {store}, not {db_path}: sending "
                    "from this process (pass that --data-dir to hand deliveries over)."
                )
                return None
            response = client.post(
                "/api/deliveries",
                json={
                    "event": wanted.event,
                    "url": wanted.url,
                    "secret": wanted.secret,
                    "body": text,
                    "scheme": wanted.scheme,
                    "schedule": list(wanted.schedule),
                    "timeout": wanted.timeout,
                    "time_scale": wanted.time_scale,
                    "headers": [list(h) for h in wanted.headers],
                },
            )
    except (httpx.HTTPError, ValueError):
        _note(f"no inspector is answering at {base}: sending from this process instead.")
        return None
    if response.status_code != 201:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text[:200]
        raise CliError(f"The server refused the delivery ({response.status_code}): {detail}")
    created: dict[str, Any] = response.json()
    return created


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


async def send_and_wait(wanted: sender.DeliveryRequest, data_dir: Path) -> int:
    """Run the engine here until the delivery succeeds (0) or fails (1), printing attempts."""
    store = open_store(data_dir, must_exist=False)
    engine = sender.Dispatcher(store, carrier=sender.cli_carrier())
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[str] = loop.create_future()

    def show(change: sender.DeliveryChange) -> None:
        item, attempt = change["delivery"], change["attempt"]
        kind = change["change"]
        if kind == "attempt" and attempt is not None:
            print(_attempt_line(item, cast(deliveries.AttemptItem, attempt)), flush=True)
        elif kind in ("succeeded", "failed", "cancelled") and not finished.done():
            finished.set_result(kind)

    engine.listeners.append(show)
    created: deliveries.DeliveryItem | None = None
    try:
        engine.start()
        created = await engine.submit(wanted)
        print(
            f"delivery #{created['id']}: {wanted.event} -> {wanted.url}\n"
            f"  {wanted.scheme} signature, timeout {wanted.timeout:g} s, "
            f"{sender.describe_schedule(wanted.schedule, wanted.time_scale)}",
            flush=True,
        )
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
    final = _final_line(outcome, created["id"])
    print(final, flush=True)
    return 0 if outcome == "succeeded" else 1


def _attempt_line(item: deliveries.DeliveryItem, attempt: deliveries.AttemptItem) -> str:
    number, total = attempt["attempt"], item["max_attempts"]
    if attempt["status"] is None:
        answer = attempt["error"]
    else:
        answer = f"{attempt['status']} in {attempt['elapsed_ms']:.0f} ms"
        if attempt["error"]:
            answer += f" ({attempt['error']})"
    line = f"  attempt {number}/{total}  {attempt['sent_at'][11:23]}  {answer}"
    if item["state"] == "pending" and item["next_attempt_ts"] is not None:
        wait = item["next_attempt_ts"] - attempt["sent_ts"]
        line += f"  -> retry {number} in {wait:.3g} s"
    return line


def _final_line(outcome: str, delivery_id: int) -> str:
    if outcome == "succeeded":
        return f"delivery #{delivery_id} succeeded."
    return f"delivery #{delivery_id} {outcome}: no attempt was accepted."


# -- deliveries ------------------------------------------------------------------------------


def cmd_deliveries(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser(), must_exist=False)
    try:
        if args.id is not None:
            return _show_delivery(store, args.id, args.json)
        items, _ = store.read_sync(deliveries.list_deliveries, args.limit, None, None)
    finally:
        store.close()
    if args.json:
        print(json.dumps({"deliveries": items}, ensure_ascii=False, indent=2))
        return 0
    if not items:
        print("No deliveries yet: try `webhook-inspector send message.received --to URL`.")
        return 0
    rows = [["ID", "CREATED (UTC)", "EVENT", "URL", "STATE", "ATTEMPTS", "LAST", "NEXT (UTC)"]]
    for it in items:
        last = it["last"]
        rows.append(
            [
                str(it["id"]),
                it["created_at"].replace("T", " ")[:19],
                it["event"],
                _cut(it["url"], 48),
                it["state"],
                f"{it['attempts']}/{it['max_attempts']}",
                _answer(last) if last else "-",
                (it["next_attempt_at"] or "-").replace("T", " ")[:23],
            ]
        )
    print_table(rows)
    return 0


def _show_delivery(store: Store, delivery_id: int, as_json: bool) -> int:
    found = store.read_sync(deliveries.get_delivery, delivery_id)
    if found is None:
        raise CliError(f"No delivery {delivery_id}.")
    if as_json:
        print(json.dumps(found, ensure_ascii=False, indent=2))
        return 0
    print(f"delivery #{found['id']}  {found['event']} -> {found['url']}")
    print(f"state     {found['state']}  ({found['attempts']}/{found['max_attempts']} attempts)")
    print(f"created   {found['created_at']}; sent by {found['carrier']}")
    print(
        f"signing   {found['scheme']}; timeout {found['timeout']:g} s; "
        f"{sender.describe_schedule(found['schedule'], found['time_scale'])}"
    )
    if found["next_attempt_at"]:
        print(f"next      {found['next_attempt_at']}")
    print(f"event key {found['event_key']}  ({human_size(found['size'])})")
    if not found["log"]:
        print("\nNo attempt finished yet.")
        return 0
    print()
    rows = [["#", "SENT (UTC)", "EVENT", "STATUS", "TIME", "ERROR", "RESPONSE"]]
    for a in found["log"]:
        body = base64.b64decode(a["response_body_base64"]).decode("utf-8", "replace")
        rows.append(
            [
                str(a["attempt"]),
                a["sent_at"].replace("T", " ")[:23],
                a["event"],
                str(a["status"]) if a["status"] is not None else "-",
                f"{a['elapsed_ms']:.0f} ms",
                a["error"] or "-",
                _cut(" ".join(body.split()), 40) or "-",
            ]
        )
    print_table(rows)
    return 0


def _answer(attempt: deliveries.AttemptItem) -> str:
    if attempt["status"] is None:
        return _cut(attempt["error"] or "-", 40)
    return str(attempt["status"]) + (" (redirect)" if attempt["error"] else "")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


# -- check -----------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    report = asyncio.run(
        check.check_receiver(
            args.url,
            _secret(args),
            scheme=args.scheme,
            timeout=args.timeout,
            slow=args.slow,
            oversize=args.oversize,
        )
    )
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return 0 if report.passed else 1
    print(f"Checking {report.url} as the platform would ({report.scheme} signatures)\n")
    rows = [["CHECK", "RESULT", "STATUS", "TIME", "DETAIL"]]
    for row in report.rows:
        rows.append(
            [
                row.check,
                row.verdict.upper(),
                "/".join("-" if s is None else str(s) for s in row.statuses)
                if row.statuses
                else ("-" if row.status is None else str(row.status)),
                "-" if row.latency_ms is None else f"{row.latency_ms:.0f} ms",
                row.detail,
            ]
        )
    print_table(rows)
    counts = report.counts()
    verdict = "ready for the platform" if report.passed else "fix the failed rows above"
    print(
        f"\n{counts['pass']} passed, {counts['warn']} warning(s), {counts['fail']} failed: "
        f"{verdict}."
    )
    return 0 if report.passed else 1


# -- arguments -------------------------------------------------------------------------------


def _add_signing(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret", help="Webhook secret to sign with (default: $WEBHOOK_SECRET).")
    p.add_argument(
        "--scheme",
        default="platform",
        choices=SCHEMES,
        help="Signature scheme (default: %(default)s = X-Webhook-Signature: sha256=<hex>).",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=sender.DEFAULT_TIMEOUT,
        help="Seconds the receiver has to answer (default: %(default)s, as the platform).",
    )


def register(sub: Any) -> None:
    send = sub.add_parser(
        "send",
        help="Send a signed platform event with its retry policy (1, 5, 30 min).",
        description="Send one event as the platform would: signed, retried after 1, 5 and 30 "
        "minutes (times --time-scale) until a 2xx, then marked failed.",
    )
    send.add_argument(
        "event",
        nargs="?",
        help=f"Event type: {', '.join(catalog.EVENT_TYPES)} (optional with --body).",
    )
    send.add_argument("--to", required=True, metavar="URL", help="The receiver's URL.")
    _add_signing(send)
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
    add_data_dir(send)
    send.set_defaults(func=cmd_send)

    dels = sub.add_parser("deliveries", help="The delivery log (推送記錄), newest first.")
    dels.add_argument("--id", type=int_in(1, 2**62), help="One delivery with every attempt.")
    dels.add_argument(
        "--limit", type=int_in(1, 1000), default=50, help="How many (default: %(default)s)."
    )
    dels.add_argument("--json", action="store_true", help="Machine-readable output.")
    add_data_dir(dels)
    dels.set_defaults(func=cmd_deliveries)

    chk = sub.add_parser(
        "check",
        help="Grade a receiver as the platform will treat it (non-zero exit on failure).",
    )
    chk.add_argument("url", help="The receiver's URL.")
    _add_signing(chk)
    chk.add_argument(
        "--slow",
        type=float,
        default=check.DEFAULT_SLOW,
        metavar="SECONDS",
        help="Warn when a valid event takes longer (default: %(default)s).",
    )
    chk.add_argument(
        "--oversize",
        type=int_in(1, 1 << 30),
        default=check.DEFAULT_OVERSIZE,
        metavar="BYTES",
        help="Size of the oversized body (default: %(default)s = 5 MiB).",
    )
    chk.add_argument("--json", action="store_true", help="Machine-readable output.")
    chk.set_defaults(func=cmd_check)
