"""The schemes by name, detection by header, and signing (the sender's side)."""

from __future__ import annotations

import re
import secrets as _random
import time
from collections.abc import Collection, Sequence

from inspector.errors import BadRequest
from inspector.signatures.base import Scheme
from inspector.signatures.config import SCHEMES, SignatureConfig
from inspector.signatures.generic import GenericScheme
from inspector.signatures.github import GitHubScheme
from inspector.signatures.platform import PlatformScheme
from inspector.signatures.shopify import ShopifyScheme
from inspector.signatures.slack import SlackScheme
from inspector.signatures.standard import StandardScheme
from inspector.signatures.stripe import StripeScheme

_REGISTRY: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in (
        PlatformScheme(),
        GitHubScheme(),
        StripeScheme(),
        SlackScheme(),
        ShopifyScheme(),
        StandardScheme(),
        GenericScheme(),
    )
}
assert tuple(_REGISTRY) == SCHEMES, "detection order is the order of SCHEMES"

# The named schemes' headers: the hot path's "anything to do?" test is one set intersection.
SIGNATURE_HEADERS: frozenset[str] = frozenset(
    name for scheme in _REGISTRY.values() for name in scheme.detect
)
_MSG_ID = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no spaces: it becomes a header


def get(name: str) -> Scheme:
    """The scheme called ``name``; ``BadRequest`` if there is none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise BadRequest(
            f"Unknown signature scheme {name!r}; use one of: {', '.join(SCHEMES)}."
        ) from None


def detect(names: Collection[str], config: SignatureConfig | None = None) -> Scheme | None:
    """The first scheme, in SCHEMES order, whose signature header is among ``names``.

    With a config, the generic scheme's ``hmac_header`` counts too (after the named ones).
    """
    for scheme in _REGISTRY.values():
        if any(name in names for name in scheme.detect):
            return scheme
    if config is not None and config.hmac_header.lower() in names:
        return _REGISTRY["hmac"]
    return None


def detect_scheme(headers: Sequence[tuple[str, str]]) -> str | None:
    """The named scheme whose signature header the request carries, or None.

    The generic ``hmac`` scheme has no fixed header, so it is never detected here.
    """
    scheme = detect({name.lower() for name, _ in headers})
    return scheme.name if scheme else None


def sign(
    scheme: str,
    secret: str,
    body: bytes,
    *,
    timestamp: int | None = None,
    msg_id: str | None = None,
    config: SignatureConfig | None = None,
) -> list[tuple[str, str]]:
    """The header(s) a sender using ``scheme`` would add to ``body``, in sending order.

    ``timestamp`` defaults to now and ``msg_id`` (Standard Webhooks) to a fresh
    ``msg_<random>``; schemes without them ignore both. ``config`` supplies the generic
    ``hmac`` scheme's header, algorithm, encoding and prefix. Raises ``BadRequest`` on an
    unknown scheme, an empty secret, a negative timestamp or an unsendable ``msg_id``.
    """
    found = get(scheme)
    if not isinstance(secret, str) or not secret:
        raise BadRequest("A signing secret must be a non-empty string.")
    if timestamp is None:
        timestamp = int(time.time())
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise BadRequest("timestamp must be a non-negative whole number of seconds.")
    if msg_id is None:
        msg_id = "msg_" + _random.token_hex(12)
    if not _MSG_ID.fullmatch(msg_id):
        raise BadRequest("msg_id must be 1-256 printable ASCII characters without spaces.")
    return found.sign(
        secret, body, timestamp=timestamp, msg_id=msg_id, config=config or SignatureConfig()
    )
