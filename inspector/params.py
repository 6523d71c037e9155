"""What a control request carries, read and checked: the runtime it runs against, query
parameters (ids, numbers, endpoint names, the request filter), JSON bodies.

Below both the pages (``views.py``) and the JSON API (``api/``), which read the same filter
from the same query parameters; ``BadRequest``/``NotFound`` name what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from inspector.capture import ENDPOINT_RE
from inspector.errors import BadRequest, NotFound
from inspector.runtime import Runtime
from inspector.store.requests import RequestFilter

MAX_LIMIT = 1000


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


def path_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"No request {raw!r}: ids are positive integers.")
    return int(raw)


def endpoint_name(raw: str) -> str:
    if not ENDPOINT_RE.fullmatch(raw):
        raise BadRequest(
            f"Invalid endpoint name {raw[:80]!r}: use 1 to 64 characters from A-Z a-z 0-9 . _ -.",
            error="invalid_endpoint",
        )
    return raw


MAX_JSON = 1024 * 1024


async def json_body(request: Request) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop at the limit: never hold more than it
        size += len(chunk)
        if size > MAX_JSON:
            raise BadRequest("Request body too large for a control request (1 MiB).")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"Body must be JSON: {exc}.", error="invalid_json") from None
    except RecursionError:
        raise BadRequest("Body must be JSON: nested too deeply.", error="invalid_json") from None


def request_filter(request: Request) -> RequestFilter:
    """The request list's filter from ``?endpoint=&method=&status=&signature=&event_type=&q=``."""
    params = request.query_params
    if "\x00" in params.get("q", ""):
        # SQLite's LIKE stops at a NUL: the search would silently match almost everything.
        raise BadRequest("q: search text cannot contain a NUL character.")
    endpoint = params.get("endpoint") or None
    return RequestFilter(
        endpoint=endpoint_name(endpoint) if endpoint else None,
        method=params.get("method") or None,
        status=int_param(request, "status", default=None, lo=100, hi=599),
        signature=params.get("signature") or None,
        event_type=params.get("event_type") or None,
        q=params.get("q") or None,
    )
