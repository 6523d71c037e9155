"""``webhook-inspector serve``: run the capture server, the page and the API (and, with
``--https``, a TLS listener beside them)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import ipaddress
import secrets
import socket
import ssl
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from inspector import __version__
from inspector.cli.options import CliError, Commands, add_command, add_settings, settings_from
from inspector.errors import InspectorError, StoreUnavailable
from inspector.outbound.trust import check_ca_file
from inspector.settings import Settings
from inspector.store import Store
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
        return replace(settings, token=new_token())
    return settings


def new_token() -> str:
    """32 URL-safe characters (192 random bits), never starting with "-": pasted after
    ``--token``, one that did would read as an option ("expected one argument")."""
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


def page_url(base: str, settings: Settings, given: str | None) -> str:
    """The page's URL to print: with a generated token in it (like Jupyter), since nobody
    else knows it; a token the user chose stays off the terminal and out of logs."""
    if settings.token is None or given:
        return f"{base}/"
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


def check_tls_flags(settings: Settings) -> None:
    """``--cert`` and ``--key`` go together, with ``--https``; ``--ca-file`` must load."""
    if (settings.cert is None) != (settings.key is None):
        raise CliError("--cert and --key go together: the certificate and its private key.")
    if settings.cert is not None and not settings.https:
        raise CliError("--cert and --key are for the HTTPS listener: add --https.")
    if settings.ca_file is not None:
        check_ca_file(str(settings.ca_file), "--ca-file")


def trust_lines(ca_file: Path, base: str) -> list[str]:
    """How to make clients trust the local CA, in a few lines."""
    return [
        f"  CA:       {ca_file}   (trust it once; also at {base}/api/tls/ca.crt)",
        f"    curl:     curl --cacert {ca_file} https://...",
        f"    Python:   SSL_CERT_FILE={ca_file} (ssl, httpx) or REQUESTS_CA_BUNDLE={ca_file}",
        f"    Node:     NODE_EXTRA_CA_CERTS={ca_file}",
        "    browsers and everything else: add ca.crt to the OS trust store "
        "(see the README, 'HTTPS')",
    ]


def cmd_serve(args: argparse.Namespace) -> int:
    # Here, not at the top: the server stack (and the cryptography behind --https) costs
    # ~0.6 s to import, which `list` and `show` need not pay.
    from inspector import listeners, stack
    from inspector.app import create_app
    from inspector.certificates import CertificateError
    from inspector.connections import descriptor_limit

    settings = token_in_effect(settings_from(args))
    check_tls_flags(settings)
    running = stack.choose()
    # Open (create, migrate) the store first: a store this version cannot use, a full disk or
    # a database out of reach is refused here with one sentence, not by a traceback from the
    # server's start-up.
    store = Store(settings.store_location, search_index=not settings.no_search_index)
    try:
        if settings.database is None:
            # Room for one capture of the largest size, and a little for SQLite's own pages.
            check_disk(settings.db_path, settings.max_body + (1 << 20))
        store.open().close()
    except StoreUnavailable as exc:
        raise CliError(str(exc.detail)) from None
    try:
        sock = listeners.bind(settings.host, settings.port)
    except OSError as exc:
        raise CliError(
            f"Cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
            "Is another inspector running? Try --port 0 for a free port."
        ) from None
    tls: list[listeners.TlsListener] = []
    if settings.https:
        try:
            tls_sock = listeners.bind(settings.host, settings.https_port)
        except OSError as exc:
            sock.close()
            raise CliError(
                f"Cannot listen for HTTPS on {settings.host}:{settings.https_port}: "
                f"{exc.strerror}. Try --https-port 0 for a free port."
            ) from None
        try:
            context, made = listeners.tls_context(settings)
        except (CertificateError, OSError, ssl.SSLError) as exc:
            sock.close()
            tls_sock.close()
            raise CliError(_tls_problem(settings, exc)) from None
        tls.append(listeners.TlsListener(tls_sock, context, made))
    port = sock.getsockname()[1]
    settings = replace(settings, port=port, https_port=tls[0].port if tls else settings.https_port)
    base = f"http://{url_host(settings.host)}:{port}"
    warn_if_exposed(settings)
    if settings.insecure:
        print(
            "WARNING: --insecure: forwards and replays do not verify certificates.",
            file=sys.stderr,
        )
    print(f"webhook-inspector {__version__}")
    chosen = "   (token required: the one given)" if settings.token and args.token else ""
    print(f"  page:     {page_url(base, settings, args.token)}{chosen}")
    if settings.token and settings.host in ("0.0.0.0", "::", ""):
        network = f"http://{socket.gethostname()}:{port}"
        print(f"  network:  {page_url(network, settings, args.token)}")
    print(f"  capture:  {base}/h/<endpoint>   (any method, any sub-path)")
    for listener in tls:
        secure = f"https://{url_host(settings.host)}:{listener.port}"
        made = listener.certificate
        print(f"  https:    {secure}/h/<endpoint>")
        print(f"            and the page, {page_url(secure, settings, args.token)}")
        if made is None:
            print(f"  cert:     {settings.cert} (yours)")
        else:
            renewed = " (issued now)" if made.issued else ""
            print(f"  cert:     {', '.join(made.names)}; until {made.not_after:%Y-%m-%d}{renewed}")
            if made.ca_created:
                print("  A new local CA was made: trust its ca.crt (below) once.")
            for line in trust_lines(made.ca_file, base):
                print(line)
    print(f"  store:    {store.description}")
    print(f"  server:   {running.describe()}")
    print("  try:")
    print(
        f"    curl -X POST '{base}/h/demo' -H 'Content-Type: application/json' "
        '-d \'{"hello": "world"}\''
    )
    print("  Ctrl-C to stop.", flush=True)
    server = listeners.build_server(
        create_app(settings),
        settings,
        tls=tls,
        descriptors=descriptor_limit(raise_to_hard=True),
        http=running.protocol(),
        loop=running.loop,
        ws="none",  # no WebSocket routes: an Upgrade request to /h/ is captured as HTTP
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    # Everything built so far (modules, the app) lives as long as the process: out of the
    # cyclic collector's sight, a full collection scans only what requests leave behind
    # (one took 100+ ms, stalling every thread, with all of it in view).
    gc.collect()
    gc.freeze()
    # uvicorn re-raises Ctrl-C after its graceful shutdown has finished.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    print("webhook-inspector stopped.", flush=True)
    return 0


def _tls_problem(settings: Settings, exc: Exception) -> str:
    if isinstance(exc, InspectorError):
        return str(exc.detail)
    reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
    if settings.cert is not None:
        return (
            f"Cannot use --cert {settings.cert} --key {settings.key}: {reason}. Both must be PEM "
            "files: the certificate (with its chain) and its private key, unencrypted."
        )
    return f"Cannot set up HTTPS in {settings.tls_dir}: {reason}."


def register(sub: Commands) -> None:
    serve = add_command(
        sub,
        "serve",
        "Run the inspector: capture server, live page and API (Ctrl-C stops it).",
        "Run the inspector: capture any request to /h/<endpoint>, show it live on the page and "
        "serve the JSON API; with --https, over TLS too. Every option below is a field of "
        "inspector.settings.Settings.",
    )
    add_settings(serve)
    serve.set_defaults(func=cmd_serve)
