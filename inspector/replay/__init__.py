"""Replay, mirror and proxy: send a captured request to your own app, exactly.

    replayer = Replayer(store, timeout=30.0)
    result = await replayer.replay(detail, ReplayOptions(url="http://localhost:3000/hook"), None)

``rebuild`` builds the outgoing request from the capture's raw parts (and re-signs it),
``targets`` decides where it may go and is the transport that enforces it at connect time,
``replayer`` sends it with httpx and records the exchange (replay, mirror, proxy).
"""

from __future__ import annotations

from inspector.replay.rebuild import (
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
from inspector.replay.replayer import Exchange, Replayer, describe
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
    "ReplayOptions",
    "Replayer",
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
