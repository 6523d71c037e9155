"""The command line: parse -> Settings -> create_app / store / client call.

A thin shell: each command is a function of its parsed arguments returning an exit code.
``InspectorError`` and ``CliError`` become a message on stderr and exit status here only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from inspector import __version__, queries
from inspector.errors import InspectorError
from inspector.settings import MiB, Settings, default_data_dir
from inspector.store import Store

Command = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


# -- helpers ---------------------------------------------------------------------------------


def open_store(data_dir: Path, *, must_exist: bool = True) -> Store:
    path = data_dir / "inspector.db"
    if must_exist and not path.exists():
        raise CliError(
            f"No store at {path} yet: start `webhook-inspector serve` and capture something."
        )
    return Store(path).open()


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "localhost"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


# -- serve -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from inspector.app import create_app

    settings = Settings(
        host=args.host,
        port=args.port,
        data_dir=Path(args.data_dir).expanduser(),
        max_body=args.max_body,
        retention=args.retention,
        allow_hosts=tuple(args.allow_host or ()),
        secret=args.secret or os.environ.get("WEBHOOK_SECRET") or None,
        max_delay=args.max_delay,
        forward_to=args.forward_to,
    )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host.strip("[]"), settings.port))
    except OSError as exc:
        sock.close()
        raise CliError(
            f"Cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
            "Is another inspector running? Try --port 0 for a free port."
        ) from None
    port = sock.getsockname()[1]
    base = f"http://{url_host(settings.host)}:{port}"
    if not is_loopback(settings.host):
        print(
            f"WARNING: listening on {settings.host}, reachable from other machines. Captured "
            "requests and the control API are exposed; the page answers only to loopback names "
            "and --allow-host.",
            file=sys.stderr,
        )
    print(f"webhook-inspector {__version__}")
    print(f"  page:     {base}/")
    print(f"  capture:  {base}/h/<endpoint>   (any method, any sub-path)")
    print(f"  store:    {settings.db_path}")
    print("  try:")
    print(
        f"    curl -X POST '{base}/h/demo' -H 'Content-Type: application/json' "
        '-d \'{"hello": "world"}\''
    )
    print("  Ctrl-C to stop.", flush=True)
    config = uvicorn.Config(
        create_app(settings),
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises Ctrl-C after its graceful shutdown has finished.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    print("webhook-inspector stopped.", flush=True)
    return 0


# -- list / show -----------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    try:
        flt = queries.RequestFilter(endpoint=args.endpoint)
        items, _ = store.read_sync(queries.list_requests, flt, args.limit, None)
    finally:
        store.close()
    if not items:
        print(
            "No requests captured yet."
            if not args.endpoint
            else f"No requests for {args.endpoint}."
        )
        return 0
    rows = [["ID", "RECEIVED (UTC)", "ENDPOINT", "METHOD", "PATH", "SIZE", "ANSWER", "SIGNATURE"]]
    for it in items:
        answer = it["response"]["status"]
        if it["response"]["in_progress"]:
            answer = "stalling"
        elif it["response"]["dropped"]:
            answer = "dropped"
        sig = it["signature"]["status"] if it["signature"] else "-"
        path = it["path"] + (f"?{it['query']}" if it["query"] else "")
        rows.append(
            [
                str(it["id"]),
                it["received_at"].replace("T", " ")[:23],
                it["endpoint"],
                it["method"],
                path if len(path) <= 48 else path[:45] + "...",
                human_size(it["size"]) + (" (truncated)" if it["truncated"] else ""),
                str(answer if answer is not None else "-"),
                sig,
            ]
        )
    print_table(rows)
    return 0


def print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_show(args: argparse.Namespace) -> int:
    store = open_store(Path(args.data_dir).expanduser())
    try:
        found = store.read_sync(queries.get_request, args.id)
    finally:
        store.close()
    if found is None:
        raise CliError(f"No request {args.id}.")
    body = base64.b64decode(found["body_base64"])
    if args.raw:
        sys.stdout.buffer.write(body)
        sys.stdout.buffer.flush()
        return 0
    target = found["path"] + (f"?{found['query']}" if found["query"] else "")
    print(f"#{found['id']}  {found['method']} {target}")
    print(f"endpoint  {found['endpoint']}")
    print(f"received  {found['received_at']}  from {found['client'] or '?'}")
    print(f"size      {human_size(found['size'])}  {found['content_type'] or ''}")
    if found["note"]:
        print(f"note      {found['note']}")
    response = found["response"]
    print(
        f"answer    {response['status'] if response['status'] is not None else '-'}"
        f"  in {response['ms'] or 0:.1f} ms"
    )
    if found["signature"]:
        sig = found["signature"]
        print(f"signature {sig['status']} ({sig['scheme']}): {sig['reason']}")
        if sig.get("diagnosis"):
            print(f"          doctor: {sig['diagnosis']}")
    print(f"event     {found['event_key']}  attempt {found['attempt']}")
    print()
    for name, value in found["headers"]:
        print(f"{name}: {value}")
    print()
    print(render_body(body))
    return 0


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def render_body(body: bytes, limit: int = 64 * 1024) -> str:
    """Text if it is printable UTF-8, else a hex dump; cut at ``limit`` bytes."""
    shown = body[:limit]
    more = f"\n... ({len(body) - limit} more bytes; use --raw)" if len(body) > limit else ""
    try:
        text = shown.decode("utf-8")
    except UnicodeDecodeError:
        return hexdump(shown) + more
    return (hexdump(shown) if _CONTROL.search(text) else text) + more


def hexdump(data: bytes) -> str:
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexpart = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexpart:<47}  {text}")
    return "\n".join(lines)


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="webhook-inspector",
        description="A local webhook inspector and tunnel-free test server.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    defaults = Settings.__dataclass_fields__

    def add_data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--data-dir",
            default=str(default_data_dir()),
            help="Directory of the SQLite store (default: %(default)s; "
            "or set WEBHOOK_INSPECTOR_DATA).",
        )

    serve = sub.add_parser("serve", help="Run the inspector (capture server, page, API).")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help=defaults["host"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=8765,
        help=defaults["port"].metadata["help"] + " (default: %(default)s)",
    )
    add_data_dir(serve)
    serve.add_argument(
        "--max-body",
        type=int,
        default=10 * MiB,
        help=defaults["max_body"].metadata["help"] + " (default: %(default)s = 10 MiB)",
    )
    serve.add_argument(
        "--retention",
        type=int,
        default=10_000,
        help=defaults["retention"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help=defaults["allow_hosts"].metadata["help"],
    )
    serve.add_argument("--secret", help=defaults["secret"].metadata["help"])
    serve.add_argument(
        "--max-delay",
        type=float,
        default=600.0,
        help=defaults["max_delay"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument("--forward-to", metavar="URL", help=defaults["forward_to"].metadata["help"])
    serve.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument("--access-log", action="store_true", help="Log every request (slower).")
    serve.set_defaults(func=cmd_serve)

    lst = sub.add_parser("list", help="List captured requests, newest first (no server needed).")
    lst.add_argument("--endpoint", help="Only this endpoint.")
    lst.add_argument("--limit", type=int, default=50, help="How many (default: %(default)s).")
    add_data_dir(lst)
    lst.set_defaults(func=cmd_list)

    show = sub.add_parser("show", help="Show one captured request (no server needed).")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="Write the exact body bytes to stdout.")
    add_data_dir(show)
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InspectorError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
