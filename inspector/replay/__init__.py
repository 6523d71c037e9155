"""Replay, mirror and proxy: send a captured request to your own app, exactly.

    engine = ReplayEngine(store, timeout=30.0)
    result = await engine.replay(detail, ReplayOptions(url="http://localhost:3000/hook"), None)

``request`` builds the outgoing request from the capture's raw parts (and re-signs it),
``targets`` decides where it may go and is the transport that enforces it at connect time,
``engine`` sends it with httpx and records the exchange (replay, mirror, proxy).
"""

from __future__ import annotations

from inspector.replay.engine import Exchange, ReplayEngine, describe
from inspector.replay.request import (
    MAX_TIMEOUT,
    Outgoing,
    ReplayOptions,
    Source,
    build_request,
    compose_target,
    relay_headers,
    resign,
    strip_hop_by_hop,
)
from inspector.replay.targets import (
    GuardedBackend,
    GuardedTransport,
    TargetRefused,
    literal_address,
    parse_ipv4_number,
    parse_target,
    refusal,
)

__all__ = [
    "MAX_TIMEOUT",
    "Exchange",
    "GuardedBackend",
    "GuardedTransport",
    "Outgoing",
    "ReplayEngine",
    "ReplayOptions",
    "Source",
    "TargetRefused",
    "build_request",
    "compose_target",
    "describe",
    "literal_address",
    "parse_ipv4_number",
    "parse_target",
    "refusal",
    "relay_headers",
    "resign",
    "strip_hop_by_hop",
]
