"""The doctor: when a signature fails, search the likely mistakes and name the one that fits.

A systematic search (``search.py``) over what a sender can get wrong, each a named,
composable step:

- the **body** it signed (``bodies.py``, ``reserialize.py``): re-serialized by the usual JSON
  libraries or form encoders, bytes changed after signing (newline, CRLF/LF, BOM, NFC/NFD),
  signed before gzip;
- the **key** (``keys.py``): whitespace, ``whsec_`` handling, hex/base64-decoded, another
  endpoint's or a rotated-out secret;
- the **signed string** (``signing.py``): parts left out, milliseconds, the URL or method;
- the **algorithm**, and how the digest is **written** (``observations.py``: hex case,
  base64/base64url/unpadded, missing or extra prefix) — the latter costs nothing to search.

Single mistakes first, then pairs (sorted keys *and* a trailing newline). Only when nothing
matches does it say the secret probably differs, and then what it tried.

It runs only on failures, but on attacker-controlled input, so its work is bounded: at most
``MAX_HMAC_BYTES`` hashed and ``MAX_SECONDS`` of wall time per request, JSON and forms only up
to ``MAX_JSON_BODY``, at most ``keys.MAX_SECRETS`` own and ``keys.MAX_OTHER_SECRETS`` other
secrets, ``MAX_OBSERVATIONS`` readings of the signature, and an algorithm only when some
signature has its digest length. Every check is an HMAC compared against what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from inspector.signatures import mistake
from inspector.signatures.base import DIGEST_SIZES, Parsed, Scheme, label, whsec_bytes
from inspector.signatures.bodies import change_tiers, gunzipped, rewritten
from inspector.signatures.config import SignatureConfig
from inspector.signatures.keys import Keys
from inspector.signatures.mistake import ALGORITHM, Mistake, Variant
from inspector.signatures.observations import BASE64, HEX, UPPER_HEX, Observation, observe
from inspector.signatures.reserialize import MAX_JSON_BODY
from inspector.signatures.search import Budget, Hit, Search, Space
from inspector.signatures.signing import Signing, Target

MAX_HMAC_BYTES = 64 * 1024 * 1024  # ~50 ms of HMAC-SHA256 here; a 1 KiB body's search is ~2 MB
MAX_SECONDS = 0.25  # also bounds preparing re-serializations, which are not HMAC bytes

NOTHING_FOUND = "None of the common mistakes explain it"
WRITTEN = "how the digest is written"
SAME_SECRET = "the secret probably differs; check that the sender uses the same secret."
_CHANGES = change_tiers()
_FAMILY = {
    ("rewrite", 1): mistake.REWRITE,
    ("change", 1): mistake.BYTES,
    ("change", 2): mistake.BYTES,
    ("base", 1): mistake.BYTES,
    ("key", 1): mistake.SECRET,
    ("key", 2): mistake.OTHER_SECRET,
    ("signing", 1): mistake.SIGNING,
    ("signing", 2): mistake.SIGNING,
    ("signing", 3): mistake.SWEEP,
    ("algorithm", 1): mistake.ALGORITHM,
}


def diagnose(
    scheme: Scheme,
    parsed: Parsed,
    body: bytes,
    config: SignatureConfig,
    other_secrets: Mapping[str, Sequence[str]] | None = None,
    *,
    retired_secrets: Sequence[str] = (),
    target: Target | None = None,
) -> str | None:
    """One sentence naming the mistake(s) behind a failed signature, for ``invalid`` and
    ``malformed`` verdicts. For a malformed header, None when nothing is recognised (the
    reason already says what is wrong); for an invalid one, a "nothing found" sentence that
    says what was tried. ``retired_secrets`` are secrets this endpoint used before;
    ``target`` the request's method and URL spellings (``signing.target_of``)."""
    seen = observe(parsed)
    if not seen:
        return None if parsed.error is not None else _nothing_found(scheme, body, config, None)
    search = Search(
        _space(scheme, parsed, body, config, seen, other_secrets or {}, retired_secrets, target),
        seen,
        Budget(MAX_HMAC_BYTES, MAX_SECONDS),
        want=lambda o: o.accepted(parsed.encoding) and o.prefix == parsed.prefix,
    )
    hit = search.run()
    if hit is not None:
        return _phrase(hit, scheme, parsed)
    if parsed.error is not None:
        return None
    return _nothing_found(scheme, body, config, search)


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


def _space(
    scheme: Scheme,
    parsed: Parsed,
    body: bytes,
    config: SignatureConfig,
    seen: Sequence[Observation],
    other_secrets: Mapping[str, Sequence[str]],
    retired_secrets: Sequence[str],
    target: Target | None,
) -> Space:
    keys = Keys(scheme, config.secrets, other_secrets, retired_secrets)
    signing = Signing(scheme, parsed, target)
    sizes = {len(o.digest) for o in seen}
    want = parsed.algorithm
    expected = [Variant(want)] if DIGEST_SIZES[want] in sizes else []
    others = [
        Variant(algorithm, _algorithm_mistake(scheme, parsed, algorithm))
        for algorithm, size in DIGEST_SIZES.items()
        if algorithm != want and size in sizes
    ]
    unzipped = gunzipped(body)
    return Space(
        base=([Variant(body)], [unzipped] if unzipped is not None else []),
        rewrites=rewritten,
        change=_CHANGES,
        algorithm=(expected, others),
        key=(keys.own, keys.mistaken, keys.foreign),
        signing=(signing.expected, signing.mistaken, signing.requested, signing.sweep),
    )


def _algorithm_mistake(scheme: Scheme, parsed: Parsed, algorithm: str) -> Mistake:
    fix = (
        f"set hmac_algorithm to {algorithm!r} or switch the sender"
        if scheme.name == "hmac"
        else f"switch the sender to {parsed.algorithm.upper()}"
    )
    return Mistake(
        ALGORITHM,
        f"the signature is {label(algorithm)}, but {parsed.header} expects "
        f"{label(parsed.algorithm)}",
        fix,
    )


# -- phrasing --------------------------------------------------------------------------------


def _phrase(hit: Hit, scheme: Scheme, parsed: Parsed) -> str | None:
    found = [m for choice in hit.choices for m in choice.mistakes()]
    o = hit.observation
    if not found:
        written = _written(o, scheme, parsed, alone=True)
        if not written:
            if parsed.error is None:
                return None
            return (
                "The signature itself is correct; only the header's format is wrong (see the "
                "reason)."
            )
        says = " and ".join(m.says for m in written)
        if o.accepted(parsed.encoding):
            opening = f"The signature is right but {says}"
        else:
            opening = f"The signature is the correct {label(parsed.algorithm)} but {says}"
        return f"{opening}: {_fixes(written)}."
    found += _written(o, scheme, parsed, alone=False)
    if len(found) == 1:
        only = found[0]
        return f"{only.says[0].upper()}{only.says[1:]}: {only.fix}."
    count = {2: "Two", 3: "Three"}.get(len(found), str(len(found)))
    clauses = "; and ".join(m.says for m in found)
    return f"{count} mistakes together: {clauses}. Fix: {_fixes(found)}."


def _fixes(found: Sequence[Mistake]) -> str:
    return "; ".join(dict.fromkeys(m.fix for m in found))


def _written(o: Observation, scheme: Scheme, parsed: Parsed, *, alone: bool) -> list[Mistake]:
    """How the matched digest is written differently from what the scheme expects; phrased
    to follow "The signature is right but" when ``alone``, as full clauses otherwise."""
    out: list[Mistake] = []
    want, prefix, header = parsed.encoding, parsed.prefix, parsed.header
    generic = scheme.name == "hmac"
    subject = "" if alone else "the signature "
    if not o.accepted(want):
        if generic and o.encoding in (HEX, UPPER_HEX, BASE64):
            fix = f"set hmac_encoding to {'base64' if o.encoding == BASE64 else 'hex'!r}"
        elif want == BASE64:
            fix = "send standard, padded base64 (+ and /)"
        else:
            fix = f"send {want}"
        verb = "is " if subject else ""
        says = f"{subject}{verb}{o.encoding}-encoded, while {header} expects {want}"
        out.append(Mistake(WRITTEN, says, fix))
    if o.prefix != prefix:
        digest = f"<{want} digest>"
        hint = f" (or set hmac_prefix to {o.prefix!r})" if generic else ""
        if not o.prefix:
            says, fix = f"the {prefix!r} prefix is missing", f"send '{prefix}{digest}'{hint}"
        elif not prefix:
            says = f"{subject}has an unexpected {o.prefix!r} prefix"
            fix = f"send the bare {digest}{hint}"
        else:
            says = f"{subject}{'is ' if subject else ''}prefixed {o.prefix!r} instead of {prefix!r}"
            fix = f"send '{prefix}{digest}'{hint}"
        out.append(Mistake(WRITTEN, says, fix))
    return out


def _nothing_found(
    scheme: Scheme, body: bytes, config: SignatureConfig, search: Search | None
) -> str:
    if scheme.decodes_whsec and any(whsec_bytes(s) is None for s in config.secrets):
        return (
            f"{NOTHING_FOUND}, but the configured secret is not valid base64 after 'whsec_', "
            "so its UTF-8 bytes were used as the key: copy the secret exactly as the sender "
            "shows it."
        )
    notes = [_tried(search)] if search is not None else []
    if search is not None and search.budget.stopped:
        budget = search.budget
        size = (
            f"{budget.max_bytes // (1024 * 1024)} MiB"
            if budget.max_bytes >= 1024 * 1024
            else f"{budget.max_bytes} bytes"
        )
        notes.append(
            f"the doctor stopped early, at its limit of {size} hashed or {budget.seconds:g} s"
        )
    if len(body) > MAX_JSON_BODY:
        notes.append("re-serialized JSON is not tried over 1 MiB")
    note = f" ({'; '.join(notes)})" if notes else ""
    return f"{NOTHING_FOUND}{note}: {SAME_SECRET}"


def _tried(search: Search) -> str:
    """What the search tried, for the "nothing found" sentence."""
    counts: dict[str, int] = {}
    for where, ids in search.tried.items():
        family = _FAMILY.get(where)
        if family is not None:
            counts[family] = counts.get(family, 0) + len(ids)
    parts = [f"{counts[f]} {f}" for f in mistake.FAMILIES if counts.get(f)]
    parts.append("every hex/base64 reading and prefix of the signature")
    if search.paired:
        parts.append(f"{search.paired} pairs of these")
    return f"tried {search.budget.tries} candidates: {', '.join(parts)}"
