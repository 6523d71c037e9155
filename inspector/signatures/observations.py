"""Observations: a failed signature read every plausible way, for the doctor.

A sender's mistake may also change how the digest is written (no prefix, the wrong one,
base64 instead of hex), so the doctor compares its candidate digests against every reading
of every signature piece, not only the strict one the scheme expects.
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


@dataclass(frozen=True)
class Observation:
    """One way of reading a signature the sender sent."""

    digest: bytes
    encoding: str  # "hex" | "base64"
    prefix: str  # the label found before it, "" if none


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
        yield "hex", bytes.fromhex(text)
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (padded, padded.replace("-", "+").replace("_", "/")):
        digest = b64decode(alphabet)
        if digest is not None and len(digest) in _SIZES:
            yield "base64", digest
            return
