"""The JSON API under ``/api``. Answers ``application/json``; errors are
``{"error": ..., "detail": ...}`` (raised as ``InspectorError``, rendered in ``app.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector import queries
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
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"No request {raw!r}: ids are positive integers.")
    return int(raw)


def endpoint_name(raw: str) -> str:
    if not ENDPOINT_RE.fullmatch(raw):
        raise BadRequest(
            f"Invalid endpoint name {raw[:80]!r}: use 1 to 64 characters from A-Z a-z 0-9 . _ -.",
            error="invalid_endpoint",
        )
    return raw


def request_filter(request: Request) -> queries.RequestFilter:
    params = request.query_params
    endpoint = params.get("endpoint") or None
    return queries.RequestFilter(
        endpoint=endpoint_name(endpoint) if endpoint else None,
        method=params.get("method") or None,
        status=int_param(request, "status", default=None, lo=100, hi=599),
        signature=params.get("signature") or None,
        event_type=params.get("event_type") or None,
        q=params.get("q") or None,
    )


async def list_requests(request: Request) -> Response:
    flt = request_filter(request)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    items, next_before = await runtime(request).store.read(
        queries.list_requests, flt, limit, before
    )
    return JSONResponse({"requests": items, "next_before": next_before})


async def get_request(request: Request) -> Response:
    request_id = path_id(request)
    found = await runtime(request).store.read(queries.get_request, request_id)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    return JSONResponse(found)


async def get_body(request: Request) -> Response:
    request_id = path_id(request)
    store = runtime(request).store
    exists, _content_type = await store.read(queries.request_exists, request_id)
    if not exists:
        raise NotFound(f"No request {request_id}.")
    body = await store.read(queries.get_body, request_id)
    # Always a download of opaque bytes: never let a browser render captured content.
    return Response(
        body,
        media_type="application/octet-stream",
        headers={
            "content-disposition": f'attachment; filename="request-{request_id}.bin"',
            "x-content-type-options": "nosniff",
        },
    )


async def delete_request(request: Request) -> Response:
    request_id = path_id(request)
    changed = await runtime(request).store.write(queries.delete_request, request_id)
    if not changed.count:
        raise NotFound(f"No request {request_id}.")
    runtime(request).hub.publish("deleted", {"id": request_id})
    return JSONResponse({"deleted": changed.count})


async def clear_requests(request: Request) -> Response:
    endpoint = request.query_params.get("endpoint")
    if endpoint:
        endpoint_name(endpoint)
    elif request.query_params.get("all") not in ("1", "true"):
        raise BadRequest("Name the endpoint to clear (?endpoint=E), or pass ?all=true.")
    changed = await runtime(request).store.write(queries.clear_endpoint, endpoint or None)
    runtime(request).hub.publish("cleared", {"endpoint": endpoint or None})
    return JSONResponse({"deleted": changed.count})


async def list_endpoints(request: Request) -> Response:
    endpoints = await runtime(request).store.read(queries.list_endpoints)
    return JSONResponse({"endpoints": endpoints})


async def get_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    return JSONResponse(endpoint_payload(request, name))


def endpoint_payload(request: Request, name: str) -> dict[str, Any]:
    settings = runtime(request).endpoints.settings(name)
    return {"name": name, "settings": settings.to_dict()}


async def put_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    data = await json_body(request)
    rt = runtime(request)
    current = rt.endpoints.settings(name)
    updated = current.merged(data, max_delay=rt.settings.max_delay)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    await rt.store.write(queries.put_endpoint_settings, name, updated.to_dict(), now)
    await rt.endpoints.refresh()
    return JSONResponse(endpoint_payload(request, name))


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if len(raw) > 1024 * 1024:
        raise BadRequest("Request body too large for a control request (1 MiB).")
    try:
        return json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"Body must be JSON: {exc}.", error="invalid_json") from None


routes: list[BaseRoute] = [
    Route("/api/requests", list_requests, methods=["GET"]),
    Route("/api/requests", clear_requests, methods=["DELETE"]),
    Route("/api/requests/{id}", get_request, methods=["GET"]),
    Route("/api/requests/{id}", delete_request, methods=["DELETE"]),
    Route("/api/requests/{id}/body", get_body, methods=["GET"]),
    Route("/api/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/endpoints/{name}", get_endpoint, methods=["GET"]),
    Route("/api/endpoints/{name}", put_endpoint, methods=["PUT", "PATCH"]),
]
