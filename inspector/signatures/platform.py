"""The platform's own scheme: ``X-Webhook-Signature: sha256=<hex>`` over the raw body."""

from __future__ import annotations

from inspector.signatures.base import HeaderView, Parsed, Scheme, decode_prefixed, encode, mac
from inspector.signatures.config import SignatureConfig


class PlatformScheme(Scheme):
    name = "platform"
    header = "X-Webhook-Signature"
    detect = ("x-webhook-signature",)

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        parsed.prefix = "sha256="
        value = headers.one("x-webhook-signature", parsed.header)
        parsed.raw.append(value)
        parsed.signatures.append(decode_prefixed(value, parsed))

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), "sha256", b"", body)
        return [(self.header, "sha256=" + encode(digest, "hex"))]
