"""``webhook-inspector serve``: run the capture server, the page and the API (and, with
``--https``, a TLS listener beside them)."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import ssl
import sys
from dataclasses import replace
from pathlib import Path

from inspector import __version__
from inspector.cli.options import CliError, Commands, add_command, add_settings, settings_from
from inspector.errors import InspectorError
from inspector.outbound.trust import check_ca_file
from inspector.settings import Settings
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
    import uvicorn

    from inspector import listeners
    from inspector.app import create_app
    from inspector.certificates import CertificateError

    settings = settings_from(args)
    check_tls_flags(settings)
    # Open (create, migrate) the store first: a store this version cannot use is refused
    # here with a clear message, not by a traceback from the server's start-up.
    store = Store(settings.store_location)
    store.open().close()
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
    if not is_loopback(settings.host):
        print(
            f"WARNING: listening on {settings.host}, reachable from other machines. Captured "
            "requests and the control API are exposed; the page answers only to loopback names "
            "and --allow-host.",
            file=sys.stderr,
        )
    if settings.insecure:
        print(
            "WARNING: --insecure: forwards and replays do not verify certificates.",
            file=sys.stderr,
        )
    print(f"webhook-inspector {__version__}")
    print(f"  page:     {base}/")
    print(f"  capture:  {base}/h/<endpoint>   (any method, any sub-path)")
    for listener in tls:
        secure = f"https://{url_host(settings.host)}:{listener.port}"
        made = listener.certificate
        print(f"  https:    {secure}/h/<endpoint>   (and the page, {secure}/)")
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
    server = listeners.Server(config, tls=tls)
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
