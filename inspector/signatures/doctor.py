"""The doctor: when a signature fails, try the classic mistakes and name the first that fits.

It runs only on failures, but on attacker-controlled input on the capture path, so its work
is bounded: at most ``MAX_HMAC_BYTES`` hashed in all (a few tries for a 10 MiB body, every
try for a normal one), JSON re-serialization only up to ``MAX_JSON_BODY``, at most
``MAX_SECRETS`` own and ``MAX_OTHER_SECRETS`` other endpoints' secrets, at most
``MAX_OBSERVATIONS`` decoded signatures, and an algorithm is only tried when some signature
has its digest length. Every check is an HMAC compared against what the sender sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from inspector.signatures.base import (
    DIGEST_SIZES,
    Parsed,
    Scheme,
    label,
    mac,
    matches,
    whsec_bytes,
)
from inspector.signatures.config import SignatureConfig
from inspector.signatures.observations import Observation, observe
from inspector.signatures.reserialize import MAX_JSON_BODY, reserialized

MAX_HMAC_BYTES = 64 * 1024 * 1024
MAX_SECRETS = 4
MAX_OTHER_SECRETS = 32

NOTHING_FOUND = (
    "None of the common mistakes (re-serialized JSON, trailing newline, whitespace in the "
    "secret, whsec_ decoding, wrong algorithm, hex/base64, prefix) explain it: check that the "
    "sender uses the same secret."
)


def diagnose(
    scheme: Scheme,
    parsed: Parsed,
    body: bytes,
    config: SignatureConfig,
    other_secrets: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """One sentence naming the mistake behind a failed signature, for ``invalid`` and
    ``malformed`` verdicts. For a malformed header, None when nothing is recognised (the
    reason already says what is wrong); for an invalid one, a "nothing found" sentence."""
    seen = observe(parsed)
    if parsed.signed_prefix is None or not seen:
        return None if parsed.error is not None else _nothing_found(scheme, body, config)
    exam = _Exam(scheme, parsed, parsed.signed_prefix, body, config, seen)
    finding = exam.run(other_secrets or {})
    if finding or parsed.error is not None:
        return finding
    if exam.budget < 0:
        return NOTHING_FOUND[:-1] + " (the doctor stopped early on this large body)."
    return _nothing_found(scheme, body, config)


def explain_skew(skew: float, tolerance: int) -> str:
    """The doctor's finding for an ``expired`` verdict; ``skew`` is now minus the timestamp."""
    seconds = round(abs(skew))
    if skew > 0:
        return (
            f"The timestamp is {seconds} seconds old: the sender's clock is behind or this is "
            f"a replay of an old delivery; sync the clock (NTP) or raise the tolerance "
            f"(now {tolerance} s) above {seconds} s."
        )
    return (
        f"The timestamp is {seconds} seconds in the future: the sender's clock is ahead of "
        f"this machine's; sync the clocks (NTP) or raise the tolerance (now {tolerance} s) "
        f"above {seconds} s."
    )


class _Exam:
    """One failed request under examination; each ``_check`` returns a finding or None."""

    def __init__(
        self,
        scheme: Scheme,
        parsed: Parsed,
        signed_prefix: bytes,
        body: bytes,
        config: SignatureConfig,
        seen: list[Observation],
    ) -> None:
        self.scheme, self.parsed, self.signed_prefix = scheme, parsed, signed_prefix
        self.body, self.config, self.seen = body, config, seen
        self.secrets = config.secrets[:MAX_SECRETS]
        self.keys = [scheme.key(secret) for secret in self.secrets]
        self.sizes = {len(o.digest) for o in seen}
        self.expected = DIGEST_SIZES[parsed.algorithm] in self.sizes
        self.budget = MAX_HMAC_BYTES  # negative once a try was skipped for lack of it

    def run(self, other_secrets: Mapping[str, Sequence[str]]) -> str | None:
        checks: list[Callable[[], str | None]] = [
            self._json,
            self._newline,
            self._secret_whitespace,
            self._whsec,
            self._algorithm,
            self._encoding_and_prefix,
            lambda: self._other_endpoint(other_secrets),
        ]
        for check in checks:
            finding = check()
            if finding:
                return finding
        return None

    def digest(self, key: bytes, body: bytes, algorithm: str | None = None) -> bytes | None:
        """The HMAC a sender making this mistake would send; None when over budget."""
        cost = len(self.signed_prefix) + len(body)
        if cost > self.budget:
            self.budget = -1
            return None
        self.budget -= cost
        return mac(key, algorithm or self.parsed.algorithm, self.signed_prefix, body)

    def hit(self, key: bytes, body: bytes, algorithm: str | None = None) -> bool:
        digest = self.digest(key, body, algorithm)
        return digest is not None and matches(digest, [o.digest for o in self.seen])

    def canonical(self) -> list[Observation]:
        """Observations equal to the right digest (right body, key and algorithm)."""
        out = []
        for key in self.keys:
            digest = self.digest(key, self.body)
            out += [o for o in self.seen if digest is not None and matches(digest, [o.digest])]
        return out

    def _json(self) -> str | None:
        if not self.expected:
            return None
        # A variant that only drops the final newline is the newline mistake, named next.
        same = (self.body, self.body.rstrip(b"\r\n"))
        for kind, variant in reserialized(self.body):
            if variant not in same and any(self.hit(key, variant) for key in self.keys):
                if kind == "compact":
                    return (
                        "The sender signed the body re-serialized as compact JSON, like "
                        "JSON.stringify(req.body) in the platform's sample code, instead of "
                        "the bytes it sent: sign and verify the raw body."
                    )
                return (
                    "The sender signed the body re-serialized by Python's json.dumps() "
                    "(default separators, ASCII escapes) instead of the bytes it sent: sign "
                    "and verify the raw body."
                )
        return None

    def _newline(self) -> str | None:
        if not self.expected:
            return None
        if any(self.hit(key, self.body + b"\n") for key in self.keys):
            return (
                "The sender signed the body with a trailing newline it did not send: sign "
                "exactly the bytes sent."
            )
        stripped = self.body.rstrip(b"\r\n")
        if stripped != self.body and any(self.hit(key, stripped) for key in self.keys):
            return (
                "The sender signed the body without its trailing newline: sign exactly the "
                "bytes sent, final newline included."
            )
        return None

    def _secret_whitespace(self) -> str | None:
        if not self.expected:
            return None
        for index, secret in enumerate(self.secrets):
            if self.hit(self.scheme.key(secret + "\n"), self.body):
                return (
                    f"The sender's copy of {self._nth(index)} ends with a newline (read from a "
                    f"file or environment without stripping): strip it on the sending side."
                )
            stripped = secret.strip()
            if stripped and stripped != secret and self.hit(self.scheme.key(stripped), self.body):
                nth = self._nth(index)
                return (
                    f"{nth[0].upper()}{nth[1:]} has surrounding whitespace that the sender "
                    f"does not use: remove it from this endpoint's settings."
                )
        return None

    def _whsec(self) -> str | None:
        if not self.expected:
            return None
        for key, secret in zip(self.keys, self.secrets, strict=True):
            if self.scheme.decodes_whsec:
                raw = secret.encode("utf-8", "surrogatepass")
                if raw != key and self.hit(raw, self.body):
                    return (
                        "The sender used the whsec_ secret string itself as the HMAC key; "
                        "Standard Webhooks keys are the base64-decoded part after 'whsec_'."
                    )
            elif secret.startswith("whsec_"):
                decoded = whsec_bytes(secret)
                if decoded is not None and decoded != key and self.hit(decoded, self.body):
                    return (
                        f"The sender base64-decoded the whsec_ secret (the Standard Webhooks "
                        f"convention), but {self.scheme.name} signatures use the secret "
                        f"string as-is as the key."
                    )
        return None

    def _algorithm(self) -> str | None:
        for algorithm, size in DIGEST_SIZES.items():
            if algorithm == self.parsed.algorithm or size not in self.sizes:
                continue
            if any(self.hit(key, self.body, algorithm) for key in self.keys):
                fix = (
                    f"set hmac_algorithm to {algorithm!r} or switch the sender"
                    if self.scheme.name == "hmac"
                    else f"switch the sender to {self.parsed.algorithm.upper()}"
                )
                return (
                    f"The signature is {label(algorithm)}, but {self.parsed.header} expects "
                    f"{label(self.parsed.algorithm)}: {fix}."
                )
        return None

    def _encoding_and_prefix(self) -> str | None:
        if not self.expected:
            return None
        right = self.canonical()
        want, prefix, header = self.parsed.encoding, self.parsed.prefix, self.parsed.header
        generic = self.scheme.name == "hmac"
        for o in right:
            if o.encoding != want:
                fix = f"set hmac_encoding to {o.encoding!r}" if generic else f"send {want}"
                return (
                    f"The signature is the correct {label(self.parsed.algorithm)} but "
                    f"{o.encoding}-encoded, while {header} expects {want}: {fix}."
                )
        for o in right:
            if o.prefix == prefix:
                continue
            fix = f" (or set hmac_prefix to {o.prefix!r})" if generic else ""
            if not o.prefix:
                return (
                    f"The signature is right but the {prefix!r} prefix is missing: send "
                    f"'{prefix}<{want} digest>'{fix}."
                )
            if not prefix:
                return (
                    f"The signature is right but has an unexpected {o.prefix!r} prefix: send "
                    f"the bare {want} digest{fix}."
                )
            return (
                f"The signature is right but prefixed {o.prefix!r} instead of {prefix!r}: "
                f"send '{prefix}<{want} digest>'{fix}."
            )
        return None

    def _other_endpoint(self, other_secrets: Mapping[str, Sequence[str]]) -> str | None:
        if not self.expected:
            return None
        budget = MAX_OTHER_SECRETS
        for name, secrets in other_secrets.items():
            candidates = [secrets] if isinstance(secrets, str) else list(secrets)[:budget]
            for secret in candidates:
                budget -= 1
                if not isinstance(secret, str) or not secret or secret in self.secrets:
                    continue
                if self.hit(self.scheme.key(secret), self.body):
                    return (
                        f"The signature is valid under the secret of endpoint {name!r}: the "
                        f"sender is configured with the wrong endpoint's secret or posts to the "
                        f"wrong endpoint."
                    )
            if budget <= 0:
                break
        return None

    def _nth(self, index: int) -> str:
        count = len(self.config.secrets)
        return "the configured secret" if count == 1 else f"configured secret #{index + 1}"


def _nothing_found(scheme: Scheme, body: bytes, config: SignatureConfig) -> str:
    if scheme.decodes_whsec and any(whsec_bytes(s) is None for s in config.secrets):
        return (
            "None of the common mistakes explain it, but the configured secret is not valid "
            "base64 after 'whsec_', so its UTF-8 bytes were used as the key: copy the secret "
            "exactly as the sender shows it."
        )
    if len(body) > MAX_JSON_BODY:
        return NOTHING_FOUND[:-1] + " (re-serialized JSON is not tried over 1 MiB)."
    return NOTHING_FOUND
