"""The HMAC keys a sender may have used instead of the endpoint's: secret mistakes.

``own`` are the expected keys (one per configured secret); ``mistaken`` the keys a sender
makes from the same secret by mistake (whitespace, ``whsec_`` handling, hex or base64
decoding); ``foreign`` the keys of other secrets it may hold (another endpoint's, one this
endpoint rotated out). Keys are deduplicated: each distinct key is tried once.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence

from inspector.signatures.base import Scheme, b64decode, whsec_bytes
from inspector.signatures.mistake import OTHER_SECRET, SECRET, Mistake, Variant

MAX_SECRETS = 4  # own secrets examined; a rotation has two or three
MAX_OTHER_SECRETS = 32
_HEX = re.compile(r"(?:[0-9a-f]{2})+|(?:[0-9A-F]{2})+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_MIN_ENCODED = 16  # shorter hex/base64-looking secrets are more likely passwords than keys


class Keys:
    """The key dimension of the search."""

    def __init__(
        self,
        scheme: Scheme,
        secrets: Sequence[str],
        other_secrets: Mapping[str, Sequence[str]],
        retired_secrets: Sequence[str],
    ) -> None:
        own = list(secrets[:MAX_SECRETS])
        self.scheme = scheme
        self.count = len(secrets)
        self.own: list[Variant[bytes]] = []
        self.mistaken: list[Variant[bytes]] = []
        self.foreign: list[Variant[bytes]] = []
        self._seen: set[bytes] = set()
        for secret in own:
            self._add(self.own, scheme.key(secret))
        for index, secret in enumerate(own):
            for key, mistake in self._mistakes(index, secret):
                self._add(self.mistaken, key, mistake)
        for key, mistake in self._foreign(own, other_secrets, retired_secrets):
            self._add(self.foreign, key, mistake)

    def _add(self, into: list[Variant[bytes]], key: bytes, *mistakes: Mistake) -> None:
        if key not in self._seen:
            self._seen.add(key)
            into.append(Variant(key, *mistakes))

    def _nth(self, index: int) -> str:
        return "the configured secret" if self.count == 1 else f"configured secret #{index + 1}"

    def _mistakes(self, index: int, secret: str) -> Iterator[tuple[bytes, Mistake]]:
        scheme, nth = self.scheme, self._nth(index)
        yield (
            scheme.key(secret + "\n"),
            Mistake(
                SECRET,
                f"the sender's copy of {nth} ends with a newline (read from a file or "
                f"environment without stripping)",
                "strip it on the sending side",
            ),
        )
        yield (
            scheme.key(secret + "\r\n"),
            Mistake(
                SECRET,
                f"the sender's copy of {nth} ends with CRLF (a Windows line ending)",
                "strip it on the sending side",
            ),
        )
        stripped = secret.strip()
        if stripped and stripped != secret:
            yield (
                scheme.key(stripped),
                Mistake(
                    SECRET,
                    f"{nth} has surrounding whitespace that the sender does not use",
                    "remove it from this endpoint's settings",
                ),
            )
        if scheme.decodes_whsec:
            yield from self._not_decoded(secret)
        else:
            yield from self._decoded(secret)

    def _not_decoded(self, secret: str) -> Iterator[tuple[bytes, Mistake]]:
        """Standard Webhooks keys are base64 after ``whsec_``; a sender may skip either step."""
        fix = "Standard Webhooks keys are the base64-decoded part after 'whsec_'"
        if secret.startswith("whsec_"):
            says = "the sender used the whsec_ secret string itself as the HMAC key"
        else:
            says = "the sender used the secret text itself as the HMAC key, not its base64 bytes"
        yield secret.encode("utf-8", "surrogatepass"), Mistake(SECRET, says, fix)
        rest = secret.removeprefix("whsec_")
        if rest != secret:
            yield (
                rest.encode("utf-8", "surrogatepass"),
                Mistake(
                    SECRET, "the sender dropped 'whsec_' but did not base64-decode the rest", fix
                ),
            )
        if _HEX.fullmatch(rest) and len(rest) >= _MIN_ENCODED:
            yield (
                bytes.fromhex(rest),
                Mistake(SECRET, "the sender hex-decoded the secret instead of base64", fix),
            )

    def _decoded(self, secret: str) -> Iterator[tuple[bytes, Mistake]]:
        """Other schemes key with the secret's text; a sender may decode it first."""
        name = self.scheme.name
        as_is = f"{name} signatures use the secret string as-is as the key"
        if secret.startswith("whsec_"):
            decoded = whsec_bytes(secret)
            if decoded is not None:
                yield (
                    decoded,
                    Mistake(
                        SECRET,
                        "the sender base64-decoded the whsec_ secret (the Standard Webhooks "
                        "convention)",
                        as_is,
                    ),
                )
            yield (
                secret.removeprefix("whsec_").encode("utf-8", "surrogatepass"),
                Mistake(SECRET, "the sender dropped the 'whsec_' prefix from the secret", as_is),
            )
            return
        if len(secret) < _MIN_ENCODED:
            return
        if _HEX.fullmatch(secret):
            yield (
                bytes.fromhex(secret),
                Mistake(
                    SECRET,
                    "the sender hex-decoded the secret and used the bytes as the key",
                    f"{as_is} (or configure the secret the way the sender uses it)",
                ),
            )
        if _BASE64.fullmatch(secret):
            decoded = _base64(secret)
            if decoded is not None and len(decoded) >= _MIN_ENCODED // 2:
                yield (
                    decoded,
                    Mistake(
                        SECRET,
                        "the sender base64-decoded the secret and used the bytes as the key",
                        f"{as_is} (or configure the secret the way the sender uses it)",
                    ),
                )

    def _foreign(
        self,
        own: Sequence[str],
        other_secrets: Mapping[str, Sequence[str]],
        retired_secrets: Sequence[str],
    ) -> Iterator[tuple[bytes, Mistake]]:
        for secret in retired_secrets[:MAX_SECRETS]:
            if isinstance(secret, str) and secret and secret not in own:
                yield (
                    self.scheme.key(secret),
                    Mistake(
                        OTHER_SECRET,
                        "the signature is valid under a secret this endpoint used before "
                        "(rotated out)",
                        "give the sender the current secret, or keep the old one configured "
                        "until it has switched",
                    ),
                )
        budget = MAX_OTHER_SECRETS
        for name, secrets in other_secrets.items():
            candidates = [secrets] if isinstance(secrets, str) else list(secrets)[:budget]
            for secret in candidates:
                budget -= 1
                if not isinstance(secret, str) or not secret or secret in own:
                    continue
                yield (
                    self.scheme.key(secret),
                    Mistake(
                        OTHER_SECRET,
                        f"the signature is valid under the secret of endpoint {name!r}",
                        "the sender is configured with the wrong endpoint's secret or posts "
                        "to the wrong endpoint",
                    ),
                )
            if budget <= 0:
                break


def _base64(text: str) -> bytes | None:
    padded = text + "=" * (-len(text) % 4)
    decoded = b64decode(padded)
    if decoded is not None:
        return decoded
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        return None
