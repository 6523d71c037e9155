"""``webhook-inspector deliveries``: the delivery log (推送記錄), straight from the store."""

from __future__ import annotations

import argparse
import base64
import json

from inspector import sender
from inspector.cli.options import CliError, Commands, add_command, add_data_dir, int_in, open_store
from inspector.cli.terminal import BLANK, cut, echo, print_table
from inspector.display import human_size
from inspector.store import Store, deliveries


def cmd_deliveries(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, must_exist=False, database=args.database)
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
                cut(it["url"], 48) + (" [insecure]" if it["insecure"] else ""),
                it["state"],
                f"{it['attempts']}/{it['max_attempts']}",
                _answer(last) if last else BLANK,
                (it["next_attempt_at"] or BLANK).replace("T", " ")[:23],
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
    echo(f"delivery #{found['id']}  {found['event']} -> {found['url']}")
    echo(f"state     {found['state']}  ({found['attempts']}/{found['max_attempts']} attempts)")
    echo(f"created   {found['created_at']}; sent by {found['carrier']}")
    echo(
        f"signing   {found['scheme']}; timeout {found['timeout']:g} s; "
        f"{sender.describe_schedule(found['schedule'], found['time_scale'])}"
    )
    if found["insecure"]:
        echo("tls       certificate NOT verified (--insecure)")
    elif found["ca_file"]:
        echo(f"tls       trusting the CA in {found['ca_file']} as well")
    if found["next_attempt_at"]:
        echo(f"next      {found['next_attempt_at']}")
    echo(f"event key {found['event_key']}  ({human_size(found['size'])})")
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
                str(a["status"]) if a["status"] is not None else BLANK,
                f"{a['elapsed_ms']:.0f} ms",
                a["error"] or BLANK,
                cut(" ".join(body.split()), 40) or BLANK,
            ]
        )
    print_table(rows)
    return 0


def _answer(attempt: deliveries.AttemptItem) -> str:
    if attempt["status"] is None:
        return cut(attempt["error"] or BLANK, 40)
    return str(attempt["status"]) + (" (redirect)" if attempt["error"] else "")


def register(sub: Commands) -> None:
    dels = add_command(
        sub,
        "deliveries",
        "The delivery log (推送記錄) of send and the page, newest first.",
        "The delivery log (推送記錄): every delivery made by `send` or the page's Send test, "
        "newest first; with --id one delivery with every attempt and its response. Reads the "
        "store; no server needed.",
    )
    dels.add_argument(
        "--id", type=int_in(1, 2**62), metavar="N", help="One delivery with every attempt."
    )
    dels.add_argument(
        "--limit",
        type=int_in(1, 1000),
        default=50,
        metavar="N",
        help="How many (default: %(default)s).",
    )
    dels.add_argument("--json", action="store_true", help="Machine-readable output.")
    add_data_dir(dels)
    dels.set_defaults(func=cmd_deliveries)
