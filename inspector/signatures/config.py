"""The two value objects of signature checking: what to verify with, and what was found."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from inspector.errors import BadRequest

SCHEMES: tuple[str, ...] = ("platform", "github", "stripe", "slack", "shopify", "standard", "hmac")
ALGORITHMS: tuple[str, ...] = ("sha1", "sha256", "sha512")
ENCODINGS: tuple[str, ...] = ("hex", "base64")
STATUSES: tuple[str, ...] = ("valid", "invalid", "malformed", "missing", "expired", "no_secret")
# Where a failing verdict's diagnosis stands when ``verify`` ran without the doctor (the
# capture path): the doctor runs after the answer, and "skipped" says it was too busy.
PENDING = "pending"
SKIPPED = "skipped"

# Every secret costs one HMAC over the body on the capture path; rotation needs two or three.
MAX_SECRETS = 16
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 header-name characters
_FIELDS = frozenset(
    ("scheme", "tolerance", "hmac_header", "hmac_algorithm", "hmac_encoding", "hmac_prefix")
)


@dataclass(frozen=True)
class SignatureConfig:
    """How one endpoint verifies signatures. Validated on construction (``BadRequest``)."""

    secrets: tuple[str, ...] = ()  # several during rotation: valid if any verifies
    scheme: str = "auto"  # "auto" or one of SCHEMES
    tolerance: int = 300  # seconds, timestamped schemes; 0 disables the age check
    hmac_header: str = "X-Signature"  # the generic "hmac" scheme's settings
    hmac_algorithm: str = "sha256"
    hmac_encoding: str = "hex"
    hmac_prefix: str = ""

    def __post_init__(self) -> None:
        # A bare string would otherwise iterate as one secret per character.
        secrets: object = self.secrets
        if isinstance(secrets, str):
            secrets = (secrets,)
        if not isinstance(secrets, list | tuple):
            raise BadRequest("secret must be a string or a list of strings.")
        object.__setattr__(self, "secrets", tuple(secrets))
        _check_secrets(self.secrets)
        if self.scheme != "auto" and self.scheme not in SCHEMES:
            raise BadRequest(
                f"Unknown signature scheme {self.scheme!r}; use one of: auto, {', '.join(SCHEMES)}."
            )
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, int):
            raise BadRequest("tolerance must be a whole number of seconds.")
        if self.tolerance < 0:
            raise BadRequest("tolerance must be 0 (no age check) or a positive number of seconds.")
        if not isinstance(self.hmac_header, str) or not _TOKEN.fullmatch(self.hmac_header):
            raise BadRequest(f"hmac_header {self.hmac_header!r} is not a valid header name.")
        if self.hmac_algorithm not in ALGORITHMS:
            raise BadRequest(
                f"hmac_algorithm {self.hmac_algorithm!r} is not supported; "
                f"use one of: {', '.join(ALGORITHMS)}."
            )
        if self.hmac_encoding not in ENCODINGS:
            raise BadRequest(
                f"hmac_encoding {self.hmac_encoding!r} is not supported; use hex or base64."
            )
        prefix = self.hmac_prefix
        if not isinstance(prefix, str) or len(prefix) > 64 or prefix != prefix.strip():
            raise BadRequest("hmac_prefix must be a string of at most 64 characters, unpadded.")
        if not prefix.isascii() or not prefix.isprintable():
            raise BadRequest("hmac_prefix must be printable ASCII.")

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> SignatureConfig:
        """Build from JSON-shaped settings; ``secret`` or ``secrets`` (a string or a list).

        Raises ``BadRequest`` naming the offending setting. ``None`` means "the default".
        Unknown keys are refused so that a typo does not silently disable a check.
        """
        if not isinstance(d, Mapping):
            raise BadRequest("Signature settings must be an object.")
        unknown = sorted(str(k) for k in d if k not in _FIELDS and k not in ("secret", "secrets"))
        if unknown:
            raise BadRequest(f"Unknown signature setting(s): {', '.join(unknown)}.")
        if d.get("secret") is not None and d.get("secrets") is not None:
            raise BadRequest("Give either secret or secrets, not both.")
        raw = d.get("secrets") if d.get("secrets") is not None else d.get("secret")
        kwargs: dict[str, Any] = {k: d[k] for k in _FIELDS if d.get(k) is not None}
        for key in ("scheme", "hmac_algorithm", "hmac_encoding"):
            if key in kwargs:
                if not isinstance(kwargs[key], str):
                    raise BadRequest(f"{key} must be a string.")
                kwargs[key] = kwargs[key].strip().lower()
        if raw is None:
            secrets: tuple[str, ...] = ()
        elif isinstance(raw, str):
            secrets = (raw,)
        elif isinstance(raw, list | tuple) and all(isinstance(s, str) for s in raw):
            secrets = tuple(raw)
        else:
            raise BadRequest("secret must be a string or a list of strings.")
        return cls(secrets=secrets, **kwargs)

    def to_dict(self) -> dict[str, object]:
        """JSON-shaped settings that ``from_dict`` reads back (secrets included)."""
        d = asdict(self)
        d["secrets"] = list(self.secrets)
        return d


def _check_secrets(secrets: tuple[str, ...]) -> None:
    if len(secrets) > MAX_SECRETS:
        raise BadRequest(f"At most {MAX_SECRETS} secrets are accepted (got {len(secrets)}).")
    for secret in secrets:
        if not isinstance(secret, str):
            raise BadRequest("secret must be a string or a list of strings.")
        if not secret:
            raise BadRequest("A secret must not be empty.")
        if len(secret) > 4096:
            raise BadRequest("A secret must be at most 4096 characters.")
        try:
            secret.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("A secret must be valid Unicode text.") from None


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking one request's signature."""

    status: str  # one of STATUSES
    scheme: str | None
    reason: str  # one sentence
    diagnosis: str | None = None  # the doctor's finding, one sentence
    doctor: str | None = None  # PENDING or SKIPPED while there is no diagnosis yet, else None

    def to_dict(self) -> dict[str, str | None]:
        """The verdict as stored and served (``store.requests.SignatureVerdict``)."""
        return {
            "status": self.status,
            "scheme": self.scheme,
            "reason": self.reason,
            "diagnosis": self.diagnosis,
            "doctor": self.doctor,
        }
