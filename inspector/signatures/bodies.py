"""The bodies a sender may have signed instead of the bytes that arrived.

Three stages, each optional, composed in this order by the doctor's search:

1. **base**: the body as it arrived, or gunzipped (signed before compression);
2. **rewrite**: the base re-serialized by a JSON library (``reserialize``) or a form encoder;
3. **change**: bytes changed after signing, in transit or by a framework (trailing newline,
   CRLF/LF, a UTF-8 BOM, Unicode normalisation), applied to the result of 1-2.

Every function here returns None when its change does not apply (or changes nothing), so the
search never hashes the same body twice for nothing.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import combinations
from urllib.parse import quote_from_bytes, quote_plus, unquote_to_bytes

from inspector.signatures.mistake import BYTES, Mistake, Variant
from inspector.signatures.reserialize import MAX_JSON_BODY, RAW_BODY, Rewrite, rewrites

MAX_GUNZIPPED = 4 * MAX_JSON_BODY  # a gzip bomb must not cost more than a large body
BOM = b"\xef\xbb\xbf"
SENT = "sign exactly the bytes sent"
Signed = Callable[[bytes], bytes | None]  # bytes that arrived -> bytes the sender signed
SAME_BYTES = "sign and send the same bytes (nothing may change the body after it is signed)"

_FORM = re.compile(rb"[A-Za-z0-9%+&=._~*'()!,;:@/?$\[\]-]*")
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class Change:
    """A change to the body's bytes after signing; ``signed`` undoes it (the bytes the sender
    signed, given those that arrived), or gives None when it does not apply."""

    kind: str  # changes of one kind contradict each other (newline added and removed)
    mistake: Mistake
    signed: Signed


def _mistake(says: str, fix: str = SAME_BYTES) -> Mistake:
    return Mistake(BYTES, says, fix)


def _added(suffix: bytes) -> Callable[[bytes], bytes | None]:
    return lambda body: body + suffix


def _stripped(body: bytes) -> bytes | None:
    stripped = body.rstrip(b"\r\n")
    return stripped if stripped != body else None


def _to_lf(body: bytes) -> bytes | None:
    return body.replace(b"\r\n", b"\n") if b"\r\n" in body else None


def _to_crlf(body: bytes) -> bytes | None:
    return _BARE_LF.sub(b"\r\n", body) if _BARE_LF.search(body) else None


def _with_bom(body: bytes) -> bytes | None:
    return None if body.startswith(BOM) else BOM + body


def _without_bom(body: bytes) -> bytes | None:
    return body[len(BOM) :] if body.startswith(BOM) else None


def _normalised(form: str) -> Callable[[bytes], bytes | None]:
    def signed(body: bytes) -> bytes | None:
        if body.isascii() or len(body) > MAX_JSON_BODY:
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if unicodedata.is_normalized(form, text):  # type: ignore[arg-type]
            return None
        return unicodedata.normalize(form, text).encode("utf-8")  # type: ignore[arg-type]

    return signed


CHANGES: tuple[Change, ...] = (
    Change(
        "newline",
        _mistake("the sender signed the body with a trailing newline it did not send", SENT),
        _added(b"\n"),
    ),
    Change(
        "newline",
        _mistake(
            "the sender signed the body without its trailing newline",
            "sign exactly the bytes sent, final newline included",
        ),
        _stripped,
    ),
    Change(
        "newline",
        _mistake("the sender signed the body with a trailing CRLF it did not send", SENT),
        _added(b"\r\n"),
    ),
    Change(
        "line endings",
        _mistake("the body was signed with LF line endings but arrived with CRLF"),
        _to_lf,
    ),
    Change(
        "line endings",
        _mistake("the body was signed with CRLF line endings but arrived with LF"),
        _to_crlf,
    ),
    Change(
        "bom",
        _mistake("the body was signed with a UTF-8 byte-order mark (BOM) that did not arrive"),
        _with_bom,
    ),
    Change(
        "bom",
        _mistake("the body arrived with a UTF-8 byte-order mark (BOM) that was not signed"),
        _without_bom,
    ),
    Change(
        "unicode",
        _mistake(
            "the body was signed as Unicode NFC (composed characters) but arrived in "
            "another normalisation form"
        ),
        _normalised("NFC"),
    ),
    Change(
        "unicode",
        _mistake(
            "the body was signed as Unicode NFD (decomposed characters) but arrived in "
            "another normalisation form"
        ),
        _normalised("NFD"),
    ),
)


def _then(first: Signed, second: Signed) -> Signed:
    def signed(body: bytes) -> bytes | None:
        once = first(body)
        return second(once) if once is not None else None

    return signed


def change_tiers() -> tuple[list[Variant[Signed | None]], ...]:
    """The change dimension: no change; each change; two changes of different kinds (CRLF
    line endings *and* a trailing newline), applied in ``CHANGES`` order."""
    single: list[Variant[Signed | None]] = [Variant(c.signed, c.mistake) for c in CHANGES]
    pairs: list[Variant[Signed | None]] = [
        Variant(_then(a.signed, b.signed), a.mistake, b.mistake)
        for a, b in combinations(CHANGES, 2)
        if a.kind != b.kind
    ]
    return [Variant(None)], single, pairs


def gunzipped(body: bytes) -> Variant[bytes] | None:
    """The decompressed body when it arrived gzip-compressed (bounded), as a base to search."""
    if not body.startswith(b"\x1f\x8b"):
        return None
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, MAX_GUNZIPPED)
    except zlib.error:
        return None
    if not inflater.eof:
        return None  # truncated, or larger than we are willing to hash
    return Variant(
        data,
        _mistake(
            "the sender signed the body before gzip-compressing it (it arrived gzip-encoded)",
            "sign the compressed bytes that are sent, or decompress before verifying",
        ),
    )


def rewritten(body: bytes) -> Iterator[Variant[bytes]]:
    """The body re-serialized: as JSON by the usual libraries, or as a re-encoded form."""
    yield from rewrites(body)
    yield from _form_rewrites(body)


# -- form bodies -----------------------------------------------------------------------------

# (who encodes this way, how, the encoder)
_ENCODERS: tuple[tuple[str, str, Callable[[bytes], str]], ...] = (
    (
        "Python urlencode() or PHP http_build_query()",
        "spaces as +",
        lambda b: quote_plus(b, safe=""),
    ),
    (
        "JavaScript encodeURIComponent()",
        "spaces as %20",
        lambda b: quote_from_bytes(b, safe="!'()*"),
    ),
    (
        "PHP rawurlencode() or Python quote()",
        "spaces as %20, RFC 3986",
        lambda b: quote_from_bytes(b, safe=""),
    ),
    (
        "JavaScript URLSearchParams",
        "spaces as +, '~' escaped",
        lambda b: quote_plus(b, safe="*").replace("~", "%7E"),
    ),
)


def _form_rewrites(body: bytes) -> Iterator[Variant[bytes]]:
    """A urlencoded form decoded and encoded again: another percent-encoding, or the fields
    sorted by name (both, too)."""
    if len(body) > MAX_JSON_BODY or b"=" not in body or not _FORM.fullmatch(body):
        return
    raw = body.split(b"&")
    fields = [_field(item) for item in raw]
    by_name = sorted(range(len(raw)), key=lambda i: fields[i][0])
    seen: dict[bytes, Rewrite] = {}

    def offer(data: bytes, name: str, detail: str) -> Iterator[Variant[bytes]]:
        if data == body:
            return
        if data in seen:
            seen[data].names.append(name)
            return
        rewrite = Rewrite(data, name, lambda: detail, RAW_BODY)
        seen[data] = rewrite
        yield rewrite

    sorted_raw = b"&".join(raw[i] for i in by_name)
    yield from offer(sorted_raw, "a form encoder that sorts fields by name", "key order changed")
    for name, how, encode in _ENCODERS:
        for order, sort in ((range(len(raw)), ""), (by_name, ", fields sorted by name")):
            encoded = "&".join(
                f"{encode(fields[i][0])}={encode(fields[i][1])}"
                if fields[i][2]
                else encode(fields[i][0])
                for i in order
            )
            yield from offer(encoded.encode("ascii"), name, f"form re-encoded, {how}{sort}")


def _field(item: bytes) -> tuple[bytes, bytes, bool]:
    key, sep, value = item.partition(b"=")
    return _unquote(key), _unquote(value), bool(sep)


def _unquote(text: bytes) -> bytes:
    return unquote_to_bytes(text.replace(b"+", b" "))
