"""``webhook-inspector endpoint``: show or change an endpoint's settings.

It reads and writes the store directly; a running server obeys the change from its next
capture on (the store refuses a capture prepared with older settings: ``Store.write_as_of``).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from inspector import faults
from inspector.cli.options import (
    CliError,
    Commands,
    add_command,
    add_data_dir,
    add_hmac_options,
    int_in,
    open_store,
    parse_schedule,
)
from inspector.endpoints import EndpointSettings
from inspector.outbound import check_ca_file
from inspector.signatures import SCHEMES
from inspector.store import endpoints


def parse_rule(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or name not in faults.PARAMS:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(faults.PARAMS)}; got {text!r}"
        )
    return name, value


def cmd_endpoint(args: argparse.Namespace) -> int:
    store = open_store(args.data_dir, must_exist=False, database=args.database)
    try:
        stored = store.read_sync(endpoints.get_endpoint_settings, args.name) or {}
        current = EndpointSettings.from_dict(stored)
        changes: dict[str, object] = {}
        if args.reset:
            current = current.reset()  # the secrets it removes stay known to the doctor
        if args.secret:
            changes["secret"] = args.secret
        if args.no_secret:
            changes["secret"] = None
        for key in ("scheme", "tolerance", "forward_to", "forward_mode"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        if args.enforce is not None:
            changes["enforce"] = args.enforce
        if args.ca_file is not None:
            changes["ca_file"] = check_ca_file(args.ca_file, "--ca-file")  # "" resets it
        if args.insecure is not None:
            changes["insecure"] = args.insecure
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
    # ensure_ascii (the default): a secret or rule cannot put a control character on screen.
    print(json.dumps({"name": args.name, "settings": current.to_dict()}, indent=2))
    return 0


def register(sub: Commands) -> None:
    ep = add_command(
        sub,
        "endpoint",
        "Show or change an endpoint's settings (secrets, scheme, response rules...).",
        "Show an endpoint's settings as JSON, or change them: signature secrets and scheme, "
        "enforcement, failure-mode rules, the expected retry schedule, forwarding. Writes the "
        "store directly; a running server obeys it from the very next capture.",
    )
    ep.add_argument("name", metavar="NAME", help="The endpoint (the E in /h/E).")
    ep.add_argument(
        "--secret",
        action="append",
        metavar="S",
        help="Signature secret; repeat for rotation (all are tried).",
    )
    ep.add_argument("--no-secret", action="store_true", help="Remove the endpoint's secrets.")
    ep.add_argument(
        "--scheme",
        choices=("auto", *SCHEMES),
        help="Signature scheme (auto: detected from the headers).",
    )
    ep.add_argument(
        "--tolerance",
        type=int_in(0),
        metavar="SECONDS",
        help="Seconds of timestamp skew allowed.",
    )
    ep.add_argument(
        "--enforce",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Answer 401 to requests whose signature is not valid.",
    )
    add_hmac_options(ep)
    ep.add_argument(
        "--response",
        action="append",
        type=parse_rule,
        metavar="NAME=VALUE",
        help="A failure-mode rule, e.g. fail=2, delay=3, status=503; repeatable.",
    )
    ep.add_argument("--clear-response", action="store_true", help="Remove all response rules.")
    ep.add_argument(
        "--schedule",
        metavar="SECONDS,...",
        help="Expected retry schedule, e.g. 60,300,1800 (seconds).",
    )
    ep.add_argument("--forward-to", metavar="URL", help="Forward this endpoint's captures here.")
    ep.add_argument(
        "--forward-mode",
        choices=("mirror", "proxy"),
        help="mirror: answer the sender and send a copy; proxy: the sender gets the app's answer.",
    )
    ep.add_argument(
        "--ca-file",
        metavar="FILE",
        help="Also trust this CA (PEM) when forwarding or replaying to https:// ('' resets).",
    )
    ep.add_argument(
        "--insecure",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Do not verify certificates when forwarding or replaying (marked on each one).",
    )
    ep.add_argument("--reset", action="store_true", help="Back to default settings first.")
    add_data_dir(ep)
    ep.set_defaults(func=cmd_endpoint)
