"""What a control request carries, read and checked: the runtime it runs against, query
parameters (ids, numbers, endpoint names, the request filter), JSON bodies.

Below both the pages (``views.py``) and the JSON API (``api/``), which read the same filter
from the same query parameters; ``BadRequest``/``NotFound`` name what is wrong.
"""

from __future__ import annotations

import json
import re

from starlette.requests import Request

from inspector import openapi
from inspector.capture import ENDPOINT_RE
from inspector.errors import BadRequest, NotFound, RangeNotSatisfiable
from inspector.jsontypes import JSONValue
from inspector.runtime import Runtime
from inspector.store.listing import RequestFilter

MAX_LIMIT = 1000
MAX_ID = 10**18 - 1  # ids have at most 18 digits

# How the parameters read here appear in the OpenAPI document (bounds as checked below).
LIMIT = openapi.integer("limit", "How many, at most.", 1, MAX_LIMIT, 50)
BEFORE = openapi.integer(
    "before", "Only ids below this one (the previous page's next_before).", 1, 2**62
)
ID = openapi.path("id", "The id.", {"type": "integer", "minimum": 1, "maximum": MAX_ID})
BODY_LIMIT = openapi.integer(
    "body_limit", "Only the body's first N bytes in body_base64 (0: none).", 0, 2**62
)
NAME_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
ENDPOINT = openapi.path("name", "An endpoint name.", {"type": "string", "pattern": NAME_PATTERN})
FILTERS = (
    openapi.text(
        "endpoint",
        "Only this endpoint; `ci-*` means every endpoint whose name starts with `ci-`.",
        pattern=r"^[A-Za-z0-9._-]{0,64}\*?$",
    ),
    openapi.text("method", "Only this HTTP method."),
    openapi.integer("status", "Only requests answered with this status.", 100, 599),
    openapi.text(
        "signature",
        "Only this verdict: valid, invalid, malformed, missing, no_secret, expired, or none.",
    ),
    openapi.text("event_type", "Only events of this type."),
    openapi.text(
        "q",
        "Search path, query, headers, event key and type, and raw bodies.",
        pattern="^[^\x00]*$",
    ),
)


def runtime(request: Request) -> Runtime:
    """The running parts (built by the lifespan) of the app serving ``request``."""
    rt: Runtime = request.app.state.runtime
    return rt


def int_param(request: Request, name: str, *, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be an integer, got {raw!r}.") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be between {lo} and {hi}, got {value}.")
    return value


def float_param(request: Request, name: str, *, default: float, lo: float, hi: float) -> float:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadRequest(f"{name}: must be a number, got {raw[:40]!r}.") from None
    if not lo <= value <= hi:  # also refuses nan
        raise BadRequest(f"{name}: must be between {lo:g} and {hi:g}, got {raw[:40]!r}.")
    return value


def path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"No request {raw[:40]!r}: ids are positive integers.")
    return int(raw)


def endpoint_name(raw: str) -> str:
    if not ENDPOINT_RE.fullmatch(raw):
        raise BadRequest(
            f"Invalid endpoint name {raw[:80]!r}: use 1 to 64 characters from A-Z a-z 0-9 . _ -.",
            error="invalid_endpoint",
        )
    return raw


MAX_JSON = 1024 * 1024


async def json_body(request: Request) -> JSONValue:
    """A control request's JSON body, unchecked (``{}`` when empty): callers narrow it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop at the limit: never hold more than it
        size += len(chunk)
        if size > MAX_JSON:
            raise BadRequest("Request body too large for a control request (1 MiB).")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        value: JSONValue = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"Body must be JSON: {exc}.", error="invalid_json") from None
    except RecursionError:
        raise BadRequest("Body must be JSON: nested too deeply.", error="invalid_json") from None
    return value


def request_filter(request: Request, *, prefixes: bool = False) -> RequestFilter:
    """The request list's filter from ``?endpoint=&method=&status=&signature=&event_type=&q=``.

    With ``prefixes`` (the JSON API), ``endpoint=ci-*`` means every endpoint whose name starts
    with ``ci-`` (names cannot contain ``*``).
    """
    params = request.query_params
    if "\x00" in params.get("q", ""):
        # SQLite's LIKE stops at a NUL: the search would silently match almost everything.
        raise BadRequest("q: search text cannot contain a NUL character.")
    endpoint = params.get("endpoint") or None
    prefix = None
    if prefixes and endpoint is not None and endpoint.endswith("*"):
        prefix, endpoint = endpoint[:-1], None
        if prefix:
            endpoint_name(prefix)
    return RequestFilter(
        endpoint_prefix=prefix or None,
        endpoint=endpoint_name(endpoint) if endpoint else None,
        method=params.get("method") or None,
        status=int_param(request, "status", default=None, lo=100, hi=599),
        signature=params.get("signature") or None,
        event_type=params.get("event_type") or None,
        q=params.get("q") or None,
    )


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) a ``Range`` header asks for of ``size`` bytes.

    One range of bytes: ``bytes=A-B``, ``bytes=A-`` (to the end), ``bytes=-N`` (the last N).
    Anything else — several ranges, another unit, a malformed value — is None: the whole body
    is sent, as HTTP allows. A range no byte falls in raises ``RangeNotSatisfiable`` (416).
    """
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - count), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    return start, min(int(last), size - 1) if last else size - 1
