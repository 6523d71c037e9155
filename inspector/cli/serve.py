"""``webhook-inspector serve``: run the capture server, the page and the API."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import socket
import sys
from typing import Any

from inspector import __version__
from inspector.cli.options import CliError, add_command, add_settings, settings_from
from inspector.store import Store


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
    # Here, not at the top: the server stack costs ~0.6 s to import, which `list` and `show`
    # need not pay.
    import uvicorn

    from inspector.app import create_app

    settings = settings_from(args)
    # Open (create, migrate) the store first: a store this version cannot use is refused
    # here with a clear message, not by a traceback from the server's start-up.
    store = Store(settings.store_location)
    store.open().close()
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
    print(f"  store:    {store.description}")
    print("  try:")
    print(
        f"    curl -X POST '{base}/h/demo' -H 'Content-Type: application/json' "
        '-d \'{"hello": "world"}\''
    )
    print("  Ctrl-C to stop.", flush=True)
    config = uvicorn.Config(
        create_app(settings),
        log_level=settings.log_level,
        access_log=settings.access_log,
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
    serve = add_command(
        sub,
        "serve",
        "Run the inspector: capture server, live page and API (Ctrl-C stops it).",
        "Run the inspector: capture any request to /h/<endpoint>, show it live on the page and "
        "serve the JSON API. Every option below is a field of inspector.settings.Settings.",
    )
    add_settings(serve)
    serve.set_defaults(func=cmd_serve)
