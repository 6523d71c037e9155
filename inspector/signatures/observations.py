"""Observations: a failed signature read every plausible way, for the doctor.

A sender's mistake may also change how the digest is written (no prefix, the wrong one,
base64 instead of hex, base64url, no padding), so the doctor compares its candidate digests
against every reading of every signature piece, not only the strict one the scheme expects.
That makes encoding mistakes free to find: they cost no HMAC, and combine with any other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from inspector.signatures.base import DIGEST_SIZES, Parsed, b64decode

MAX_OBSERVATIONS = 64
_MAX_PIECE = 256  # "sha512=" + 128 hex digits fits; longer pieces are not signatures
_SIZES = frozenset(DIGEST_SIZES.values())
_HEX = re.compile(r"[0-9A-Fa-f]+")
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,16}[=,:]")

HEX, UPPER_HEX = "hex", "upper-case hex"
BASE64, BASE64URL, UNPADDED = "base64", "base64url", "unpadded base64"


@dataclass(frozen=True)
class Observation:
    """One way of reading a signature the sender sent."""

    digest: bytes
    encoding: str  # HEX | UPPER_HEX | BASE64 | BASE64URL | UNPADDED
    prefix: str  # the label found before it, "" if none

    def accepted(self, encoding: str) -> bool:
        """Whether the scheme's strict decoder accepts this spelling (hex in either case)."""
        return self.encoding == encoding or (encoding == HEX and self.encoding == UPPER_HEX)


def observe(parsed: Parsed) -> list[Observation]:
    """Every plausible digest in the raw signature pieces: with or without a label, hex or
    (url-safe, unpadded) base64, of a known digest length. Bounded in count and length."""
    found: dict[Observation, None] = {}
    for piece in parsed.raw[:MAX_OBSERVATIONS]:
        piece = piece.strip()
        if len(piece) > _MAX_PIECE:
            continue
        splits = {"": piece}
        if parsed.prefix and piece.startswith(parsed.prefix):
            splits[parsed.prefix] = piece[len(parsed.prefix) :]
        labelled = _LABEL.match(piece)
        if labelled:
            splits[labelled.group()] = piece[labelled.end() :]
        for prefix, text in splits.items():
            for encoding, digest in _decodings(text):
                found[Observation(digest, encoding, prefix)] = None
    return list(found)[:MAX_OBSERVATIONS]


def _decodings(text: str) -> Iterator[tuple[str, bytes]]:
    if _HEX.fullmatch(text) and len(text) % 2 == 0 and len(text) // 2 in _SIZES:
        upper = text.isupper() and not text.isdigit()
        yield UPPER_HEX if upper else HEX, bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    urlsafe = "-" in text or "_" in text
    standard = padded.replace("-", "+").replace("_", "/") if urlsafe else padded
    digest = b64decode(standard)
    if digest is not None and len(digest) in _SIZES:
        if urlsafe and ("+" in text or "/" in text):
            return  # both alphabets at once: no encoder writes that
        yield BASE64URL if urlsafe else (UNPADDED if padded != text else BASE64), digest
