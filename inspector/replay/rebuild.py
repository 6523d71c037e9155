"""The request a replay, mirror or proxy sends, built from a capture's raw parts.

``build_request`` keeps the capture's method; its headers in order with duplicates, minus
hop-by-hop ones (``Connection`` and the headers it names, ``Keep-Alive``, ``Proxy-*``,
``TE``, ``Trailer``, ``Transfer-Encoding``, ``Upgrade``), with ``Host`` and
``Content-Length`` set for the target in place; and the raw body bytes. The target's path
gets the capture's sub-path (``/h/E/github`` -> ``<url>/github``) and its query string
(after the URL's own), as raw bytes. Then the overrides (method, headers, body) apply, then
``resign``. ``ReplayOptions`` validates what the API may ask for.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from inspector.capture import CapturedRequest
from inspector.errors import BadRequest
from inspector.outbound.trust import TlsOptions, check_ca_file, check_insecure
from inspector.signatures import SignatureConfig, detect_scheme, sign
from inspector.signatures.registry import get as get_scheme
from inspector.store.requests import RequestDetail

MAX_TIMEOUT = 600.0
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
)
# The inspector's server adds its own Date and Server to a relayed answer.
NOT_RELAYED = frozenset({"content-length", "date", "server"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")


@dataclass(frozen=True)
class Source:
    """The parts of a captured request that a replay is built from."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    truncated: bool = False

    @classmethod
    def from_detail(cls, d: RequestDetail) -> Source:
        return cls(
            d["method"],
            d["path"],
            d["query"],
            [(k, v) for k, v in d["headers"]],
            base64.b64decode(d["body_base64"]),
            bool(d["truncated"]),
        )

    @classmethod
    def from_capture(cls, rec: CapturedRequest) -> Source:
        return cls(rec.method, rec.path, rec.query, rec.headers, rec.body, rec.truncated)


@dataclass
class Outgoing:
    """One request to send, exactly as it goes on the wire."""

    method: str
    base: httpx.URL  # scheme, host and port
    target: bytes  # raw request-target: path and query
    headers: list[tuple[str, str]]
    body: bytes
    edited: bool = False  # the body differs from the captured one

    @property
    def url(self) -> str:
        origin = f"{self.base.scheme}://{self.base.netloc.decode('ascii')}"
        return origin + self.target.decode("latin-1")


def _wire(text: str) -> bytes:
    """Path or query text (latin-1, as captured) back to its wire bytes.

    HTTP/1.1 request-targets are visible ASCII, which is all a capture can hold; anything
    else (only an imported file can have it) is percent-encoded: a latin-1 character as its
    byte, others as UTF-8.
    """
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if 0x21 <= code <= 0x7E:
            out.append(code)
        else:
            raw = bytes([code]) if code <= 0xFF else ch.encode("utf-8", "surrogatepass")
            out.extend(b"".join(b"%%%02X" % b for b in raw))
    return bytes(out)


def compose_target(base: httpx.URL, path: str, query: str) -> bytes:
    """The target URL's path plus the capture's sub-path; its query, then the capture's."""
    base_path, _, base_query = base.raw_path.partition(b"?")
    parts = path.split("/", 3)  # "", "h", endpoint, rest
    if path.startswith("/h/") and len(parts) == 4:
        base_path = base_path.rstrip(b"/") + b"/" + _wire(parts[3])
    joined = b"&".join(q for q in (base_query, _wire(query)) if q)
    return base_path + (b"?" + joined if joined else b"")


def strip_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Headers minus hop-by-hop ones: the fixed set, ``Proxy-*`` and those ``Connection``
    names."""
    named = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    return [
        (name, value)
        for name, value in headers
        if (low := name.lower()) not in HOP_BY_HOP
        and low not in named
        and not low.startswith("proxy-")
    ]


def _replace(
    headers: list[tuple[str, str]], names: set[str], new: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Remove every header in ``names``; put ``new`` where the first of them was (or last)."""
    at = next((i for i, (n, _) in enumerate(headers) if n.lower() in names), len(headers))
    before = [h for h in headers[:at] if h[0].lower() not in names]
    after = [h for h in headers[at:] if h[0].lower() not in names]
    return [*before, *new, *after]


def resign(
    headers: list[tuple[str, str]],
    body: bytes,
    config: SignatureConfig,
    captured: list[tuple[str, str]],
) -> list[tuple[str, str]]:
    """Replace the signature headers with fresh ones over ``body`` (new timestamp and id).

    The scheme is the endpoint's; with "auto", the one detected on the captured request,
    else the platform's. Signs with the first (current) secret.
    """
    if not config.secrets:
        raise BadRequest(
            "resign: this endpoint has no secret; set one (PUT /api/endpoints/NAME "
            '{"secret": ...}, or serve --secret).',
            error="no_secret",
        )
    names = {n.lower() for n, _ in captured}
    scheme = config.scheme
    if scheme == "auto":
        scheme = detect_scheme(captured) or (
            "hmac" if config.hmac_header.lower() in names else "platform"
        )
    new = sign(scheme, config.secrets[0], body, config=config)
    drop = {n.lower() for n, _ in new} | set(get_scheme(scheme).detect)
    if scheme == "hmac":
        drop.add(config.hmac_header.lower())
    if scheme == "standard":
        drop |= {
            f"{family}-{part}" for family in ("webhook", "svix") for part in ("id", "timestamp")
        }
        if "svix-signature" in names and "webhook-signature" not in names:
            new = [("svix-" + n.removeprefix("webhook-"), v) for n, v in new]
    return _replace(headers, drop, new)


def apply_overrides(
    headers: list[tuple[str, str]], overrides: Mapping[str, list[str] | None]
) -> list[tuple[str, str]]:
    """Each named header is replaced by the given values (in place), or removed (None)."""
    for name, values in overrides.items():
        headers = _replace(headers, {name.lower()}, [(name, v) for v in values or []])
    return headers


def build_request(
    source: Source,
    base: httpx.URL,
    *,
    method: str | None = None,
    headers: Mapping[str, list[str] | None] | None = None,
    body: bytes | None = None,
    signature: SignatureConfig | None = None,
) -> Outgoing:
    """The request a replay sends (see the module docstring for what changes and what not)."""
    payload = source.body if body is None else body
    method = method or source.method
    out = strip_hop_by_hop(source.headers)
    if headers:
        out = apply_overrides(out, headers)
    if signature is not None:
        out = resign(out, payload, signature, source.headers)
    if not headers or "host" not in {n.lower() for n in headers}:
        out = _replace(out, {"host"}, [("host", base.netloc.decode("ascii"))])
        if out[-1][0] == "host" and len(out) > 1:  # there was none: Host goes first
            out = [out[-1], *out[:-1]]
    had_length = any(n.lower() == "content-length" for n, _ in source.headers)
    length = [("content-length", str(len(payload)))]
    if payload or had_length or method.upper() in ("POST", "PUT", "PATCH"):
        out = _replace(out, {"content-length"}, length)
    else:
        out = _replace(out, {"content-length"}, [])
    target = compose_target(base, source.path, source.query)
    return Outgoing(method, base, target, out, payload, edited=body is not None)


def relay_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """An app's response headers as the proxy relays them to the sender."""
    return [(n, v) for n, v in strip_hop_by_hop(headers) if n.lower() not in NOT_RELAYED]


# -- options ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayOptions:
    """What a replay may change. ``url`` None means the endpoint's remembered ``replay_to``."""

    url: str | None = None
    resign: bool = False
    headers: Mapping[str, list[str] | None] = field(default_factory=dict)
    body: bytes | None = None
    method: str | None = None
    timeout: float | None = None
    tls: TlsOptions | None = None  # None: the endpoint's, else the server's

    @classmethod
    def from_json(cls, data: object) -> ReplayOptions:
        """Validate ``POST /api/requests/{id}/replay``'s JSON body (``BadRequest`` names the
        field)."""
        if not isinstance(data, Mapping):
            raise BadRequest("The replay body must be a JSON object.")
        known = {"url", "resign", "headers", "body_base64", "body_text", "method", "timeout"}
        known |= {"ca_file", "insecure"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequest(f"Unknown replay field(s): {', '.join(unknown)}.")
        url = data.get("url")
        if url is not None and not isinstance(url, str):
            raise BadRequest("url: must be a string.")
        resign = data.get("resign", False)
        if not isinstance(resign, bool):
            raise BadRequest("resign: must be true or false.")
        if data.get("body_base64") is not None and data.get("body_text") is not None:
            raise BadRequest("Give body_base64 or body_text, not both.")
        body: bytes | None = None
        if isinstance(data.get("body_text"), str):
            body = data["body_text"].encode("utf-8", "surrogatepass")
        elif data.get("body_base64") is not None:
            try:
                body = base64.b64decode(data["body_base64"], validate=True)
            except (TypeError, ValueError):
                raise BadRequest("body_base64: must be standard base64.") from None
        elif data.get("body_text") is not None:
            raise BadRequest("body_text: must be a string.")
        return cls(
            url=url or None,
            resign=resign,
            headers=parse_header_overrides(data.get("headers")),
            body=body,
            method=parse_method(data.get("method")),
            timeout=parse_timeout(data.get("timeout")),
            tls=parse_tls(data),
        )


def parse_tls(data: Mapping[str, object]) -> TlsOptions | None:
    """``ca_file`` and ``insecure`` of a replay, if it names either."""
    if data.get("ca_file") is None and data.get("insecure") is None:
        return None
    return TlsOptions(check_ca_file(data.get("ca_file")), check_insecure(data.get("insecure")))


def parse_method(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise BadRequest("method: must be an HTTP method such as POST.")
    return value.upper()


def parse_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"timeout: must be a number of seconds up to {MAX_TIMEOUT:g}.")
    if not 0 < value <= MAX_TIMEOUT:
        raise BadRequest(f"timeout: must be more than 0 and at most {MAX_TIMEOUT:g} seconds.")
    return float(value)


def parse_header_overrides(value: object) -> dict[str, list[str] | None]:
    """``{"Name": "value" | ["v1", "v2"] | null}``: replace a header's values, or drop it."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest("headers: must be an object of header name -> value (or null).")
    out: dict[str, list[str] | None] = {}
    for name, raw in value.items():
        low = str(name).lower()
        if not _TOKEN.fullmatch(str(name)):
            raise BadRequest(f"headers: {str(name)[:40]!r} is not a valid header name.")
        if low in HOP_BY_HOP or low.startswith("proxy-") or low == "content-length":
            raise BadRequest(f"headers: {name} is set by the inspector, not by an override.")
        values = [raw] if isinstance(raw, str) else raw
        if values is not None and not (
            isinstance(values, list) and all(isinstance(v, str) for v in values)
        ):
            raise BadRequest(f"headers: {name} must be a string, a list of strings or null.")
        for v in values or []:
            if _BAD_VALUE.search(v):
                raise BadRequest(f"headers: {name} has a control or non-latin-1 character.")
        out[str(name)] = values
    return out
