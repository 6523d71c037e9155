"""The strings a sender may have signed before the body instead of the scheme's.

Each scheme signs ``prefix + body`` (``base.Parsed.signed_prefix``: empty, ``{t}.``,
``v0:{ts}:``, ``{id}.{ts}.``). A sender may leave a part out (Stripe without ``t.``, Slack
without ``v0:``, Standard Webhooks without the id), use milliseconds where seconds belong (in
the signed string, the header, or both), or sign the request's URL or method too. The scheme
parsers record the raw timestamp and id (``Parsed.stamp``, ``Parsed.msg_id``) even when the
header is malformed, so a millisecond timestamp is still recognised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inspector.signatures.base import Parsed, Scheme, preview
from inspector.signatures.mistake import SIGNING, SWEEP, Mistake, Variant

_NAMES = {
    "platform": "The platform's scheme",
    "github": "GitHub",
    "stripe": "Stripe",
    "slack": "Slack",
    "shopify": "Shopify",
    "standard": "Standard Webhooks",
    "hmac": "The hmac scheme",
}
_SIGNS = {
    "stripe": "'{t}.{body}'",
    "slack": "'v0:{timestamp}:{body}'",
    "standard": "'{id}.{timestamp}.{body}'",
}
_TEMPLATES: dict[str, Callable[[str, str], str]] = {
    "stripe": lambda msg_id, stamp: f"{stamp}.",
    "slack": lambda msg_id, stamp: f"v0:{stamp}:",
    "standard": lambda msg_id, stamp: f"{msg_id}.{stamp}.",
}
_TAILS = ("", ".", "\n")  # after the URL (or the method)
# Between the method and the URL, and after the URL: "POSThttps://...", "POST https://...\n"
_JOINS = (("", ""), (" ", ""), (" ", "\n"), ("\n", "\n"), (".", "."))


@dataclass(frozen=True)
class Target:
    """The request line as a sender may have signed it: its method and URL spellings."""

    method: str
    urls: tuple[str, ...]


def target_of(headers: Sequence[tuple[str, str]], method: str, path: str) -> Target:
    """The URL spellings a sender could have signed: absolute (with the forwarded or own
    host, https and http unless a proxy said which) and the path with its query."""
    values = {name.lower(): value for name, value in headers}
    host = (values.get("x-forwarded-host") or values.get("host") or "").split(",")[0].strip()
    proto = (values.get("x-forwarded-proto") or "").split(",")[0].strip().lower()
    protos = [proto] if proto in ("http", "https") else ["https", "http"]
    urls = [f"{p}://{host}{path}" for p in protos] if host else []
    return Target(method.upper(), (*urls, path))


class Signing:
    """The signed-prefix dimension of the search: ``expected`` (none when the header was too
    malformed to say), ``mistaken`` (parts left out, milliseconds), ``requested`` (the URL or
    method signed too) and ``sweep`` (a millisecond clock read apart from the header's)."""

    def __init__(self, scheme: Scheme, parsed: Parsed, target: Target | None) -> None:
        self.scheme, self.parsed = scheme, parsed
        self.signs = _SIGNS.get(scheme.name, "the raw body")
        self.expected: list[Variant[bytes]] = []
        self.mistaken: list[Variant[bytes]] = []
        self.requested: list[Variant[bytes]] = []
        self.sweep: list[Variant[bytes]] = []
        self._seen: set[bytes] = set()
        template = _TEMPLATES.get(scheme.name)
        stamp = parsed.stamp
        digits = stamp is not None and stamp.isascii() and stamp.isdigit()
        # A header malformed elsewhere still says what should be signed, if its parts are in.
        parts = digits and (scheme.name != "standard" or bool(parsed.msg_id))
        if parsed.signed_prefix is not None:
            self._add(self.expected, parsed.signed_prefix)
        elif template is not None and stamp is not None and parts and len(stamp) <= 12:
            expected = _latin1(template(parsed.msg_id or "", stamp))
            if expected is not None:
                self._add(self.expected, expected)
        if template is not None and stamp is not None and digits:
            self._omissions(parsed.msg_id or "", stamp)
            self._milliseconds(template, parsed.msg_id or "", stamp)
        if target is not None and parsed.signed_prefix is not None:
            self._request(target, parsed.signed_prefix)

    def _add(self, into: list[Variant[bytes]], prefix: bytes, *mistakes: Mistake) -> None:
        if prefix not in self._seen:
            self._seen.add(prefix)
            into.append(Variant(prefix, *mistakes))

    def _mistake(self, says: str, fix: str | None = None) -> Mistake:
        name = _NAMES.get(self.scheme.name, self.scheme.name)
        return Mistake(SIGNING, says, fix or f"{name} signs {self.signs}")

    def _omissions(self, msg_id: str, stamp: str) -> None:
        name = self.scheme.name
        body_only = self._mistake(f"the sender signed the body alone, without the {name} prefix")
        if name == "stripe":
            self._add(
                self.mistaken,
                b"",
                self._mistake("the sender signed the body without the 't.' prefix (t= and a dot)"),
            )
            self._add(
                self.mistaken,
                stamp.encode("ascii"),
                self._mistake("the sender signed t= and the body without the '.' between them"),
            )
        elif name == "slack":
            self._add(
                self.mistaken,
                f"{stamp}:".encode("ascii"),
                self._mistake("the sender signed '{timestamp}:{body}', without the 'v0:' prefix"),
            )
            self._add(self.mistaken, b"", body_only)
        elif name == "standard":
            self._add(
                self.mistaken,
                f"{stamp}.".encode("ascii"),
                self._mistake("the sender signed without the message id ('{timestamp}.{body}')"),
            )
            msg = _latin1(msg_id + ".")
            if msg is not None:
                self._add(
                    self.mistaken,
                    msg,
                    self._mistake("the sender signed without the timestamp ('{id}.{body}')"),
                )
            self._add(self.mistaken, b"", body_only)

    def _milliseconds(self, template: Callable[[str, str], str], msg_id: str, stamp: str) -> None:
        header = self._stamp_header()

        def prefix(value: str) -> bytes | None:
            return _latin1(template(msg_id, value))

        seconds = "use Unix seconds in both the header and the signed string"
        if len(stamp) >= 13:  # the header carries milliseconds
            same = prefix(stamp)
            if same is not None:
                self._add(
                    self.mistaken,
                    same,
                    self._mistake(
                        f"the timestamp in {header} is in milliseconds ({stamp}); the signature "
                        f"matches it, but {_NAMES[self.scheme.name]} timestamps are Unix seconds",
                        f"send Unix seconds in {header} and sign that",
                    ),
                )
            down = prefix(str(int(stamp) // 1000))
            if down is not None:
                self._add(
                    self.mistaken,
                    down,
                    self._mistake(
                        f"the timestamp in {header} is in milliseconds ({stamp}) while the "
                        f"signed string used seconds ({int(stamp) // 1000})",
                        seconds,
                    ),
                )
            return
        base = int(stamp) * 1000
        for offset in range(1000):
            millis = prefix(str(base + offset))
            if millis is None:
                return
            mistake = Mistake(
                SIGNING if offset == 0 else SWEEP,
                f"the sender signed a millisecond timestamp ({base + offset}) while {header} "
                f"carries seconds ({stamp})",
                seconds,
            )
            self._add(self.mistaken if offset == 0 else self.sweep, millis, mistake)

    def _request(self, target: Target, expected: bytes) -> None:
        method = target.method
        spellings = [("the method", method, method + tail) for tail in _TAILS]
        for url in target.urls:
            spellings += [("the URL", url, url + tail) for tail in _TAILS]
            spellings += [
                ("the method and URL", f"{method} {url}", f"{method}{join}{url}{tail}")
                for join, tail in _JOINS
            ]
        for what, shown, text in spellings:
            piece = _latin1(text)
            if piece is None:
                continue
            mistake = self._mistake(
                f"the sender included {what} ({preview(shown, 60)}) in the signed string"
            )
            self._add(self.requested, piece + expected, mistake)
            if expected:
                self._add(self.requested, expected + piece, mistake)

    def _stamp_header(self) -> str:
        if self.scheme.name == "stripe":
            return "Stripe-Signature t="
        if self.scheme.name == "slack":
            return "X-Slack-Request-Timestamp"
        return self.parsed.header.replace("-signature", "-timestamp")


def _latin1(text: str) -> bytes | None:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None
