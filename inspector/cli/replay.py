"""``webhook-inspector replay``: send captured requests to your app again and record each.

It opens the store directly, so it works without a server — and with one running on the
same data dir (SQLite WAL: the CLI's writes queue behind the server's, up to the busy
timeout). Replays go from this process; a page that is open shows them on its next refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime

from inspector.cli.options import (
    INSECURE_WARNING,
    SECRET_ENV,
    CliError,
    Commands,
    add_command,
    add_data_dir,
    add_tls_options,
    int_in,
    open_store,
    tls_options,
)
from inspector.cli.terminal import echo
from inspector.endpoints import EndpointSettings
from inspector.errors import BadRequest, InspectorError, NotFound
from inspector.outbound import TlsOptions
from inspector.replay import MAX_TIMEOUT, Replayer, ReplayOptions
from inspector.settings import local_ca_file
from inspector.store import Store, endpoints, replays, requests


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.ids and not args.endpoint:
        raise CliError("Name the request ids to replay, or --endpoint E for all of one.")
    if args.concurrency < 1:
        raise CliError("--concurrency must be at least 1.")
    if not 0 < args.timeout <= MAX_TIMEOUT:
        raise CliError(f"--timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds.")
    tls = tls_options(args)
    if tls.insecure:
        echo(INSECURE_WARNING, file=sys.stderr, flush=True)
    store = open_store(args.data_dir, database=args.database)
    store.start()  # the writer thread: replays are recorded from the event loop
    try:
        return asyncio.run(_replay_all(store, args, tls))
    finally:
        store.close()


async def _replay_all(store: Store, args: argparse.Namespace, tls: TlsOptions) -> int:
    ids: list[int] = list(args.ids)
    if args.endpoint:
        ids += await store.read(replays.endpoint_ids, args.endpoint)
        if not ids:
            raise CliError(f"No requests for {args.endpoint}.")
    secret = args.secret or os.environ.get(SECRET_ENV) or None
    # Trusted for targets on this machine: the local CA of `serve --https` on this data dir.
    engine = Replayer(store, timeout=args.timeout, own_ca=local_ca_file(args.data_dir))
    given = tls if tls.ca_file or tls.insecure else None
    remembered: set[str] = set()
    slots = asyncio.Semaphore(args.concurrency)

    async def one(request_id: int) -> bool:
        async with slots:
            try:
                return await _replay_one(engine, request_id, args, secret, remembered, given)
            except InspectorError as exc:
                echo(f"#{request_id}  error: {exc.detail}", flush=True)
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
    tls: TlsOptions | None,
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
    options = ReplayOptions(url=url, resign=args.resign, timeout=args.timeout, tls=tls)
    result = await engine.replay(detail, options, settings.signature_config(secret), settings.tls)
    if url != settings.replay_to and name not in remembered:
        remembered.add(name)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        updated = settings.merged({"replay_to": url}).to_dict()
        await store.write(endpoints.put_endpoint_settings, name, updated, now)
    shown = f"#{request_id}  {result['method']} {result['url']}"
    if result["error"] is not None:
        echo(f"{shown}  ->  {result['error']}", flush=True)
        return False
    status = result["status"]
    how = [f"{result['elapsed_ms']:.1f} ms"]
    if result["tls"]:
        how.append(result["tls"])
    if result["insecure"]:
        how.append("certificate NOT verified (--insecure)")
    echo(f"{shown}  ->  {status}  ({', '.join(how)})", flush=True)
    return bool(status is not None and status < 400)


def register(sub: Commands) -> None:
    rep = add_command(
        sub,
        "replay",
        "Replay captured requests to your app and record each (no server needed).",
        "Send captured requests again, byte for byte (or re-signed), and record each replay. "
        "Exit status 1 if any got no answer or an error status (>= 400).",
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
        "--secret",
        metavar="S",
        help=f"Secret for --resign when the endpoint has none (default: ${SECRET_ENV}).",
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
        metavar="SECONDS",
        help="Seconds to wait for each answer (default: %(default)s).",
    )
    add_tls_options(rep, "target")
    add_data_dir(rep)
    rep.set_defaults(func=cmd_replay)
