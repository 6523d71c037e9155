"""Replay, mirror and proxy: send a captured request to your own app, exactly.

    replayer = Replayer(store, timeout=30.0)
    result = await replayer.replay(detail, ReplayOptions(url="http://localhost:3000/hook"), None)

``rebuild`` builds the outgoing request from the capture's raw parts (and re-signs it),
``replayer`` sends it through ``inspector.outbound`` (the address guard, the exact wire, the
one error describer) and records the exchange (replay, mirror, proxy).
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
from inspector.replay.replayer import Replayer

__all__ = [
    "MAX_TIMEOUT",
    "Outgoing",
    "ReplayOptions",
    "Replayer",
    "Source",
    "build_request",
    "compose_target",
    "relay_headers",
    "resign",
    "strip_hop_by_hop",
]
