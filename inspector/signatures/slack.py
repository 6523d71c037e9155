"""Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{X-Slack-Request-Timestamp}:{body}``.

The timestamp is checked in both directions (Slack's own SDKs reject skew either way).
"""

from __future__ import annotations

from inspector.signatures.base import (
    HeaderView,
    Parsed,
    Scheme,
    decode_prefixed,
    encode,
    mac,
    parse_timestamp,
)
from inspector.signatures.config import SignatureConfig

TIMESTAMP = "X-Slack-Request-Timestamp"


class SlackScheme(Scheme):
    name = "slack"
    header = "X-Slack-Signature"
    detect = ("x-slack-signature",)
    tolerance = "both"

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        parsed.prefix = "v0="
        parsed.signed_prefix = None
        value = headers.one("x-slack-signature", parsed.header)
        parsed.raw.append(value)
        stamp = headers.one(TIMESTAMP.lower(), TIMESTAMP)
        parsed.stamp = stamp
        parsed.timestamp = parse_timestamp(stamp, TIMESTAMP)
        parsed.signed_prefix = b"v0:" + stamp.encode("ascii") + b":"
        parsed.signatures.append(decode_prefixed(value, parsed))

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        stamp = str(timestamp)
        digest = mac(self.key(secret), "sha256", f"v0:{stamp}:".encode("ascii"), body)
        return [(TIMESTAMP, stamp), (self.header, "v0=" + encode(digest, "hex"))]
