"""What to send: validate a delivery the CLI or the API asked for (``prepare``) and its limits."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from inspector import catalog, timeline
from inspector.errors import BadRequest
from inspector.outbound import TlsOptions, check_ca_file, check_insecure, parse_target
from inspector.signatures import SCHEMES

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 600.0
MAX_RETRIES = 20
MAX_WAIT = 7 * 86_400.0
MAX_TIME_SCALE = 100.0
MAX_BODY = 16 * 1024 * 1024
MAX_URL = 2048
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


@dataclass(frozen=True)
class DeliveryRequest:
    """A validated delivery, ready to store (``prepare`` builds one)."""

    event: str
    url: str
    secret: str
    body: bytes
    scheme: str = "platform"
    schedule: tuple[float, ...] = timeline.DEFAULT_SCHEDULE
    timeout: float = DEFAULT_TIMEOUT
    time_scale: float = 1.0
    headers: tuple[tuple[str, str], ...] = ()
    ca_file: str | None = None  # also trust this CA (PEM) for an https:// receiver
    insecure: bool = False  # do not verify the receiver's certificate (marked in the log)
    wait_from: str = timeline.DEFAULT_WAIT_FROM  # each wait counts from the attempt's start/end

    @property
    def tls(self) -> TlsOptions:
        return TlsOptions(self.ca_file, self.insecure)


def prepare(
    event: object,
    url: object,
    secret: object,
    *,
    body: bytes | str | None = None,
    overrides: catalog.Overrides | None = None,
    scheme: object = "platform",
    schedule: object = timeline.DEFAULT_SCHEDULE,
    timeout: object = DEFAULT_TIMEOUT,
    time_scale: object = 1.0,
    headers: object = (),
    ca_file: object = None,
    insecure: object = False,
    wait_from: object = timeline.DEFAULT_WAIT_FROM,
) -> DeliveryRequest:
    """Validate what the CLI or the API asked for; ``BadRequest`` says what is wrong.

    Without ``body`` the event's catalog sample is generated (``overrides`` applied) and
    ``event`` must be one of the four types. With ``body`` (bytes, or text sent as UTF-8)
    the bytes are sent as they are; ``event`` then only labels the log and defaults to the
    body's own ``"event"`` field. ``ca_file`` (a PEM file of CA certificates, trusted as
    well) and ``insecure`` (verify nothing) say how an https:// receiver's certificate is
    checked; by default it must chain to a public CA.
    """
    if body is not None:
        if overrides:
            raise BadRequest("Overrides (set) edit generated bodies; a given body is sent as is.")
        raw = body.encode("utf-8") if isinstance(body, str) else body
        if not isinstance(raw, bytes):
            raise BadRequest("body: must be a string (sent byte-exact as UTF-8).")
        if len(raw) > MAX_BODY:
            raise BadRequest(f"body: at most {MAX_BODY} bytes, got {len(raw)}.")
        if event is None or event == "":
            event = timeline.event_type(raw, None) or "custom"
        if not isinstance(event, str) or len(event) > 200:
            raise BadRequest("event: must be a string of at most 200 characters.")
    else:
        event = catalog.check_event(event)
        raw = catalog.build(event, overrides or ())
    return DeliveryRequest(
        event=event,
        url=check_url(url),
        secret=check_secret(secret),
        body=raw,
        scheme=check_scheme(scheme),
        schedule=check_schedule(schedule),
        timeout=_number("timeout", timeout, 0.0, MAX_TIMEOUT),
        time_scale=_number("time_scale", time_scale, 0.0, MAX_TIME_SCALE),
        headers=check_headers(headers),
        ca_file=check_ca_file(ca_file),
        insecure=check_insecure(insecure),
        wait_from=check_wait_from(wait_from),
    )


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("url: the receiver's URL is required (http:// or https://).")
    url: str = value.strip()
    if len(url) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise BadRequest("url: must be a URL without spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise BadRequest(f"url: {url[:100]!r} is not a valid URL ({exc}).") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest(f"url: must be an http:// or https:// URL with a host, got {url[:100]!r}.")
    if port == 0:
        raise BadRequest("url: port 0 cannot be connected to.")
    parse_target(url)  # refuses link-local and cloud-metadata literals, in every spelling
    return url


def check_secret(secret: object) -> str:
    if not isinstance(secret, str) or not secret:
        raise BadRequest(
            "secret: the webhook secret to sign with is required (--secret or WEBHOOK_SECRET)."
        )
    return secret


def check_scheme(scheme: object) -> str:
    if scheme not in SCHEMES:
        raise BadRequest(f"scheme: unknown {scheme!r}; use one of: {', '.join(SCHEMES)}.")
    return str(scheme)


def check_schedule(schedule: object) -> tuple[float, ...]:
    if isinstance(schedule, str):
        schedule = [s for s in schedule.replace(" ", "").split(",") if s]
    if not isinstance(schedule, list | tuple) or len(schedule) > MAX_RETRIES:
        raise BadRequest(
            f"schedule: a list of 0 to {MAX_RETRIES} waits in seconds (60,300,1800), one per retry."
        )
    return tuple(_number("schedule", s, 0.0, MAX_WAIT, allow_zero=True) for s in schedule)


def check_wait_from(value: object) -> str:
    if value not in timeline.WAIT_FROM:
        raise BadRequest(
            "wait_from: start (each wait counts from the failed attempt's start) or end (from "
            "its answer or timeout, as the platform's document reads)."
        )
    return str(value)


def check_headers(headers: object) -> tuple[tuple[str, str], ...]:
    if headers is not None and not isinstance(headers, Mapping | list | tuple):
        raise BadRequest('headers: an object {"Name": "value"} or a list of [name, value] pairs.')
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str]] = []
    for pair in pairs or ():
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise BadRequest("headers: pairs of [name, value].")
        name, value = pair
        if not isinstance(name, str) or not name or not name.isascii() or ":" in name:
            raise BadRequest(f"headers: invalid header name {name!r}.")
        if name.lower() in _RESERVED_HEADERS:
            raise BadRequest(f"headers: {name} is set by the sender.")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise BadRequest(f"headers: invalid value for {name}.")
        if not value.isascii():
            # httpx sends header values as ASCII; refusing now beats an attempt that can
            # never be sent.
            raise BadRequest(f"headers: the value of {name} must be ASCII (percent-encode it).")
        out.append((name, value))
    return tuple(out)


def _number(name: str, value: object, lo: float, hi: float, *, allow_zero: bool = False) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    ok = number is not None and math.isfinite(number) and number <= hi
    ok = ok and number is not None and (number >= lo if allow_zero else number > lo)
    if not ok or number is None:
        low = f"{lo:g} or more" if allow_zero else f"more than {lo:g}"
        raise BadRequest(f"{name}: must be a number of seconds, {low} and at most {hi:g}.")
    return number
