"""Shopify: ``X-Shopify-Hmac-Sha256: <base64>`` of HMAC-SHA256 over the raw body."""

from __future__ import annotations

from inspector.signatures.base import HeaderView, Parsed, Scheme, decode_prefixed, encode, mac
from inspector.signatures.config import SignatureConfig


class ShopifyScheme(Scheme):
    name = "shopify"
    header = "X-Shopify-Hmac-Sha256"
    detect = ("x-shopify-hmac-sha256",)

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        parsed.encoding = "base64"
        value = headers.one("x-shopify-hmac-sha256", parsed.header)
        parsed.raw.append(value)
        parsed.signatures.append(decode_prefixed(value, parsed))

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), "sha256", b"", body)
        return [(self.header, encode(digest, "base64"))]
