"""What every scheme shares: a header view, strict decoders, the parse result, the Scheme base.

A scheme's job is only to *parse*: find its headers, decode the signature(s), and say which
bytes were signed before the body (``signed_prefix``). The HMAC itself, the timestamp check and
the doctor are the same for every scheme and live in ``verifier.py`` and ``doctor.py``.
Parse errors are raised as ``Malformed`` inside a scheme and turned into ``Parsed.error``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from inspector.signatures.config import SignatureConfig

DIGEST_SIZES: dict[str, int] = {"sha1": 20, "sha256": 32, "sha512": 64}
# A sender rotating secrets sends two or three signatures; thousands is an attack on our CPU.
MAX_SIGNATURES = 32
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; 13 digits is milliseconds

_HEX = re.compile(r"[0-9A-Fa-f]*")
_NOT_HEX = re.compile(r"[^0-9A-Fa-f]")
_DIGITS = re.compile(r"[0-9]+")


class Malformed(Exception):
    """A header is present but unparseable; the message is the verdict's reason."""


class HeaderView:
    """Captured headers by lower-cased name, keeping repeats, so a scheme can refuse them."""

    __slots__ = ("_values",)

    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        values: dict[str, list[str]] = {}
        for name, value in headers:
            values.setdefault(name.lower(), []).append(value)
        self._values = values

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def one(self, name: str, display: str) -> str:
        """The single value of ``name`` with optional whitespace trimmed; Malformed otherwise."""
        values = self._values.get(name)
        if not values:
            raise Malformed(f"{display} is missing.")
        if len(values) > 1:
            # Receivers that join repeats with ", " (Node, most frameworks) would fail too.
            raise Malformed(f"{display} is repeated ({len(values)} values); send it once.")
        return values[0].strip(" \t")


@dataclass
class Parsed:
    """A scheme's reading of the headers; filled in progressively so the doctor gets
    whatever was readable even when a later part is malformed."""

    header: str  # display name of the signature header, for messages
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""  # label expected before each signature: "sha256=", "v1,", ...
    signed_prefix: bytes | None = b""  # bytes signed before the body; None = unknown
    signatures: list[bytes] = field(default_factory=list)  # decoded, at most MAX_SIGNATURES
    raw: list[str] = field(default_factory=list)  # signature pieces as sent, for the doctor
    timestamp: int | None = None
    stamp: str | None = None  # the timestamp as sent, kept even when malformed (for the doctor)
    msg_id: str | None = None  # Standard Webhooks' id as sent
    skipped: list[str] = field(default_factory=list)  # why unreadable entries were passed over
    error: str | None = None  # set when malformed


class Scheme:
    """One signature convention. Subclasses set the class attributes and implement ``fill``."""

    name: ClassVar[str]
    header: ClassVar[str]  # display name of the signature header
    detect: ClassVar[tuple[str, ...]] = ()  # lower-cased names whose presence means this scheme
    tolerance: ClassVar[str] = "none"  # age check: "none" | "past" (too old only) | "both"
    decodes_whsec: ClassVar[bool] = False  # the key is base64 after "whsec_" (Standard Webhooks)

    def display(self, config: SignatureConfig) -> str:
        return self.header

    def present(self, names: Collection[str], config: SignatureConfig) -> bool:
        return any(name in names for name in self.detect)

    def key(self, secret: str) -> bytes:
        return secret.encode("utf-8", "surrogatepass")

    def parse(self, headers: HeaderView, config: SignatureConfig) -> Parsed:
        parsed = Parsed(header=self.display(config))
        try:
            self.fill(parsed, headers, config)
        except Malformed as exc:
            parsed.error = str(exc)
        return parsed

    def fill(self, parsed: Parsed, headers: HeaderView, config: SignatureConfig) -> None:
        raise NotImplementedError

    def sign(
        self,
        secret: str,
        body: bytes,
        *,
        timestamp: int,
        msg_id: str,
        config: SignatureConfig,
    ) -> list[tuple[str, str]]:
        raise NotImplementedError


def mac(key: bytes, algorithm: str, signed_prefix: bytes, body: bytes | memoryview) -> bytes:
    """HMAC of ``signed_prefix + body`` without copying the body into a new buffer."""
    h = hmac.new(key, signed_prefix, algorithm)
    h.update(body)
    return h.digest()


def matches(digest: bytes, candidates: Sequence[bytes]) -> bool:
    """Constant-time comparison against each candidate (their number is public anyway)."""
    return any(hmac.compare_digest(digest, candidate) for candidate in candidates)


def encode(digest: bytes, encoding: str) -> str:
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


def label(algorithm: str) -> str:
    return f"HMAC-{algorithm.upper()}"


def preview(text: str, limit: int = 24) -> str:
    """A short, printable quote of attacker-controlled text for a reason sentence."""
    return ascii(text if len(text) <= limit else text[:limit] + "...")


def decode_digest(text: str, parsed: Parsed) -> bytes:
    """Decode one signature strictly: hex (either case) or padded base64, of the right length."""
    where = f"{parsed.header} signature"
    if not text:
        raise Malformed(f"{where} is empty.")
    size = DIGEST_SIZES[parsed.algorithm]
    if parsed.encoding == "hex":
        if not _HEX.fullmatch(text):
            bad = _NOT_HEX.search(text)
            char = ascii(bad.group()) if bad else "?"
            raise Malformed(f"{where} is not hex (it contains {char}).")
        if len(text) != 2 * size:
            raise Malformed(
                f"{where} has {len(text)} hex digits, but {label(parsed.algorithm)} "
                f"gives {2 * size}."
            )
        return bytes.fromhex(text)
    digest = b64decode(text)
    if digest is None:
        raise Malformed(f"{where} {preview(text)} is not valid base64.")
    if encode(digest, "base64") != text:
        # Stray bits in the last character: refuse, so one digest has exactly one spelling.
        raise Malformed(f"{where} {preview(text)} is not canonical base64.")
    if len(digest) != size:
        raise Malformed(
            f"{where} decodes to {len(digest)} bytes, but {label(parsed.algorithm)} gives {size}."
        )
    return digest


def decode_entries(texts: Sequence[str], parsed: Parsed) -> None:
    """Decode each of several signatures into ``parsed.signatures``. Any entry may match, so
    an unreadable one is skipped (and noted) as long as another decodes; Malformed if none."""
    for text in texts:
        try:
            parsed.signatures.append(decode_digest(text, parsed))
        except Malformed as exc:
            parsed.skipped.append(str(exc))
    if not parsed.signatures and parsed.skipped:
        raise Malformed(parsed.skipped[0])


def decode_prefixed(value: str, parsed: Parsed) -> bytes:
    """Check and strip ``parsed.prefix``, then decode."""
    if not value:
        raise Malformed(f"{parsed.header} is empty.")
    if not value.startswith(parsed.prefix):
        raise Malformed(f"{parsed.header} must start with {parsed.prefix!r}, got {preview(value)}.")
    return decode_digest(value[len(parsed.prefix) :], parsed)


def b64decode(text: str) -> bytes | None:
    """Strict standard base64 (alphabet and padding checked), or None."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII characters
        return None


def whsec_bytes(secret: str) -> bytes | None:
    """The Standard Webhooks key of ``secret``: base64 after an optional ``whsec_``, or None."""
    return b64decode(secret.removeprefix("whsec_"))


def parse_timestamp(text: str, display: str) -> int:
    """Unix seconds as plain digits; signs, spaces, fractions and huge values are malformed."""
    if not text:
        raise Malformed(f"{display} is empty.")
    if not _DIGITS.fullmatch(text):
        raise Malformed(f"{display} must be Unix seconds (digits only), got {preview(text)}.")
    if len(text) > MAX_TIMESTAMP_DIGITS:
        hint = " (milliseconds? expected seconds)" if len(text) == 13 else ""
        raise Malformed(f"{display} is out of range: {len(text)} digits{hint}.")
    return int(text)


def latin1(value: str, display: str) -> bytes:
    """The raw header bytes back (capture decodes header values as latin-1)."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        raise Malformed(f"{display} contains characters that are not latin-1.") from None
