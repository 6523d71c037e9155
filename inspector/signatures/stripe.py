"""Stripe: ``Stripe-Signature: t=<ts>,v1=<hex>[,v1=<hex>...]`` over ``{t}.{body}``.

The key is the secret string as-is, ``whsec_`` included. Keys other than ``t`` and ``v1``
(``v0``: test-mode signatures) are ignored. Any ``v1`` may match: one that does not decode is
skipped while another does (Stripe's libraries compare each as a string). Like Stripe's
libraries, only a timestamp that is too old fails; one from the future does not.
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
    mac,
    parse_timestamp,
    preview,
)
from inspector.signatures.config import SignatureConfig


class StripeScheme(Scheme):
    name = "stripe"
    header = "Stripe-Signature"
    detect = ("stripe-signature",)
    tolerance = "past"

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        parsed.prefix = "v1="
        parsed.signed_prefix = None
        value = headers.one("stripe-signature", parsed.header)
        if not value:
            raise Malformed(f"{parsed.header} is empty.")
        items = value.split(",")
        if len(items) > MAX_SIGNATURES:
            raise Malformed(
                f"{parsed.header} has {len(items)} entries; at most {MAX_SIGNATURES} are accepted."
            )
        stamps: list[str] = []
        v1: list[str] = []
        for item in (i.strip(" \t") for i in items):
            key, sep, val = item.partition("=")
            if not sep or not key:
                raise Malformed(f"{parsed.header} entry {preview(item)} is not key=value.")
            if key == "t":
                stamps.append(val)
                parsed.stamp = parsed.stamp or val  # for the doctor, even if a later item is bad
                continue
            parsed.raw.append(item)  # v0=, or a mislabelled signature the doctor may recognise
            if key == "v1":
                v1.append(val)
        if not stamps:
            raise Malformed(f"{parsed.header} has no t= timestamp.")
        if len(stamps) > 1:
            raise Malformed(f"{parsed.header} has {len(stamps)} t= timestamps; expected one.")
        parsed.timestamp = parse_timestamp(stamps[0], f"{parsed.header} t=")
        parsed.signed_prefix = stamps[0].encode("ascii") + b"."
        if not v1:
            raise Malformed(f"{parsed.header} has no v1= signature.")
        decode_entries(v1, parsed)

    def sign(
        self, secret: str, body: bytes, *, timestamp: int, msg_id: str, config: SignatureConfig
    ) -> list[tuple[str, str]]:
        digest = mac(self.key(secret), "sha256", f"{timestamp}.".encode("ascii"), body)
        return [(self.header, f"t={timestamp},v1={encode(digest, 'hex')}")]
