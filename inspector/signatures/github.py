"""GitHub: ``X-Hub-Signature-256: sha256=<hex>``; legacy ``X-Hub-Signature: sha1=<hex>``.

GitHub sends both; the SHA-1 header is only read when the SHA-256 one is absent.
"""

from __future__ import annotations

from inspector.signatures.base import HeaderView, Parsed, Scheme, decode_prefixed, encode, mac
from inspector.signatures.config import SignatureConfig


class GitHubScheme(Scheme):
    name = "github"
    header = "X-Hub-Signature-256"
    detect = ("x-hub-signature-256", "x-hub-signature")

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        if "x-hub-signature-256" in headers:
            parsed.prefix = "sha256="
            value = headers.one("x-hub-signature-256", parsed.header)
        else:
            parsed.header, parsed.algorithm, parsed.prefix = "X-Hub-Signature", "sha1", "sha1="
            value = headers.one("x-hub-signature", parsed.header)
        parsed.raw.append(value)
        parsed.signatures.append(decode_prefixed(value, parsed))

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), "sha256", b"", body)
        return [(self.header, "sha256=" + encode(digest, "hex"))]
