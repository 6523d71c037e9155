"""verify(): one request's headers and raw body in, one Verdict (or None) out.

It runs on the capture hot path for every request, so the common case (no secret, no
signature header) is a single set of lower-cased names tested against the known headers,
and a valid signature costs one HMAC per configured secret. The doctor runs on failures only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inspector.signatures import doctor
from inspector.signatures.base import HeaderView, Parsed, Scheme, mac, matches
from inspector.signatures.config import PENDING, SignatureConfig, Verdict
from inspector.signatures.registry import SIGNATURE_HEADERS, detect, get
from inspector.signatures.signing import target_of


def verify(
    headers: Sequence[tuple[str, str]],
    body: bytes,
    config: SignatureConfig,
    *,
    now: float | None = None,
    other_secrets: Mapping[str, Sequence[str]] | None = None,
    retired_secrets: Sequence[str] = (),
    target: tuple[str, str] | None = None,
    diagnose: bool = True,
) -> Verdict | None:
    """Check the request's signature against ``config``; never raises.

    None when there is nothing to say (scheme "auto", no secret, no signature header).
    ``now`` (default: the clock) is what timestamps are compared with. For the doctor:
    ``other_secrets`` maps other endpoints' names to their secrets (a mix-up),
    ``retired_secrets`` lists secrets this endpoint used before (a sender not yet rotated),
    ``target`` is the request's ``(method, raw path with query)`` (a URL signed too).
    ``diagnose=False`` skips the doctor: an ``invalid`` or ``malformed`` verdict then has no
    ``diagnosis`` and ``doctor="pending"``, and a caller that must answer fast runs ``verify``
    again later, off its hot path (``inspector.diagnosis``).
    """
    try:
        names = {name.lower() for name, _ in headers}
        if (
            config.scheme == "auto"
            and not config.secrets
            and names.isdisjoint(SIGNATURE_HEADERS)
            and config.hmac_header.lower() not in names
        ):
            return None  # nothing to say: most captures, at a set of names' cost
        context = _Context(other_secrets, retired_secrets, target, diagnose)
        return _verify(headers, names, body, config, now, context)
    except Exception as exc:  # a bug here must never cost a capture
        return Verdict(
            "malformed",
            None,
            f"The signature check failed unexpectedly ({type(exc).__name__}); this is a bug "
            f"in webhook-inspector, please report it.",
        )


def _verify(
    headers: Sequence[tuple[str, str]],
    names: set[str],
    body: bytes,
    config: SignatureConfig,
    now: float | None,
    context: _Context,
) -> Verdict | None:
    secrets = config.secrets
    if config.scheme == "auto":
        found = detect(names, config)
        if found is None:
            return Verdict(
                "missing",
                None,
                "No signature header of a known scheme is present (X-Webhook-Signature, "
                "X-Hub-Signature-256, Stripe-Signature, X-Slack-Signature, "
                f"X-Shopify-Hmac-Sha256, webhook-signature or {config.hmac_header}).",
            )
        scheme = found
    else:
        scheme = get(config.scheme)
        if not scheme.present(names, config):
            other = detect(names)
            hint = f"; the request carries {other.header} ({other.name} scheme)" if other else ""
            return Verdict("missing", scheme.name, f"{scheme.display(config)} is missing{hint}.")
    if not secrets:
        return Verdict(
            "no_secret",
            scheme.name,
            f"The request carries a {scheme.name} signature ({scheme.display(config)}) but no "
            f"secret is configured to check it.",
        )

    parsed = scheme.parse(HeaderView(headers), config)
    if parsed.error is not None:
        diagnosis = context.diagnose(scheme, parsed, headers, body, config)
        return Verdict("malformed", scheme.name, parsed.error, diagnosis, context.pending)
    index = _match(scheme, parsed, body, secrets)
    count = len(secrets)
    if index is None:
        whom = "the configured secret" if count == 1 else f"any of the {count} configured secrets"
        reason = f"{parsed.header} does not match {whom}"
        if parsed.skipped:
            entries = "entry" if len(parsed.skipped) == 1 else "entries"
            first = parsed.skipped[0].removesuffix(".")
            reason += f"; {len(parsed.skipped)} unreadable {entries} skipped ({first})"
        diagnosis = context.diagnose(scheme, parsed, headers, body, config)
        reason = reason.removesuffix(".") + "."
        return Verdict("invalid", scheme.name, reason, diagnosis, context.pending)

    expired = _check_age(scheme, parsed, config.tolerance, time.time() if now is None else now)
    if expired is not None:
        return expired
    which = "the configured secret" if count == 1 else f"secret #{index + 1} of {count}"
    return Verdict("valid", scheme.name, f"Signature matches {which}.")


@dataclass(frozen=True)
class _Context:
    """What only the doctor needs, passed through from ``verify``."""

    other_secrets: Mapping[str, Sequence[str]] | None
    retired_secrets: Sequence[str]
    target: tuple[str, str] | None
    enabled: bool

    @property
    def pending(self) -> str | None:
        """The verdict's ``doctor`` state: pending when the doctor was left for later."""
        return None if self.enabled else PENDING

    def diagnose(
        self,
        scheme: Scheme,
        parsed: Parsed,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        config: SignatureConfig,
    ) -> str | None:
        if not self.enabled:
            return None
        target = target_of(headers, *self.target) if self.target is not None else None
        return doctor.diagnose(
            scheme,
            parsed,
            body,
            config,
            self.other_secrets,
            retired_secrets=self.retired_secrets,
            target=target,
        )


def _match(scheme: Scheme, parsed: Parsed, body: bytes, secrets: Sequence[str]) -> int | None:
    """Index of the first secret whose HMAC equals one of the signatures: one HMAC each."""
    assert parsed.signed_prefix is not None  # a well-formed parse always knows it
    for index, secret in enumerate(secrets):
        digest = mac(scheme.key(secret), parsed.algorithm, parsed.signed_prefix, body)
        if matches(digest, parsed.signatures):
            return index
    return None


def _check_age(scheme: Scheme, parsed: Parsed, tolerance: int, now: float) -> Verdict | None:
    """An ``expired`` verdict when the (authentic) timestamp is outside the tolerance.

    Checked after the signature so that ``expired`` always means "authentic but stale".
    """
    if scheme.tolerance == "none" or tolerance == 0 or parsed.timestamp is None:
        return None
    skew = now - parsed.timestamp  # positive: the timestamp is in the past
    if skew > tolerance:
        direction = "old"
    elif scheme.tolerance == "both" and -skew > tolerance:
        direction = "in the future"
    else:
        return None
    seconds = round(abs(skew))
    return Verdict(
        "expired",
        scheme.name,
        f"Signature matches, but the timestamp is {seconds} seconds {direction}, "
        f"{seconds - tolerance} beyond the {tolerance}-second tolerance.",
        doctor.explain_skew(skew, tolerance),
    )
