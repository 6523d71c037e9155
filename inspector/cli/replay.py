"""Replaying and moving captures from a terminal: ``replay``, ``export``, ``import``.

All three open the store directly, so they work without a server — and with one running on
the same data dir (SQLite WAL: the CLI's writes queue behind the server's, up to the busy
timeout). ``replay`` sends from this process and records each replay in the store; a page
that is open shows them on its next refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inspector import transfer
from inspector.cli.options import CliError, add_data_dir, int_in, open_store
from inspector.endpoints import EndpointSettings
from inspector.errors import BadRequest, InspectorError, NotFound
from inspector.replay import MAX_TIMEOUT, Replayer, ReplayOptions
from inspector.store import Store, endpoints, replays, requests

# -- replay ----------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.endpoint:
        raise CliError("Name the request ids to replay, or --endpoint E for all of one.")
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1.")
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise CliError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds.")
    store = open_store(Path(args.data_dir).expanduser())
    store.start()  # the writer thread: replays are recorded from the event loop
    try:
        return asyncio.run(_replay_all(store, args))
    finally:
        store.close()


async def _replay_all(store: Store, args: argparse.Namespace) -> int:
    ids: list[int] = list(args.ids)
    if args.endpoint:
        ids += await store.read(replays.endpoint_ids, args.endpoint)
        if not ids:
            raise CliError(f"No requests for {args.endpoint}.")
    secret = args.secret or os.environ.get("WEBHOOK_SECRET") or None
    engine = Replayer(store, timeout=args.timeout)
    remembered: set[str] = set()
    slots = asyncio.Semaphore(args.concurrency)

    async def one(request_id: int) -> bool:
        async with slots:
            try:
                return await _replay_one(engine, request_id, args, secret, remembered)
            except InspectorError as exc:
                print(f"#{request_id}  error: {exc.detail}", flush=True)
                return False

    try:
        if args.concurrency == 1:  # in order, one at a time
            results = [await one(request_id) for request_id in ids]
        else:
            results = list(await asyncio.gather(*(one(request_id) for request_id in ids)))
    finally:
        await engine.aclose()
    failed = results.count(False)
    if len(ids) > 1:
        print(f"{len(ids) - failed} of {len(ids)} answered without an error status.")
    return 1 if failed else 0


async def _replay_one(
    engine: Replayer,
    request_id: int,
    args: argparse.Namespace,
    secret: str | None,
    remembered: set[str],
) -> bool:
    store = engine.store
    detail = await store.read(requests.get_request, request_id)
    if detail is None:
        raise NotFound(f"No request {request_id}.")
    name = detail["endpoint"]
    stored = await store.read(endpoints.get_endpoint_settings, name) or {}
    settings = EndpointSettings.from_dict(stored, max_delay=float("inf"))
    url = args.to or settings.replay_to
    if not url:
        raise BadRequest(f"give --to URL (nothing remembered for endpoint {name} yet).")
    options = ReplayOptions(url=url, resign=args.resign, timeout=args.timeout)
    result = await engine.replay(detail, options, settings.signature_config(secret))
    if url != settings.replay_to and name not in remembered:
        remembered.add(name)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        updated = settings.merged({"replay_to": url}).to_dict()
        await store.write(endpoints.put_endpoint_settings, name, updated, now)
    shown = f"#{request_id}  {result['method']} {result['url']}"
    if result["error"] is not None:
        print(f"{shown}  ->  {result['error']}", flush=True)
        return False
    status = result["status"]
    print(f"{shown}  ->  {status}  ({result['elapsed_ms']:.1f} ms)", flush=True)
    return bool(status is not None and status < 400)


# -- export and import -----------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for rec in transfer.records_sync(store, args.endpoint):
            count += 1
            yield rec

    try:
        if args.output in (None, "-"):
            out = sys.stdout.buffer
            for chunk in transfer.export_chunks(counted(), args.format):
                out.write(chunk)
            out.flush()
        else:
            try:
                with open(Path(args.output).expanduser(), "wb") as fh:
                    for chunk in transfer.export_chunks(counted(), args.format):
                        fh.write(chunk)
            except OSError as exc:
                raise CliError(f"Cannot write {args.output}: {exc.strerror or exc}.") from None
    finally:
        store.close()
    where = "stdout" if args.output in (None, "-") else args.output
    print(f"Exported {count} request(s) to {where} ({args.format}).", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser(), must_exist=False)
    try:
        if args.file == "-":
            ids = transfer.import_sync(store, sys.stdin.buffer, args.endpoint)
        else:
            try:
                with open(Path(args.file).expanduser(), "rb") as fh:
                    ids = transfer.import_sync(store, fh, args.endpoint)
            except OSError as exc:
                raise CliError(f"Cannot read {args.file}: {exc.strerror or exc}.") from None
    finally:
        store.close()
    span = f" as #{ids[0]}..#{ids[-1]}" if ids else ""
    print(f"Imported {len(ids)} request(s){span}.")
    return 0


def register(sub: Any) -> None:
    rep = sub.add_parser(
        "replay",
        help="Replay captured requests to your app (no server needed).",
        description="Send captured requests again, byte for byte (or re-signed), and record "
        "each replay. Exit status 1 if any got no answer or an error status (>= 400).",
    )
    rep.add_argument(
        "ids", nargs="*", type=int_in(1, 2**62), metavar="ID", help="Request ids, in order."
    )
    rep.add_argument(
        "--to", metavar="URL", help="Target URL (default: the endpoint's last replay target)."
    )
    rep.add_argument(
        "--endpoint", metavar="E", help="Replay all of E's requests, oldest first (after IDs)."
    )
    rep.add_argument(
        "--resign",
        action="store_true",
        help="Sign again with the endpoint's secret and scheme (fresh timestamp and id).",
    )
    rep.add_argument(
        "--secret", help="Secret for --resign when the endpoint has none (WEBHOOK_SECRET)."
    )
    rep.add_argument(
        "--concurrency",
        type=int_in(1, 256),
        default=1,
        metavar="N",
        help="Replays in flight at once (default: %(default)s, which keeps the order).",
    )
    rep.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="Seconds to wait for each answer (default: %(default)s).",
    )
    add_data_dir(rep)
    rep.set_defaults(func=cmd_replay)

    exp = sub.add_parser(
        "export", help="Export captured requests as JSON Lines or HAR (no server needed)."
    )
    exp.add_argument("--endpoint", metavar="E", help="Only this endpoint.")
    exp.add_argument(
        "--format",
        choices=transfer.FORMATS,
        default="jsonl",
        help="jsonl: byte-exact, re-importable (default); har: for browser dev tools.",
    )
    exp.add_argument("-o", "--output", metavar="FILE", help="Write here (default: stdout).")
    add_data_dir(exp)
    exp.set_defaults(func=cmd_export)

    imp = sub.add_parser(
        "import", help="Import a JSON Lines export as new requests (no server needed)."
    )
    imp.add_argument("file", metavar="FILE", help="A JSON Lines export ('-' for stdin).")
    imp.add_argument("--endpoint", metavar="E", help="Put every request in endpoint E.")
    add_data_dir(imp)
    imp.set_defaults(func=cmd_import)
