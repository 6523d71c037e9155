"""Helpers shared by the API modules: the runtime, parameter parsing, JSON bodies."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from inspector.capture import ENDPOINT_RE
from inspector.errors import BadRequest, NotFound

if TYPE_CHECKING:
    from inspector.app import Runtime

MAX_LIMIT = 1000


def runtime(request: Request) -> Runtime:
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


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > 1024 * 1024:
        raise BadRequest("Request body too large for a control request (1 MiB).")
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"Body must be JSON: {exc}.", error="invalid_json") from None
    except RecursionError:
        raise BadRequest("Body must be JSON: nested too deeply.", error="invalid_json") from None
