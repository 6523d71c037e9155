"""``webhook-inspector serve``: run the capture server, the page and the API."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import socket
import sys
from pathlib import Path
from typing import Any

from inspector import __version__
from inspector.cli.options import CliError, add_data_dir, int_in, positive_float
from inspector.settings import MiB, Settings


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
        forward_mode=args.forward_mode,
    )
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say they are
    # TCP, and without it every response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


def register(sub: Any) -> None:
    defaults = Settings.__dataclass_fields__
    serve = sub.add_parser("serve", help="Run the inspector (capture server, page, API).")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help=defaults["host"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        type=int_in(0, 65535),
        default=8765,
        help=defaults["port"].metadata["help"] + " (default: %(default)s)",
    )
    add_data_dir(serve)
    serve.add_argument(
        "--max-body",
        type=int_in(0),
        default=10 * MiB,
        help=defaults["max_body"].metadata["help"] + " (default: %(default)s = 10 MiB)",
    )
    serve.add_argument(
        "--retention",
        type=int_in(1),
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
        type=positive_float,
        default=600.0,
        help=defaults["max_delay"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument("--forward-to", metavar="URL", help=defaults["forward_to"].metadata["help"])
    serve.add_argument(
        "--forward-mode",
        choices=["mirror", "proxy"],
        default="mirror",
        help=defaults["forward_mode"].metadata["help"] + " (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument("--access-log", action="store_true", help="Log every request (slower).")
    serve.set_defaults(func=cmd_serve)
