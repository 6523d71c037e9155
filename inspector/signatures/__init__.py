"""Webhook signatures: verify what arrives, sign what we send, explain what fails.

    from inspector.signatures import SignatureConfig, verify, sign

    verdict = verify(headers, body, SignatureConfig(secrets=("s3cret",)))
    verdict.status   # "valid" | "invalid" | "malformed" | "missing" | "expired" | "no_secret"

One module per scheme (``platform``, ``github``, ``stripe``, ``slack``, ``shopify``,
``standard``, ``generic`` for "hmac"), ``registry`` (names, detection, signing),
``verifier`` (the hot path) and ``doctor`` (names the mistake behind a failure: a bounded
``search`` over ``bodies``/``reserialize``, ``keys`` and ``signing`` variants, matched against
``observations`` of the sent digest; ``mistake`` is their shared vocabulary). ``config`` holds
SignatureConfig and Verdict, ``base`` what schemes share. Everything runs over the raw body
bytes and compares digests as bytes in constant time; nothing here does I/O.

Decisions on the ambiguous cases:

- Hex signatures are accepted in either case (``bytes.fromhex`` semantics, but only
  ``[0-9a-fA-F]``: spaces or other characters are malformed). Base64 must be standard,
  padded and canonical, so one digest has exactly one accepted spelling.
- A signature header of the wrong length is malformed, not invalid; the doctor still reads
  it, so a SHA-1 digest under ``sha256=`` is reported as "wrong algorithm".
- Any signature, id or timestamp header that appears more than once is malformed ("repeated"),
  even with equal values: real receivers join repeats with ", " and would fail too.
- A header with more than ``MAX_SIGNATURES`` (32) entries is malformed without decoding any.
- Several ``v1`` signatures (Stripe, Standard Webhooks): any may match, so one that does not
  decode is skipped while another does; malformed only when none decodes.
- Timestamps are 1-12 ASCII digits (13 is reported as "milliseconds?"); no sign, fraction
  or spaces. Stripe fails only too-old timestamps; Slack and Standard Webhooks both ways.
- The age check runs after the signature matched: ``expired`` means "authentic but stale".
- In "auto" mode the generic scheme's ``hmac_header`` is detected after the named schemes.
"""

from __future__ import annotations

from inspector.signatures.config import SCHEMES, SignatureConfig, Verdict
from inspector.signatures.registry import detect_scheme, sign
from inspector.signatures.verifier import verify

__all__ = ["SCHEMES", "SignatureConfig", "Verdict", "detect_scheme", "sign", "verify"]
