"""Standard Webhooks (and Svix): ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64> [v1,<base64> ...]`` over ``{id}.{timestamp}.{body}``.

The key is the base64-decoded secret after an optional ``whsec_``. A secret that is not
valid base64 is used as UTF-8 bytes instead (the doctor points this out on failure).
Versions other than ``v1`` (``v1a`` is asymmetric, ``v2`` future) are skipped, and so is a
``v1`` entry that does not decode while another does (any entry may match). The
``svix-*`` header names are accepted the same way.
"""

from __future__ import annotations

from inspector.signatures.base import (
    MAX_SIGNATURES,
    HeaderView,
    Malformed,
    Parsed,
    Scheme,
    decode_entries,
    encode,
    latin1,
    mac,
    parse_timestamp,
    preview,
    whsec_bytes,
)
from inspector.signatures.config import SignatureConfig


class StandardScheme(Scheme):
    name = "standard"
    header = "webhook-signature"
    detect = ("webhook-signature", "svix-signature")
    tolerance = "both"
    decodes_whsec = True

    def key(self, secret: str) -> bytes:
        decoded = whsec_bytes(secret)
        if decoded is not None:
            return decoded
        return secret.removeprefix("whsec_").encode("utf-8", "surrogatepass")

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        family = "webhook" if "webhook-signature" in headers else "svix"
        parsed.header = f"{family}-signature"
        parsed.encoding, parsed.prefix, parsed.signed_prefix = "base64", "v1,", None
        value = headers.one(parsed.header, parsed.header)
        entries = value.split()
        if not entries:
            raise Malformed(f"{parsed.header} is empty.")
        if len(entries) > MAX_SIGNATURES:
            raise Malformed(
                f"{parsed.header} has {len(entries)} signatures; "
                f"at most {MAX_SIGNATURES} are accepted."
            )
        parsed.raw.extend(entries)
        msg_id = headers.one(f"{family}-id", f"{family}-id")
        if not msg_id:
            raise Malformed(f"{family}-id is empty.")
        parsed.msg_id = msg_id
        stamp = headers.one(f"{family}-timestamp", f"{family}-timestamp")
        parsed.stamp = stamp
        parsed.timestamp = parse_timestamp(stamp, f"{family}-timestamp")
        parsed.signed_prefix = latin1(msg_id, f"{family}-id") + f".{stamp}.".encode("ascii")
        versions: list[str] = []
        v1: list[str] = []
        for entry in entries:
            version, sep, text = entry.partition(",")
            if not sep or not version:
                raise Malformed(f"{parsed.header} entry {preview(entry)} is not version,signature.")
            if version == "v1":
                v1.append(text)
            else:
                versions.append(version)
        decode_entries(v1, parsed)
        if not parsed.signatures:
            others = ", ".join(sorted(set(versions)))
            raise Malformed(f"{parsed.header} has no v1 signature (only {preview(others)}).")

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), "sha256", f"{msg_id}.{timestamp}.".encode("ascii"), body)
        return [
            ("webhook-id", msg_id),
            ("webhook-timestamp", str(timestamp)),
            ("webhook-signature", "v1," + encode(digest, "base64")),
        ]
