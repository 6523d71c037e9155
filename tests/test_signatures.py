from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.errors import BadRequest
from inspector.signatures import (
    SCHEMES,
    SignatureConfig,
    Verdict,
    detect_scheme,
    doctor,
    sign,
    verify,
)
from inspector.signatures.base import MAX_SIGNATURES
from inspector.signatures.reserialize import MAX_JSON_BODY

NOW = 1_700_000_000
Headers = list[tuple[str, str]]


def cfg(*secrets: str, **kwargs: Any) -> SignatureConfig:
    return SignatureConfig(secrets=secrets, **kwargs)


def digest(key: bytes, msg: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, msg, algorithm).digest()


def hexmac(key: bytes, msg: bytes, algorithm: str = "sha256") -> str:
    return digest(key, msg, algorithm).hex()


def b64mac(key: bytes, msg: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(digest(key, msg, algorithm)).decode()


def flip(text: str, index: int) -> str:
    """Change one character to another that is both hex and base64."""
    return text[:index] + ("1" if text[index] != "1" else "2") + text[index + 1 :]


def flip_byte(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


def check(headers: Headers, body: bytes, config: SignatureConfig, **kwargs: Any) -> Verdict:
    """verify(), for cases where None is not an acceptable answer."""
    verdict = verify(headers, body, config, **kwargs)
    assert verdict is not None
    return verdict


def lower(headers: Headers) -> Headers:
    """What the ASGI server hands the capture code: lower-cased names."""
    return [(name.lower(), value) for name, value in headers]


# -- known-answer vectors --------------------------------------------------------------------

SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    b"&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    b"&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    b"%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_HEADERS = [
    ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
    ("webhook-timestamp", "1614265330"),
    ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
]
# (name, secret, body, headers, now, index of the signature header)
VECTORS = [
    (
        "github",
        "It's a Secret to Everybody",
        b"Hello, World!",
        [
            (
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            )
        ],
        None,
        0,
    ),
    ("standard", STANDARD_SECRET, b'{"test": 2432232314}', STANDARD_HEADERS, 1614265330, 2),
    (
        "slack",
        "8f742231b10e8888abcd99yyyzzz85a5",
        SLACK_BODY,
        [
            ("X-Slack-Request-Timestamp", "1531420618"),
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ],
        1531420618,
        1,
    ),
]


@pytest.mark.parametrize(("scheme", "secret", "body", "headers", "now", "_"), VECTORS)
def test_known_answer_vectors_verify(
    scheme: str, secret: str, body: bytes, headers: Headers, now: int | None, _: int
) -> None:
    for given_headers in (headers, lower(headers)):
        verdict = verify(given_headers, body, cfg(secret), now=now)
        assert verdict == Verdict("valid", scheme, "Signature matches the configured secret.")
    assert detect_scheme(headers) == scheme


@pytest.mark.parametrize(("scheme", "secret", "body", "headers", "now", "at"), VECTORS)
def test_known_answer_vectors_fail_after_one_flip(
    scheme: str, secret: str, body: bytes, headers: Headers, now: int | None, at: int
) -> None:
    name, value = headers[at]
    for index in (-5, len(value) // 2):  # one in the digest, one in the middle
        tampered = [*headers[:at], (name, flip(value, index)), *headers[at + 1 :]]
        assert check(tampered, body, cfg(secret), now=now).status == "invalid"
    assert check(headers, flip_byte(body), cfg(secret), now=now).status == "invalid"
    assert check(headers, body, cfg(flip(secret, 10)), now=now).status == "invalid"


@pytest.mark.parametrize(("scheme", "secret", "body", "headers", "now", "_"), VECTORS)
def test_sign_reproduces_known_answer_vectors(
    scheme: str, secret: str, body: bytes, headers: Headers, now: int | None, _: int
) -> None:
    stamp = dict(lower(headers)).get("webhook-timestamp") or dict(lower(headers)).get(
        "x-slack-request-timestamp"
    )
    msg_id = dict(lower(headers)).get("webhook-id")
    signed = sign(scheme, secret, body, timestamp=int(stamp) if stamp else None, msg_id=msg_id)
    assert lower(signed) == lower(headers)


PLATFORM_BODY = json.dumps(
    {
        "event": "message.received",
        "timestamp": "2025-01-15T08:30:00Z",
        "data": {
            "channelId": "C1234567890",
            "messageId": "msg_001",
            "sender": {"userId": "U1234567890", "displayName": "王小明"},
            "type": "text",
            "content": "大家早安!",
        },
    },
    ensure_ascii=False,
    indent=2,
).encode()


def test_platform_fixed_vector() -> None:
    expected = "sha256=" + hmac.new(b"s3cret", PLATFORM_BODY, hashlib.sha256).hexdigest()
    assert sign("platform", "s3cret", PLATFORM_BODY) == [("X-Webhook-Signature", expected)]
    headers = [("x-webhook-signature", expected)]
    assert check(headers, PLATFORM_BODY, cfg("s3cret")).status == "valid"
    assert check(headers, flip_byte(PLATFORM_BODY, 30), cfg("s3cret")).status == "invalid"
    assert check(headers, PLATFORM_BODY, cfg("s3creT")).status == "invalid"


def test_stripe_fixed_vector() -> None:
    secret, body = "whsec_test_secret", b'{"id":"evt_1","object":"event"}'
    expected_hex = hmac.new(secret.encode(), f"{NOW}.".encode() + body, hashlib.sha256).hexdigest()
    value = f"t={NOW},v1={expected_hex}"
    assert sign("stripe", secret, body, timestamp=NOW) == [("Stripe-Signature", value)]
    headers = [("stripe-signature", value)]
    assert check(headers, body, cfg(secret), now=NOW).status == "valid"
    assert check(headers, flip_byte(body, 3), cfg(secret), now=NOW).status == "invalid"
    assert check(headers, body, cfg(secret + "x"), now=NOW).status == "invalid"
    tampered = [("stripe-signature", f"t={NOW},v1={flip(expected_hex, 7)}")]
    assert check(tampered, body, cfg(secret), now=NOW).status == "invalid"
    # The timestamp is signed: changing it breaks the signature.
    shifted = [("stripe-signature", f"t={NOW + 1},v1={expected_hex}")]
    assert check(shifted, body, cfg(secret), now=NOW).status == "invalid"


def test_shopify_fixed_vector() -> None:
    secret, body = "shpss_secret", b'{"id":820982911946154508,"email":"jon@example.com"}'
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    assert sign("shopify", secret, body) == [("X-Shopify-Hmac-Sha256", expected)]
    headers = [("x-shopify-hmac-sha256", expected)]
    assert check(headers, body, cfg(secret)).status == "valid"
    assert check(headers, flip_byte(body, 5), cfg(secret)).status == "invalid"
    assert check([("x-shopify-hmac-sha256", flip(expected, 10))], body, cfg(secret)).status == (
        "invalid"
    )


def test_github_legacy_sha1_header_alone() -> None:
    body = b"Hello, World!"
    value = "sha1=" + hexmac(b"key", body, "sha1")
    assert check([("x-hub-signature", value)], body, cfg("key")).status == "valid"
    # With both headers present (GitHub sends both), the SHA-256 one decides.
    both = [("x-hub-signature", value), *lower(sign("github", "key", body))]
    assert check(both, body, cfg("key")).status == "valid"
    both = [("x-hub-signature", value), ("x-hub-signature-256", "sha256=" + "0" * 64)]
    assert check(both, body, cfg("key")).status == "invalid"


def test_svix_header_names_are_accepted() -> None:
    body = b'{"test": 2432232314}'
    headers = [(name.replace("webhook-", "svix-"), value) for name, value in STANDARD_HEADERS]
    verdict = verify(headers, body, cfg(STANDARD_SECRET), now=1614265330)
    assert verdict is not None
    assert (verdict.status, verdict.scheme) == ("valid", "standard")


def test_several_signatures_in_one_header() -> None:
    body = b"{}"
    good = hexmac(b"new", f"{NOW}.".encode() + body)
    value = f"t={NOW},v1={'ab' * 32},v0={'cd' * 32},v1={good}"
    assert check([("stripe-signature", value)], body, cfg("new"), now=NOW).status == "valid"
    msg = b"id1." + str(NOW).encode() + b"." + body
    good64 = b64mac(b"k", msg)
    value = f"v1a,{'x' * 40} v2,whatever v1,{'A' * 43}= v1,{good64}"
    headers = [("webhook-id", "id1"), ("webhook-timestamp", str(NOW)), ("webhook-signature", value)]
    secret = "whsec_" + base64.b64encode(b"k").decode()
    assert check(headers, body, cfg(secret), now=NOW).status == "valid"


# -- round trips -----------------------------------------------------------------------------

HMAC_CONFIGS = [
    SignatureConfig(hmac_header="X-Sig", hmac_algorithm=a, hmac_encoding=e, hmac_prefix=p)
    for a in ("sha1", "sha256", "sha512")
    for e in ("hex", "base64")
    for p in ("", "sha=")
]

ODD_BODIES = [
    b'{"url": "https:\\/\\/example.com\\/a"}',
    '{"name": "José", "city": "Zürich"}'.encode(),
    b'\xef\xbb\xbf{"bom": true}',
    b'{\n    "pretty": [\n        1,\n        2.50\n    ]\n}\n',
    b"\xff\xfe not utf-8 at all \x00",
    b"",
]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("body", ODD_BODIES, ids=range(len(ODD_BODIES)))
def test_odd_bodies_verify_over_bytes(scheme: str, body: bytes) -> None:
    config = cfg("whsec_c2VjcmV0", scheme=scheme)
    headers = sign(scheme, "whsec_c2VjcmV0", body, timestamp=NOW, config=config)
    verdict = verify(lower(headers), body, config, now=NOW)
    assert verdict is not None
    assert verdict.status == "valid", verdict


@pytest.mark.parametrize(
    "config", HMAC_CONFIGS, ids=lambda c: f"{c.hmac_algorithm}-{c.hmac_encoding}"
)
def test_generic_hmac_round_trip(config: SignatureConfig) -> None:
    body = b'{"a": 1}'
    headers = sign("hmac", "k", body, config=config)
    assert headers[0][0] == "X-Sig"
    config = SignatureConfig(**{**config.to_dict(), "secrets": ("k",), "scheme": "hmac"})
    assert check(lower(headers), body, config).status == "valid"
    assert check(lower(headers), body + b" ", config).status == "invalid"


def test_generic_hmac_header_is_detected_in_auto_mode() -> None:
    config = cfg("k", hmac_header="X-My-Signature")
    headers = sign("hmac", "k", b"x", config=config)
    assert check(lower(headers), b"x", config).scheme == "hmac"
    assert detect_scheme(headers) is None  # only the named schemes have a fixed header


def test_sign_defaults() -> None:
    before = int(time.time())
    headers = dict(sign("standard", STANDARD_SECRET, b"{}"))
    assert headers["webhook-id"].startswith("msg_") and len(headers["webhook-id"]) > 10
    assert before <= int(headers["webhook-timestamp"]) <= time.time() + 1
    assert headers["webhook-id"] != dict(sign("standard", STANDARD_SECRET, b"{}"))["webhook-id"]
    slack = sign("slack", "k", b"{}", timestamp=123)
    assert slack[0] == ("X-Slack-Request-Timestamp", "123")
    assert slack[1][0] == "X-Slack-Signature" and slack[1][1].startswith("v0=")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scheme": "nope"},
        {"secret": ""},
        {"timestamp": -1},
        {"msg_id": "has space"},
        {"msg_id": ""},
    ],
)
def test_sign_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    args = {"scheme": "standard", "secret": "k", **kwargs}
    with pytest.raises(BadRequest):
        sign(args.pop("scheme"), args.pop("secret"), b"{}", **args)


secret_text = st.text(min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    scheme=st.sampled_from(SCHEMES),
    secret=secret_text,
    body=st.binary(max_size=300),
    timestamp=st.integers(0, 10**11),
    config=st.sampled_from(HMAC_CONFIGS),
)
def test_property_sign_then_verify_round_trips(
    scheme: str, secret: str, body: bytes, timestamp: int, config: SignatureConfig
) -> None:
    config = SignatureConfig(**{**config.to_dict(), "secrets": (secret,), "scheme": scheme})
    headers = sign(scheme, secret, body, timestamp=timestamp, config=config)
    verdict = verify(lower(headers), body, config, now=timestamp)
    assert verdict is not None
    assert (verdict.status, verdict.scheme) == ("valid", scheme)
    auto = SignatureConfig(**{**config.to_dict(), "scheme": "auto"})
    assert check(headers, body, auto, now=timestamp).status == "valid"


# -- verdicts without a check ----------------------------------------------------------------


def test_nothing_to_say_returns_none() -> None:
    headers = [("host", "localhost"), ("content-type", "application/json")]
    assert verify(headers, b"{}", SignatureConfig()) is None
    assert verify([], b"", SignatureConfig()) is None


def test_no_secret_with_a_signature_header() -> None:
    headers = sign("stripe", "k", b"{}")
    verdict = verify(headers, b"{}", SignatureConfig())
    assert verdict is not None
    assert (verdict.status, verdict.scheme) == ("no_secret", "stripe")
    verdict = verify(headers, b"{}", SignatureConfig(scheme="stripe"))
    assert verdict is not None and verdict.status == "no_secret"


def test_missing() -> None:
    verdict = verify([("host", "x")], b"{}", cfg("k"))
    assert verdict is not None
    assert (verdict.status, verdict.scheme) == ("missing", None)
    verdict = verify([("host", "x")], b"{}", SignatureConfig(scheme="github"))
    assert verdict is not None
    assert (verdict.status, verdict.scheme) == ("missing", "github")
    assert "X-Hub-Signature-256" in verdict.reason
    # An explicit scheme says which other signature the request carries instead.
    headers = sign("platform", "k", b"{}")
    verdict = verify(headers, b"{}", cfg("k", scheme="github"))
    assert verdict is not None and verdict.status == "missing"
    assert "X-Webhook-Signature" in verdict.reason


def test_rotation_second_secret_matches() -> None:
    headers = sign("platform", "new", b"{}")
    verdict = verify(headers, b"{}", cfg("old", "new"))
    assert verdict == Verdict("valid", "platform", "Signature matches secret #2 of 2.")
    verdict = verify(headers, b"{}", cfg("old", "older"))
    assert verdict is not None and verdict.status == "invalid"
    assert "any of the 2 configured secrets" in verdict.reason


def test_verdict_to_dict() -> None:
    verdict = Verdict("invalid", "github", "No match.", "Because.")
    assert verdict.to_dict() == {
        "status": "invalid",
        "scheme": "github",
        "reason": "No match.",
        "diagnosis": "Because.",
        "doctor": None,
    }


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([("X-Webhook-Signature", "x")], "platform"),
        ([("x-hub-signature", "x")], "github"),
        ([("STRIPE-SIGNATURE", "x")], "stripe"),
        ([("x-slack-signature", "x")], "slack"),
        ([("X-Shopify-Hmac-SHA256", "x")], "shopify"),
        ([("svix-signature", "x")], "standard"),
        ([("x-signature", "x"), ("webhook-id", "x")], None),
    ],
)
def test_detect_scheme(headers: Headers, expected: str | None) -> None:
    assert detect_scheme(headers) == expected


# -- timestamps ------------------------------------------------------------------------------


def test_stripe_rejects_only_old_timestamps() -> None:
    headers = sign("stripe", "k", b"{}", timestamp=NOW)
    verdict = verify(headers, b"{}", cfg("k"), now=NOW + 301)
    assert verdict is not None and verdict.status == "expired"
    assert "301 seconds old" in verdict.reason and "1 beyond" in verdict.reason
    assert check(headers, b"{}", cfg("k"), now=NOW + 300).status == "valid"
    assert check(headers, b"{}", cfg("k"), now=NOW - 10_000).status == "valid"
    assert check(headers, b"{}", cfg("k", tolerance=0), now=NOW + 10**6).status == "valid"


@pytest.mark.parametrize("scheme", ["slack", "standard"])
def test_two_sided_tolerance(scheme: str) -> None:
    headers = sign(scheme, "k", b"{}", timestamp=NOW)
    old = verify(headers, b"{}", cfg("k"), now=NOW + 400)
    assert old is not None and old.status == "expired"
    assert "400 seconds old" in old.reason and "100 beyond" in old.reason
    assert old.diagnosis is not None and "400 seconds old" in old.diagnosis
    future = verify(headers, b"{}", cfg("k"), now=NOW - 500)
    assert future is not None and future.status == "expired"
    assert "500 seconds in the future" in future.reason
    assert future.diagnosis is not None and "ahead" in future.diagnosis
    assert check(headers, b"{}", cfg("k", tolerance=600), now=NOW - 500).status == "valid"
    assert check(headers, b"{}", cfg("k", tolerance=0), now=NOW - 10**6).status == "valid"


def test_expired_needs_an_authentic_signature() -> None:
    headers = sign("slack", "other", b"{}", timestamp=NOW)
    assert check(headers, b"{}", cfg("k"), now=NOW + 10**5).status == "invalid"


def test_now_defaults_to_the_clock() -> None:
    assert check(sign("slack", "k", b"{}"), b"{}", cfg("k")).status == "valid"
    stale = sign("slack", "k", b"{}", timestamp=int(time.time()) - 3600)
    assert check(stale, b"{}", cfg("k")).status == "expired"


# -- malformed headers -----------------------------------------------------------------------

HEX64 = "ab" * 32
B64 = base64.b64encode(b"\x01" * 32).decode()
STAMP = str(NOW)


def standard(signature: str, *, msg_id: str | None = "msg_1", stamp: str | None = STAMP) -> Headers:
    headers = [("webhook-signature", signature)]
    if msg_id is not None:
        headers.append(("webhook-id", msg_id))
    if stamp is not None:
        headers.append(("webhook-timestamp", stamp))
    return headers


def slack(signature: str, stamp: str | None = STAMP) -> Headers:
    headers = [("x-slack-signature", signature)]
    return headers if stamp is None else [*headers, ("x-slack-request-timestamp", stamp)]


MALFORMED: list[tuple[str, Headers, str]] = [
    # (id, headers, a word the reason must contain)
    ("std-bare-version", standard("v1"), "version,signature"),
    ("std-empty-sig", standard("v1,"), "empty"),
    ("std-two-commas", standard("v1,a,b"), "base64"),
    ("std-not-base64", standard("v1,!!!!"), "base64"),
    ("std-short-base64", standard("v1,AAAA"), "bytes"),
    ("std-noncanonical", standard("v1," + B64[:-2] + "F="), "canonical"),
    ("std-10000", standard(" ".join([f"v1,{B64}"] * 10_000)), "at most 32"),
    ("std-empty", standard(""), "empty"),
    ("std-only-v2", standard(f"v2,{B64} v1a,{B64}"), "no v1"),
    ("std-no-id", standard(f"v1,{B64}", msg_id=None), "webhook-id is missing"),
    ("std-empty-id", standard(f"v1,{B64}", msg_id=""), "webhook-id is empty"),
    ("std-no-ts", standard(f"v1,{B64}", stamp=None), "webhook-timestamp is missing"),
    ("std-ts-text", standard(f"v1,{B64}", stamp="soon"), "digits"),
    ("std-ts-negative", standard(f"v1,{B64}", stamp="-5"), "digits"),
    ("std-ts-huge", standard(f"v1,{B64}", stamp=str(10**30)), "out of range"),
    ("std-ts-millis", standard(f"v1,{B64}", stamp="1700000000000"), "milliseconds"),
    ("std-ts-float", standard(f"v1,{B64}", stamp="1700000000.5"), "digits"),
    ("std-repeated", [*standard(f"v1,{B64}"), ("webhook-signature", "v1,x")], "repeated"),
    ("std-id-repeated", [*standard(f"v1,{B64}"), ("webhook-id", "other")], "repeated"),
    ("stripe-no-t", [("stripe-signature", f"v1={HEX64}")], "no t="),
    ("stripe-two-t", [("stripe-signature", f"t=1,t=2,v1={HEX64}")], "2 t="),
    ("stripe-t-text", [("stripe-signature", f"t=now,v1={HEX64}")], "digits"),
    ("stripe-t-huge", [("stripe-signature", f"t={10**30},v1={HEX64}")], "out of range"),
    ("stripe-t-empty", [("stripe-signature", f"t=,v1={HEX64}")], "empty"),
    ("stripe-no-v1", [("stripe-signature", f"t=1,v0={HEX64}")], "no v1="),
    ("stripe-not-hex", [("stripe-signature", f"t=1,v1={'zz' * 32}")], "not hex"),
    ("stripe-short-hex", [("stripe-signature", "t=1,v1=abcd")], "4 hex digits"),
    ("stripe-empty-v1", [("stripe-signature", "t=1,v1=")], "empty"),
    ("stripe-garbage", [("stripe-signature", "garbage")], "key=value"),
    ("stripe-trailing-comma", [("stripe-signature", f"t=1,v1={HEX64},")], "key=value"),
    ("stripe-empty", [("stripe-signature", "")], "empty"),
    ("stripe-10000", [("stripe-signature", ",".join([f"v1={HEX64}"] * 10_000))], "at most"),
    ("slack-no-ts", slack(f"v0={HEX64}", stamp=None), "Timestamp is missing"),
    ("slack-ts-negative", slack(f"v0={HEX64}", stamp="-1531420618"), "digits"),
    ("slack-no-prefix", slack(HEX64), "must start with 'v0='"),
    ("slack-odd-hex", slack("v0=" + HEX64[:-1]), "63 hex digits"),
    ("platform-empty", [("x-webhook-signature", "")], "empty"),
    ("platform-prefix-only", [("x-webhook-signature", "sha256=")], "empty"),
    ("platform-not-hex", [("x-webhook-signature", "sha256=" + "g" * 64)], "'g'"),
    ("platform-long-hex", [("x-webhook-signature", "sha256=" + HEX64 + "ab")], "66 hex"),
    ("platform-spaced-hex", [("x-webhook-signature", "sha256=ab " + HEX64[3:])], "not hex"),
    (
        "platform-repeated",
        [("x-webhook-signature", f"sha256={HEX64}"), ("X-Webhook-Signature", f"sha256={HEX64}")],
        "repeated (2 values)",
    ),
    ("platform-latin1", [("x-webhook-signature", "sha256=é" + HEX64[1:])], "not hex"),
    ("github-bare", [("x-hub-signature-256", HEX64)], "must start with"),
    ("shopify-not-b64", [("x-shopify-hmac-sha256", "not base64!")], "base64"),
    ("shopify-hex", [("x-shopify-hmac-sha256", HEX64)], "48 bytes"),
    ("shopify-unpadded", [("x-shopify-hmac-sha256", B64.rstrip("="))], "base64"),
]


@pytest.mark.parametrize(
    ("headers", "word"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_shapes(headers: Headers, word: str) -> None:
    verdict = verify(headers, b"{}", cfg("k"), now=NOW)
    assert verdict is not None
    assert verdict.status == "malformed", verdict
    assert word in verdict.reason
    assert verdict.reason.endswith(".") and "bug" not in verdict.reason


def test_cap_is_on_entries_not_on_work_done_before_it() -> None:
    # 32 entries is fine, 33 is not.
    ok = standard(" ".join([f"v1,{B64}"] * MAX_SIGNATURES))
    assert check(ok, b"{}", cfg("k"), now=NOW).status == "invalid"
    too_many = standard(" ".join([f"v1,{B64}"] * (MAX_SIGNATURES + 1)))
    assert check(too_many, b"{}", cfg("k"), now=NOW).status == "malformed"


@pytest.mark.parametrize("scheme", ["platform", "github", "stripe", "slack"])
def test_uppercase_hex_is_accepted(scheme: str) -> None:
    headers = sign(scheme, "k", b"{}", timestamp=NOW)
    upper = [(name, value.replace(value[-64:], value[-64:].upper())) for name, value in headers]
    assert upper != headers
    assert check(upper, b"{}", cfg("k"), now=NOW).status == "valid"


def test_generic_hmac_malformed() -> None:
    config = cfg("k", scheme="hmac", hmac_prefix="sha512=", hmac_algorithm="sha512")
    verdict = check([("x-signature", "sha512=" + HEX64)], b"{}", config)
    assert verdict.status == "malformed" and "128" in verdict.reason


# -- Standard Webhooks and Stripe: any v1 entry may match ------------------------------------

ANY_WHSEC = "whsec_" + base64.b64encode(b"standard-key-bytes").decode()
ANY_BODY = b'{"event":"ping"}'


def test_standard_valid_entry_next_to_a_malformed_one() -> None:
    key = base64.b64decode(ANY_WHSEC[6:])
    signature = b64mac(key, f"msg_1.{NOW}.".encode() + ANY_BODY)
    headers = standard(f"v1,!!not-base64!! v1,{signature} v1,AAAA")
    assert check(headers, ANY_BODY, cfg(ANY_WHSEC), now=NOW).status == "valid"
    bad = standard("v1,!!not-base64!! v1," + "A" * 43 + "=")
    verdict = check(bad, ANY_BODY, cfg(ANY_WHSEC), now=NOW)
    assert verdict.status == "invalid" and "1 unreadable entry skipped" in verdict.reason
    only_bad = standard("v1,!!not-base64!!")
    assert check(only_bad, ANY_BODY, cfg(ANY_WHSEC), now=NOW).status == "malformed"


def test_stripe_valid_v1_next_to_a_malformed_one() -> None:
    good = hexmac(b"k", f"{NOW}.".encode() + ANY_BODY)
    headers = [("stripe-signature", f"t={NOW},v1=zz,v1={good}")]
    assert check(headers, ANY_BODY, cfg("k"), now=NOW).status == "valid"


# -- the doctor ------------------------------------------------------------------------------

JSON_BODY = (
    b'{\n  "event": "message.received",\n  "data": {"content": "\xe5\xa4\xa7\xe5\xae\xb6"}\n}'
)


def diagnosis(headers: Headers, body: bytes, config: SignatureConfig, **kwargs: Any) -> str:
    verdict = check(headers, body, config, now=NOW, **kwargs)
    assert verdict.status in ("invalid", "malformed"), verdict
    assert verdict.diagnosis is not None, verdict
    return verdict.diagnosis


def platform_header(value: str) -> Headers:
    return [("x-webhook-signature", value)]


def test_doctor_json_stringify() -> None:
    compact = json.dumps(json.loads(JSON_BODY), separators=(",", ":"), ensure_ascii=False)
    signature = "sha256=" + hexmac(b"k", compact.encode())
    found = diagnosis(platform_header(signature), JSON_BODY, cfg("k"))
    assert "JSON.stringify(req.body)" in found and "raw body" in found


def test_doctor_json_stringify_orders_keys_like_javascript() -> None:
    body = b'{"b": 1.0, "10": true, "2": null, "a": [1.5, 2.0]}'
    as_js = b'{"2":null,"10":true,"b":1,"a":[1.5,2]}'  # what node prints for this object
    found = diagnosis(platform_header("sha256=" + hexmac(b"k", as_js)), body, cfg("k"))
    assert "JSON.stringify" in found


def test_doctor_python_json_dumps() -> None:
    body = '{"content":"大家早安!","n":[1,2]}'.encode()
    python = json.dumps(json.loads(body)).encode()
    found = diagnosis(platform_header("sha256=" + hexmac(b"k", python)), body, cfg("k"))
    assert "json.dumps()" in found and "raw body" in found


def test_doctor_json_with_timestamped_scheme() -> None:
    body = b'{"test": 2432232314}'
    compact = b'{"test":2432232314}'
    signed = sign("stripe", "k", compact, timestamp=NOW)
    assert "JSON.stringify" in diagnosis(signed, body, cfg("k"))


def test_doctor_trailing_newline_added_and_stripped() -> None:
    body = b'{"a":1}'
    added = platform_header("sha256=" + hexmac(b"k", body + b"\n"))
    assert "trailing newline it did not send" in diagnosis(added, body, cfg("k"))
    stripped = platform_header("sha256=" + hexmac(b"k", body))
    assert "without its trailing newline" in diagnosis(stripped, body + b"\r\n", cfg("k"))


def test_doctor_secret_whitespace() -> None:
    headers = sign("github", "k\n", b"{}")
    assert "ends with a newline" in diagnosis(headers, b"{}", cfg("k"))
    headers = sign("github", "k", b"{}")
    found = diagnosis(headers, b"{}", cfg(" k "))
    assert "The configured secret has surrounding whitespace" in found
    found = diagnosis(headers, b"{}", cfg("x", " k "))
    assert found.startswith("Configured secret #2 has surrounding whitespace")


def test_doctor_whsec_used_raw_for_standard() -> None:
    body = b'{"test": 2432232314}'
    msg = f"msg_1.{NOW}.".encode() + body
    headers = standard("v1," + b64mac(STANDARD_SECRET.encode(), msg))
    found = diagnosis(headers, body, cfg(STANDARD_SECRET))
    assert "whsec_ secret string itself" in found and "base64-decoded" in found


def test_doctor_whsec_decoded_for_stripe() -> None:
    decoded = base64.b64decode(STANDARD_SECRET.removeprefix("whsec_"))
    signature = hexmac(decoded, f"{NOW}.".encode() + b"{}")
    headers = [("stripe-signature", f"t={NOW},v1={signature}")]
    found = diagnosis(headers, b"{}", cfg(STANDARD_SECRET))
    assert "base64-decoded the whsec_ secret" in found and "stripe" in found


def test_doctor_standard_secret_not_base64() -> None:
    secret = "whsec_this is not base64!"
    headers = sign("standard", secret, b"{}", timestamp=NOW, msg_id="msg_1")
    assert check(headers, b"{}", cfg(secret), now=NOW).status == "valid"  # UTF-8 fallback
    headers = sign("standard", "whsec_other secret!", b"{}", timestamp=NOW, msg_id="msg_1")
    assert "not valid base64" in diagnosis(headers, b"{}", cfg(secret))


@pytest.mark.parametrize("algorithm", ["sha1", "sha512"])
def test_doctor_wrong_algorithm(algorithm: str) -> None:
    headers = platform_header("sha256=" + hexmac(b"k", b"{}", algorithm))
    found = diagnosis(headers, b"{}", cfg("k"))
    assert f"HMAC-{algorithm.upper()}" in found and "expects HMAC-SHA256" in found
    config = cfg("k", scheme="hmac")
    found = diagnosis([("x-signature", hexmac(b"k", b"{}", algorithm))], b"{}", config)
    assert f"hmac_algorithm to {algorithm!r}" in found


def test_doctor_hex_versus_base64() -> None:
    headers = platform_header("sha256=" + b64mac(b"k", b"{}"))
    found = diagnosis(headers, b"{}", cfg("k"))
    assert "base64-encoded" in found and "expects hex" in found
    found = diagnosis([("x-shopify-hmac-sha256", hexmac(b"k", b"{}"))], b"{}", cfg("k"))
    assert "hex-encoded" in found and "expects base64" in found


def test_doctor_prefix_missing_or_wrong() -> None:
    right = hexmac(b"k", b"{}")
    found = diagnosis(platform_header(right), b"{}", cfg("k"))
    assert "signature is right" in found and "'sha256=' prefix is missing" in found
    found = diagnosis(platform_header("sha1=" + right), b"{}", cfg("k"))
    assert "prefixed 'sha1=' instead of 'sha256='" in found
    found = diagnosis([("x-shopify-hmac-sha256", "sha256=" + b64mac(b"k", b"{}"))], b"{}", cfg("k"))
    assert "unexpected 'sha256=' prefix" in found
    headers = [("stripe-signature", f"t={NOW},v2={hexmac(b'k', f'{NOW}.'.encode() + b'{}')}")]
    assert "prefixed 'v2=' instead of 'v1='" in diagnosis(headers, b"{}", cfg("k"))


def test_doctor_other_endpoint_secret() -> None:
    headers = sign("platform", "orders-secret", b"{}")
    others = {"billing": ["nope"], "orders": ["old", "orders-secret"]}
    found = diagnosis(headers, b"{}", cfg("k"), other_secrets=others)
    assert "endpoint 'orders'" in found


def test_doctor_finds_nothing() -> None:
    headers = sign("platform", "someone-else", b"{}")
    found = diagnosis(headers, b"{}", cfg("k"), other_secrets={"a": ["b"]})
    assert found.startswith("None of the common mistakes") and "same secret" in found


def test_doctor_is_silent_on_valid_and_on_unrecognisable_malformed() -> None:
    verdict = verify(sign("platform", "k", JSON_BODY), JSON_BODY, cfg("k"))
    assert verdict is not None and verdict.diagnosis is None
    verdict = verify(platform_header("sha256=" + "g" * 64), b"{}", cfg("k"))
    assert verdict is not None and verdict.status == "malformed" and verdict.diagnosis is None


def test_doctor_skips_json_for_huge_bodies() -> None:
    body = b'{"pad": "' + b"x" * MAX_JSON_BODY + b'", "n": 1}'
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    found = diagnosis(platform_header("sha256=" + hexmac(b"k", compact)), body, cfg("k"))
    assert "not tried over 1 MiB" in found


def test_doctor_work_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "MAX_HMAC_BYTES", 3 * 1024)
    body = b"x" * 1024
    headers = sign("platform", "someone-else", body)
    assert "stopped early" in diagnosis(headers, body, cfg("k"))


# -- configuration ---------------------------------------------------------------------------


def test_config_round_trip() -> None:
    config = SignatureConfig.from_dict(
        {"secret": "a", "scheme": "Stripe", "tolerance": 60, "hmac_prefix": "v1="}
    )
    assert config.secrets == ("a",) and config.scheme == "stripe"
    assert SignatureConfig.from_dict(config.to_dict()) == config
    assert SignatureConfig.from_dict({"secrets": ["a", "b"]}).secrets == ("a", "b")
    assert SignatureConfig.from_dict({}) == SignatureConfig()
    assert SignatureConfig.from_dict({"secret": None, "tolerance": None}) == SignatureConfig()
    assert SignatureConfig(secrets="single").secrets == ("single",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings_", "words"),
    [
        ({"scheme": "paypal"}, "Unknown signature scheme 'paypal'"),
        ({"scheme": 3}, "scheme must be a string"),
        ({"hmac_algorithm": "md5"}, "hmac_algorithm 'md5'"),
        ({"hmac_encoding": "base32"}, "hmac_encoding 'base32'"),
        ({"tolerance": -1}, "tolerance must be 0"),
        ({"tolerance": 1.5}, "whole number"),
        ({"tolerance": True}, "whole number"),
        ({"secret": 42}, "secret must be a string or a list of strings"),
        ({"secrets": ["a", 1]}, "secret must be a string or a list of strings"),
        ({"secrets": {"a": 1}}, "secret must be a string or a list of strings"),
        ({"secret": ""}, "must not be empty"),
        ({"secret": "a", "secrets": ["b"]}, "either secret or secrets"),
        ({"secrets": ["s"] * 17}, "At most 16"),
        ({"hmac_header": "X Bad"}, "not a valid header name"),
        ({"hmac_prefix": " v1="}, "hmac_prefix"),
        ({"tolerence": 5}, "Unknown signature setting(s): tolerence"),
    ],
)
def test_config_validation(settings_: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequest) as info:
        SignatureConfig.from_dict(settings_)
    assert words in str(info.value)
    assert info.value.status == 400


def test_config_from_dict_requires_a_mapping() -> None:
    with pytest.raises(BadRequest):
        SignatureConfig.from_dict(["secret"])  # type: ignore[arg-type]


# -- verify never raises -----------------------------------------------------------------------

NAMES = sorted(
    {
        "x-webhook-signature",
        "x-hub-signature-256",
        "x-hub-signature",
        "stripe-signature",
        "x-slack-signature",
        "x-slack-request-timestamp",
        "x-shopify-hmac-sha256",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "x-signature",
        "content-type",
    }
)
FRAGMENTS = [
    "v1,",
    "v1=",
    "v0=",
    "t=",
    "sha256=",
    "sha1=",
    ",",
    " ",
    "=",
    "whsec_",
    "-",
    "1614265330",
]
latin1 = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12)
values = st.lists(
    st.one_of(
        latin1,
        st.sampled_from(FRAGMENTS),
        st.sampled_from([HEX64, HEX64.upper(), B64, B64.rstrip("="), str(10**30), "-5"]),
    ),
    max_size=8,
).map("".join)
headers_strategy = st.lists(
    st.tuples(st.sampled_from(NAMES) | st.sampled_from(NAMES).map(str.upper), values), max_size=6
)
configs = st.builds(
    SignatureConfig,
    secrets=st.lists(st.sampled_from(["k", STANDARD_SECRET, " k\n", "whsec_!"]), max_size=2).map(
        tuple
    ),
    scheme=st.sampled_from(("auto", *SCHEMES)),
    tolerance=st.integers(0, 10**6),
    hmac_algorithm=st.sampled_from(["sha1", "sha256", "sha512"]),
    hmac_encoding=st.sampled_from(["hex", "base64"]),
    hmac_prefix=st.sampled_from(["", "sha256=", "v1,"]),
)
bodies = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"{}", b'{"a": 1}\n', JSON_BODY, b"[" * 5000, b'{"n": 1e400}', b"NaN"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=headers_strategy,
    body=bodies,
    config=configs,
    now=st.one_of(st.none(), st.integers(-(10**13), 10**13), st.floats()),
    others=st.dictionaries(st.text(max_size=5), st.lists(st.sampled_from(["k", "o"]), max_size=2)),
)
def test_property_verify_never_raises(
    headers: Headers,
    body: bytes,
    config: SignatureConfig,
    now: float | None,
    others: dict[str, list[str]],
) -> None:
    verdict = verify(headers, body, config, now=now, other_secrets=others)
    if verdict is None:
        assert not config.secrets and config.scheme == "auto"
        return
    assert verdict.status in ("valid", "invalid", "malformed", "missing", "expired", "no_secret")
    assert "bug in webhook-inspector" not in verdict.reason
    assert verdict.reason and verdict.reason.endswith(".")
    assert verdict.to_dict()["status"] == verdict.status


def test_a_bug_becomes_a_malformed_verdict_not_an_exception() -> None:
    headers = sign("platform", "k", b"{}")
    verdict = check(headers, None, cfg("k"))  # type: ignore[arg-type]
    assert verdict.status == "malformed" and "bug in webhook-inspector" in verdict.reason


@settings(max_examples=100, deadline=None)
@given(scheme=st.sampled_from(SCHEMES), body=st.binary(max_size=64), data=st.data())
def test_property_tampered_signed_headers_never_raise(
    scheme: str, body: bytes, data: st.DataObject
) -> None:
    config = cfg("k", scheme=scheme)
    headers = sign(scheme, "k", body, timestamp=NOW, config=config)
    index = data.draw(st.integers(0, len(headers) - 1))
    name, value = headers[index]
    cut = data.draw(st.integers(0, len(value)))
    junk = data.draw(latin1)
    headers[index] = (name, value[:cut] + junk + value[cut + len(junk) :])
    verdict = verify(headers, body, config, now=NOW)
    assert verdict is not None and "bug in webhook-inspector" not in verdict.reason
    if headers[index][1] != value and verdict.status == "valid":
        # Only case and optional whitespace may change without changing the signature.
        assert headers[index][1].strip(" \t").lower() == value.lower()
