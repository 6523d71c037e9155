"""Outbound HTTP: the one path every request the inspector sends goes through.

Replay, mirror and proxy (``inspector.replay``), delivery attempts (``inspector.sender``)
and the receiver check (``inspector.check``) all send with it:

    client = open_client(keepalive=0)
    exchange = await send(client, client.build_request("POST", url, content=body),
                          timeout=30.0, cap=64 * 1024)
    exchange.status, exchange.error  # 200, None -- or None, "connection refused: ..."

* ``guard`` — where a request may go: ``parse_target`` refuses link-local and cloud-metadata
  hosts in every spelling; ``GuardedBackend`` resolves, checks and pins the address it
  connects to.
* ``transport`` — ``open_client``, the one place outbound clients are made (with their TLS
  settings: a pool and an SSL context per ``TlsOptions``); ``GuardedTransport`` sends the raw
  request-target; ``exact_request`` builds a request that goes on the wire exactly as given.
* ``trust`` — which certificates are trusted: ``TlsOptions`` (``ca_file``, ``insecure``),
  the SSL contexts made from them, the local CA trusted for targets on this machine.
* ``exchange`` — ``send``: one exchange within a timeout, the answer read up to a cap, the
  result an ``Exchange``.
* ``failure`` — ``describe``: one sentence per kind of failure, the same for every caller;
  a TLS failure names its cause and what to do (``tls_failure``).
"""

from __future__ import annotations

from inspector.outbound.exchange import Exchange, read_capped, send
from inspector.outbound.failure import (
    BROKEN,
    Failure,
    Kind,
    describe,
    redirect,
    tls_failure,
    too_large,
    where,
)
from inspector.outbound.guard import (
    MAX_URL,
    GuardedBackend,
    NameNotResolved,
    Resolver,
    TargetRefused,
    address_refusal,
    embedded_ipv4,
    literal_address,
    parse_ipv4_number,
    parse_target,
    refusal,
    resolve_host,
)
from inspector.outbound.transport import TARGET, TLS, GuardedTransport, exact_request, open_client
from inspector.outbound.trust import (
    VERIFY,
    CaFileError,
    TlsOptions,
    check_ca_file,
    check_insecure,
    client_context,
    self_target,
)

__all__ = [
    "BROKEN",
    "MAX_URL",
    "TARGET",
    "TLS",
    "VERIFY",
    "CaFileError",
    "Exchange",
    "Failure",
    "GuardedBackend",
    "GuardedTransport",
    "Kind",
    "NameNotResolved",
    "Resolver",
    "TargetRefused",
    "TlsOptions",
    "address_refusal",
    "check_ca_file",
    "check_insecure",
    "client_context",
    "describe",
    "embedded_ipv4",
    "exact_request",
    "literal_address",
    "open_client",
    "parse_ipv4_number",
    "parse_target",
    "read_capped",
    "redirect",
    "refusal",
    "resolve_host",
    "self_target",
    "send",
    "tls_failure",
    "too_large",
    "where",
]
