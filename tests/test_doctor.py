"""The doctor's corpus: one vector per likely mistake (and pairs), each asserting the name.

Every vector is built the way the mistaken sender builds it — the body it signed, the key,
the signed string, the algorithm and encoding — and the doctor must name that mistake from
the request alone. Pure functions, no HTTP (the live path is in test_receiver_signatures).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector.signatures import SignatureConfig, Verdict, doctor, reserialize, verify
from inspector.signatures.reserialize import STYLES

NOW = 1_700_000_000
SECRET = "k"
Headers = list[tuple[str, str]]


@pytest.fixture(autouse=True)
def _no_clock_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The wall-time cap is tested on its own; here a loaded machine must not cut a search."""
    monkeypatch.setattr(doctor, "MAX_SECONDS", 60.0)
    yield


def cfg(*secrets: str, **kwargs: Any) -> SignatureConfig:
    return SignatureConfig(secrets=secrets or (SECRET,), **kwargs)


def hexmac(msg: bytes, key: bytes = SECRET.encode(), algorithm: str = "sha256") -> str:
    return hmac.new(key, msg, algorithm).hexdigest()


def b64mac(msg: bytes, key: bytes) -> str:
    return base64.b64encode(hmac.new(key, msg, "sha256").digest()).decode()


def platform(signed: bytes, **kwargs: Any) -> Headers:
    """The platform's header over ``signed`` (what the mistaken sender hashed)."""
    return [("x-webhook-signature", "sha256=" + hexmac(signed, **kwargs))]


def check(headers: Headers, body: bytes, config: SignatureConfig, **kwargs: Any) -> Verdict:
    verdict = verify(headers, body, config, now=NOW, **kwargs)
    assert verdict is not None
    return verdict


def found(headers: Headers, body: bytes, config: SignatureConfig | None = None, **kw: Any) -> str:
    verdict = check(headers, body, config or cfg(), **kw)
    assert verdict.status in ("invalid", "malformed"), verdict
    assert verdict.diagnosis is not None, verdict
    assert "None of the common mistakes" not in verdict.diagnosis, verdict.diagnosis
    return verdict.diagnosis


# -- re-serialization ------------------------------------------------------------------------

# What node 20 prints for JSON.stringify(JSON.parse(EDGES)) and with (null, 2): integer-like
# keys first (not "01", not 2**32-1), numbers in ECMAScript's format, big integers rounded.
EDGES = (
    '{"b": 1.0, "10": true, "2": null, "a": [1.5, 2.0, 1e16, 12345678901234567890, 1e-7, '
    "0.000001, 1e21, 123.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 100, 1E2, 1.10, "
    '4294967295, 4294967294, 9007199254740993], "01": 1, "4294967294": 2, "4294967295": 3, '
    '"s": "\u00e9\u2028 </x>\u007f\\u0001 \U0001f600"}'
).encode()
NODE_COMPACT = (
    '{"2":null,"10":true,"4294967294":2,"b":1,"a":[1.5,2,10000000000000000,'
    "12345678901234567000,1e-7,0.000001,1e+21,123,0,5e-324,1.7976931348623157e+308,0.1,100,"
    '100,1.1,4294967295,4294967294,9007199254740992],"01":1,"4294967295":3,'
    '"s":"\u00e9\u2028 </x>\u007f\\u0001 \U0001f600"}'
).encode()


def render(body: bytes, name: str) -> bytes:
    style = next(s for s in STYLES if s.name == name)
    document = reserialize.parse(body)
    assert document is not None
    data = document.render(style)
    assert data is not None
    return data


def test_javascript_style_is_byte_identical_to_node() -> None:
    assert render(EDGES, "JSON.stringify(req.body)") == NODE_COMPACT
    pretty = render(EDGES, "JSON.stringify(body, null, 2)")
    assert pretty.startswith(b'{\n  "2": null,\n  "10": true,') and b"\n    1.5,\n" in pretty


def test_json_stringify_of_edge_cases() -> None:
    assert "JSON.stringify(req.body)" in found(platform(NODE_COMPACT), EDGES)


def test_json_stringify_pretty() -> None:
    body = '{"user":{"name":"José","tags":["a","b"]}}'.encode()
    signed = json.dumps(json.loads(body), indent=2, ensure_ascii=False).encode()
    text = found(platform(signed), body)
    assert "JSON.stringify(body, null, 2)" in text and "indented by 2" in text


PYTHON_BODY = '{"z": "大家早安", "a": {"y": [1, 2], "b": null}}'.encode()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({}, "Python's json.dumps()"),
        ({"separators": (",", ":")}, 'json.dumps(o, separators=(",", ":"))'),
        ({"ensure_ascii": False, "sort_keys": True}, "ensure_ascii=False, sort_keys=True"),
        ({"sort_keys": True}, "json.dumps(o, sort_keys=True)"),
        ({"indent": 2}, "json.dumps(o, indent=2)"),
        ({"indent": 4, "sort_keys": True}, "json.dumps(o, indent=4, sort_keys=True)"),
    ],
    ids=["defaults", "compact-ascii", "no-ascii-sorted", "sorted", "indent-2", "indent-4-sorted"],
)
def test_python_json_dumps_variants(kwargs: dict[str, Any], name: str) -> None:
    signed = json.dumps(json.loads(PYTHON_BODY), **kwargs).encode()
    text = found(platform(signed), PYTHON_BODY)
    assert name in text and "raw body" in text


def test_php_json_encode_escapes_slashes_and_unicode() -> None:
    body = '{"url":"https://example.com/a","name":"Zoë"}'.encode()
    signed = b'{"url":"https:\\/\\/example.com\\/a","name":"Zo\\u00eb"}'  # what PHP prints
    text = found(platform(signed), body)
    assert text.startswith("The sender signed the body re-serialized by PHP json_encode()")
    assert "'/' escaped as '\\/'" in text and "non-ASCII characters escaped" in text


def test_php_turns_empty_and_indexed_objects_into_arrays() -> None:
    body = b'{"meta":{},"items":{"0":"a","1":"b"}}'
    text = found(platform(b'{"meta":[],"items":["a","b"]}'), body)
    assert "PHP json_encode()" in text and "turned into arrays" in text


def test_go_encoding_json_sorts_keys_and_escapes_html() -> None:
    body = b'{"z":1,"html":"<b>&</b>","a":2.50}'
    signed = b'{"a":2.5,"html":"\\u003cb\\u003e\\u0026\\u003c/b\\u003e","z":1}'  # json.Marshal
    text = found(platform(signed), body)
    assert "Go encoding/json" in text and "keys sorted" in text and "\\u003c" in text


def test_ruby_to_json() -> None:
    body = '{"name":"Zoë","big":1e20}'.encode()
    text = found(platform('{"name":"Zoë","big":1.0e+20}'.encode()), body)
    assert "Ruby to_json" in text and "1e20 became 1.0e+20" in text


def test_number_reformatting_is_named() -> None:
    body = b'{"amount":1.10,"currency":"usd"}'
    text = found(platform(b'{"amount":1.1,"currency":"usd"}'), body)
    assert "the number 1.10 became 1.1" in text


def test_form_reencoded_plus_versus_percent_20() -> None:
    body = b"text=hello%20world&user=a%2Bb"
    text = found(platform(b"text=hello+world&user=a%2Bb"), body)
    assert "spaces as +" in text and "urlencode()" in text
    back = found(platform(b"text=hello%20world&user=a%2Bb"), b"text=hello+world&user=a%2Bb")
    assert "spaces as %20" in back


def test_form_fields_sorted() -> None:
    body = b"token=x&command=%2Fdeploy&channel=C1"
    text = found(platform(b"channel=C1&command=%2Fdeploy&token=x"), body)
    assert "sorts fields by name" in text


# -- bytes changed after signing -------------------------------------------------------------

PRETTY = b'{\n  "event": "message.received",\n  "text": "Jos\xc3\xa9"\n}'


@pytest.mark.parametrize(
    ("arrived", "signed", "words"),
    [
        (PRETTY, PRETTY + b"\n", "trailing newline it did not send"),
        (PRETTY + b"\n", PRETTY, "without its trailing newline"),
        (
            PRETTY.replace(b"\n", b"\r\n"),
            PRETTY,
            "signed with LF line endings but arrived with CRLF",
        ),
        (
            PRETTY,
            PRETTY.replace(b"\n", b"\r\n"),
            "signed with CRLF line endings but arrived with LF",
        ),
        (PRETTY, b"\xef\xbb\xbf" + PRETTY, "byte-order mark (BOM) that did not arrive"),
        (b"\xef\xbb\xbf" + PRETTY, PRETTY, "arrived with a UTF-8 byte-order mark"),
        (
            unicodedata.normalize("NFD", PRETTY.decode()).encode(),
            PRETTY,
            "signed as Unicode NFC",
        ),
        (PRETTY, unicodedata.normalize("NFD", PRETTY.decode()).encode(), "signed as Unicode NFD"),
        (gzip.compress(PRETTY), PRETTY, "signed the body before gzip-compressing it"),
    ],
    ids=[
        "newline-added",
        "newline-removed",
        "crlf",
        "lf",
        "bom-lost",
        "bom-added",
        "nfc",
        "nfd",
        "gzip",
    ],
)
def test_bytes_changed_after_signing(arrived: bytes, signed: bytes, words: str) -> None:
    assert words in found(platform(signed), arrived)


# -- secret mistakes -------------------------------------------------------------------------

BODY = b'{"event":"ping"}'
WHSEC = "whsec_" + base64.b64encode(b"standard-key-bytes").decode()


def standard(
    signed_prefix: bytes, key: bytes, body: bytes = BODY, stamp: str = str(NOW)
) -> Headers:
    return [
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", stamp),
        ("webhook-signature", "v1," + b64mac(signed_prefix + body, key)),
    ]


def stripe(signed: bytes, key: bytes = SECRET.encode(), stamp: str = str(NOW)) -> Headers:
    return [("stripe-signature", f"t={stamp},v1={hexmac(signed, key)}")]


def test_secret_with_newline_or_crlf_on_the_sender() -> None:
    assert "ends with a newline" in found(platform(BODY, key=b"k\n"), BODY)
    assert "ends with CRLF" in found(platform(BODY, key=b"k\r\n"), BODY)


def test_configured_secret_with_whitespace() -> None:
    assert "has surrounding whitespace" in found(platform(BODY), BODY, cfg(" k\n"))


def test_standard_whsec_kept_dropped_or_decoded() -> None:
    config = cfg(WHSEC)
    signed = f"msg_1.{NOW}.".encode()
    text = found(standard(signed, WHSEC.encode()), BODY, config)
    assert "whsec_ secret string itself" in text
    text = found(standard(signed, WHSEC.removeprefix("whsec_").encode()), BODY, config)
    assert "dropped 'whsec_' but did not base64-decode" in text


def test_stripe_whsec_decoded_or_prefix_dropped() -> None:
    config = cfg(WHSEC)
    signed = f"{NOW}.".encode() + BODY
    assert "base64-decoded the whsec_ secret" in found(
        stripe(signed, base64.b64decode(WHSEC[6:])), BODY, config
    )
    assert "dropped the 'whsec_' prefix" in found(stripe(signed, WHSEC[6:].encode()), BODY, config)


def test_hex_or_base64_secret_decoded_by_the_sender() -> None:
    hexed = "9f86d081884c7d659a2feaa0c55ad015"
    text = found(platform(BODY, key=bytes.fromhex(hexed)), BODY, cfg(hexed))
    assert "hex-decoded the secret" in text
    b64 = base64.b64encode(b"0123456789abcdef").decode()
    text = found(platform(BODY, key=b"0123456789abcdef"), BODY, cfg(b64))
    assert "base64-decoded the secret" in text


def test_another_endpoints_secret() -> None:
    text = found(platform(BODY, key=b"billing"), BODY, other_secrets={"billing": ["billing"]})
    assert "secret of endpoint 'billing'" in text


def test_rotated_out_secret() -> None:
    text = found(platform(BODY, key=b"old"), BODY, retired_secrets=["old"])
    assert "rotated out" in text


# -- signed-string mistakes ------------------------------------------------------------------


def test_stripe_without_t_prefix() -> None:
    assert "without the 't.' prefix" in found(stripe(BODY), BODY)


def test_slack_without_v0() -> None:
    headers = [
        ("x-slack-request-timestamp", str(NOW)),
        ("x-slack-signature", "v0=" + hexmac(f"{NOW}:".encode() + BODY)),
    ]
    assert "without the 'v0:' prefix" in found(headers, BODY)


def test_standard_without_the_id() -> None:
    key = base64.b64decode(WHSEC[6:])
    assert "without the message id" in found(standard(f"{NOW}.".encode(), key), BODY, cfg(WHSEC))


def test_standard_millisecond_timestamp_in_the_header() -> None:
    key = base64.b64decode(WHSEC[6:])
    millis = str(NOW * 1000)
    headers = standard(f"msg_1.{millis}.".encode(), key, stamp=millis)
    verdict = check(headers, BODY, cfg(WHSEC))
    assert verdict.status == "malformed" and verdict.diagnosis is not None
    assert "is in milliseconds (1700000000000); the signature matches it" in verdict.diagnosis


def test_stripe_signed_milliseconds_header_in_seconds() -> None:
    # Date.now() signed, Math.floor(Date.now() / 1000) sent: any millisecond of the second.
    for millis in (NOW * 1000, NOW * 1000 + 417):
        text = found(stripe(f"{millis}.".encode() + BODY), BODY)
        assert f"signed a millisecond timestamp ({millis})" in text


def test_stripe_t_in_milliseconds_signed_in_seconds() -> None:
    millis = str(NOW * 1000 + 5)
    text = found(stripe(f"{NOW}.".encode() + BODY, stamp=millis), BODY)
    assert "is in milliseconds" in text and f"used seconds ({NOW})" in text


def test_url_or_method_included() -> None:
    headers = [("host", "hooks.example.com"), ("x-forwarded-proto", "https")]
    url = b"https://hooks.example.com/h/orders?x=1"
    target = ("POST", "/h/orders?x=1")
    text = found(headers + platform(url + BODY), BODY, target=target)
    assert "included the URL ('https://hooks.example.com/h/orders?x=1')" in text
    text = found(headers + platform(b"POST\n" + url + b"\n" + BODY), BODY, target=target)
    assert "included the method and URL" in text


# -- encoding --------------------------------------------------------------------------------


def test_algorithms() -> None:
    for algorithm in ("sha1", "sha512"):
        text = found(platform(BODY, algorithm=algorithm), BODY)
        assert f"HMAC-{algorithm.upper()}, but X-Webhook-Signature expects HMAC-SHA256" in text


def test_upper_case_hex_where_base64_is_expected() -> None:
    headers = [("x-shopify-hmac-sha256", hexmac(BODY).upper())]
    assert "upper-case hex-encoded, while X-Shopify-Hmac-Sha256 expects base64" in found(
        headers, BODY
    )


def test_base64url_and_unpadded_base64() -> None:
    key = base64.b64decode(WHSEC[6:])
    prefix = f"msg_1.{NOW}.".encode()
    for body in (b"{}", b'{"n":0}', b'{"n":1}', b'{"n":2}'):  # until one has - or _ in it
        digest = b64mac(prefix + body, key)
        if "+" in digest or "/" in digest:
            break
    url = digest.replace("+", "-").replace("/", "_")
    headers = [*standard(prefix, key, body)[:2], ("webhook-signature", "v1," + url)]
    assert "base64url-encoded" in found(headers, body, cfg(WHSEC))
    headers = [*standard(prefix, key, body)[:2], ("webhook-signature", "v1," + digest[:-1])]
    assert "unpadded base64-encoded" in found(headers, body, cfg(WHSEC))


def test_missing_and_extra_prefix() -> None:
    assert "'sha256=' prefix is missing" in found([("x-webhook-signature", hexmac(BODY))], BODY)
    shopify = [("x-shopify-hmac-sha256", "sha256=" + b64mac(BODY, b"k"))]
    assert "unexpected 'sha256=' prefix" in found(shopify, BODY)


# -- pairs -----------------------------------------------------------------------------------


def test_sorted_keys_and_a_trailing_newline() -> None:
    body = b'{"b": 1, "a": 2}'
    signed = json.dumps(json.loads(body), sort_keys=True, indent=2).encode() + b"\n"
    text = found(platform(signed), body)
    assert text.startswith("Two mistakes together:")
    assert "json.dumps(o, indent=2, sort_keys=True)" in text and "trailing newline" in text


def test_crlf_and_a_trailing_newline() -> None:
    arrived = PRETTY.replace(b"\n", b"\r\n")
    text = found(platform(PRETTY + b"\n"), arrived)
    assert "Two mistakes" in text and "CRLF" in text and "trailing newline" in text


def test_compact_json_and_the_secret_with_a_newline() -> None:
    text = found(platform(b'{"a":[1,2]}', key=b"k\n"), b'{"a": [1, 2]}')
    assert "JSON.stringify(req.body)" in text and "ends with a newline" in text


def test_stripe_without_t_and_compact_json() -> None:
    text = found(stripe(b'{"a":1}'), b'{"a": 1}')
    assert "JSON.stringify" in text and "without the 't.' prefix" in text


def test_wrong_algorithm_and_base64() -> None:
    digest = base64.b64encode(hmac.new(b"k", BODY + b"\n", hashlib.sha1).digest()).decode()
    text = found([("x-webhook-signature", "sha256=" + digest)], BODY)
    assert "Three mistakes" in text and "HMAC-SHA1" in text and "base64-encoded" in text


# -- when nothing matches, and the budget -----------------------------------------------------


def test_nothing_found_says_what_was_tried() -> None:
    verdict = check(platform(PRETTY, key=b"another secret"), PRETTY, cfg())
    text = verdict.diagnosis or ""
    assert text.startswith("None of the common mistakes explain it (tried ")
    for words in ("re-serializations", "changes to the body's bytes", "pairs of these"):
        assert words in text
    assert text.endswith("the secret probably differs; check that the sender uses the same secret.")


def test_the_clock_caps_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "MAX_SECONDS", 0.0)
    text = check(platform(PRETTY, key=b"x"), PRETTY, cfg()).diagnosis or ""
    assert "stopped early" in text and "0 s" in text


def test_diagnose_false_skips_the_doctor() -> None:
    verdict = check(platform(PRETTY + b"\n"), PRETTY, cfg(), diagnose=False)
    assert verdict.status == "invalid" and verdict.diagnosis is None


def test_a_correct_signature_in_a_malformed_header() -> None:
    good = hexmac(f"{NOW}.".encode() + BODY)
    verdict = check([("stripe-signature", f"t={NOW},v1={good},")], BODY, cfg())
    assert verdict.status == "malformed"
    assert verdict.diagnosis == (
        "The signature itself is correct; only the header's format is wrong (see the reason)."
    )


def test_the_mistaken_secret_is_named_among_several() -> None:
    text = found(platform(BODY, key=b"second\n"), BODY, cfg("first", "second"))
    assert text.startswith("The sender's copy of configured secret #2 ends with a newline")


def test_a_single_mistake_wins_over_a_pair() -> None:
    # The trailing newline alone explains it; re-serialized JSON plus something does not win.
    assert found(platform(b'{"a":1}\n'), b'{"a":1}').startswith("The sender signed the body with")


# -- the Python styles are json.dumps exactly ------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=5))
def test_property_python_styles_equal_json_dumps(value: dict[str, Any]) -> None:
    body = json.dumps(value).encode()
    document = reserialize.parse(body)
    assert document is not None
    for style in STYLES:
        if not style.name.startswith("Python"):
            continue
        expected = json.dumps(
            json.loads(body),
            ensure_ascii=style.ascii,
            sort_keys=style.keys == "sorted",
            indent=style.indent,
            separators=style.separators(),
        )
        try:
            wanted: bytes | None = expected.encode("utf-8")
        except UnicodeEncodeError:
            wanted = None
        assert document.render(style) == wanted, style.name
