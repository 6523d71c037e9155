"""The generic ``hmac`` scheme: header, algorithm, encoding and prefix come from the config."""

from __future__ import annotations

from collections.abc import Collection

from inspector.signatures.base import HeaderView, Parsed, Scheme, decode_prefixed, encode, mac
from inspector.signatures.config import SignatureConfig


class GenericScheme(Scheme):
    name = "hmac"
    header = "X-Signature"

    def display(self, config: SignatureConfig) -> str:
        return config.hmac_header

    def present(self, names: Collection[str], config: SignatureConfig) -> bool:
        return config.hmac_header.lower() in names

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        parsed.algorithm = config.hmac_algorithm
        parsed.encoding = config.hmac_encoding
        parsed.prefix = config.hmac_prefix
        value = headers.one(config.hmac_header.lower(), parsed.header)
        parsed.raw.append(value)
        parsed.signatures.append(decode_prefixed(value, parsed))

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), config.hmac_algorithm, b"", body)
        value = config.hmac_prefix + encode(digest, config.hmac_encoding)
        return [(config.hmac_header, value)]
