"""``webhook-inspector serve``: run the capture server, the page and the API."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import secrets
import socket
import sys
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from inspector import __version__
from inspector.cli.options import CliError, add_command, add_settings, settings_from
from inspector.errors import StoreUnavailable
from inspector.settings import Settings
from inspector.store.disk import check_disk


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


def token_in_effect(settings: Settings) -> Settings:
    """The settings with the token ``serve`` will use: the one given; a fresh one when bound
    to a non-loopback address without ``--no-token`` (never an open control API on a network);
    else none."""
    if settings.token is not None and settings.no_token:
        raise CliError("--token and --no-token contradict each other: give one of them.")
    if settings.token is None and not settings.no_token and not is_loopback(settings.host):
        return replace(settings, token=secrets.token_urlsafe(24))
    return settings


def page_url(base: str, settings: Settings, given: str | None) -> str:
    """The page's URL to print: with a generated token in it (like Jupyter), since nobody
    else knows it; a token the user chose stays off the terminal and out of logs."""
    if settings.token is None:
        return f"{base}/"
    if given:
        return f"{base}/   (token required: the one given)"
    return f"{base}/?token={quote(settings.token)}"


def warn_if_exposed(settings: Settings) -> None:
    if is_loopback(settings.host):
        return
    if settings.token is not None:
        print(
            f"Listening on {settings.host}, reachable from other machines: captures are open "
            "to any sender; the page, /api and the streams require the token.",
            file=sys.stderr,
        )
        return
    print(
        "\n".join(
            [
                "WARNING " + "!" * 70,
                f"WARNING: --no-token: listening on {settings.host} with NO token. Anyone who",
                "WARNING: can reach this port can read every capture, change endpoints, replay",
                "WARNING: requests to any address and send deliveries. Use this only behind",
                "WARNING: your own authentication.",
                "WARNING " + "!" * 70,
            ]
        ),
        file=sys.stderr,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    # Here, not at the top: the server stack costs ~0.6 s to import, which `list` and `show`
    # need not pay.
    from inspector.app import create_app
    from inspector.connections import build_server, descriptor_limit

    settings = token_in_effect(settings_from(args))
    try:
        # Room for one capture of the largest size, and a little for SQLite's own pages.
        check_disk(settings.db_path, settings.max_body + (1 << 20))
    except StoreUnavailable as exc:
        raise CliError(str(exc.detail)) from None
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
    warn_if_exposed(settings)
    print(f"webhook-inspector {__version__}")
    print(f"  page:     {page_url(base, settings, args.token)}")
    if settings.token and settings.host in ("0.0.0.0", "::", ""):
        network = f"http://{socket.gethostname()}:{port}"
        print(f"  network:  {page_url(network, settings, args.token)}")
    print(f"  capture:  {base}/h/<endpoint>   (any method, any sub-path)")
    print(f"  store:    {settings.db_path}")
    print("  try:")
    print(
        f"    curl -X POST '{base}/h/demo' -H 'Content-Type: application/json' "
        '-d \'{"hello": "world"}\''
    )
    print("  Ctrl-C to stop.", flush=True)
    server = build_server(
        create_app(settings),
        settings,
        descriptors=descriptor_limit(raise_to_hard=True),
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
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
