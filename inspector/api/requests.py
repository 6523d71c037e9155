"""``/api/requests``: list, search, read, download, delete captured requests."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector.errors import BadRequest, NotFound
from inspector.params import MAX_LIMIT, endpoint_name, int_param, path_id, request_filter, runtime
from inspector.store import requests


async def list_requests(request: Request) -> Response:
    flt = request_filter(request)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    items, next_before = await runtime(request).store.read(
        requests.list_requests, flt, limit, before
    )
    return JSONResponse({"requests": items, "next_before": next_before})


async def get_request(request: Request) -> Response:
    """One request in full; ``?body_limit=N`` sends only the body's first N bytes or so (the
    page shows a screenful of a 10 MiB body and links to the exact bytes)."""
    request_id = path_id(request)
    limit = int_param(request, "body_limit", default=None, lo=0, hi=2**62)
    found = await runtime(request).store.read(requests.get_request, request_id)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    if limit is not None:
        # Whole groups of 4 characters (3 bytes) still decode: at least ``limit`` bytes.
        found["body_base64"] = found["body_base64"][: 4 * -(-limit // 3)]
    return JSONResponse(found)


async def get_body(request: Request) -> Response:
    request_id = path_id(request)
    store = runtime(request).store
    exists, _content_type = await store.read(requests.request_exists, request_id)
    if not exists:
        raise NotFound(f"No request {request_id}.")
    body = await store.read(requests.get_body, request_id)
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
    changed = await runtime(request).store.write(requests.delete_request, request_id)
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
    changed = await runtime(request).store.write(requests.clear_endpoint, endpoint or None)
    runtime(request).hub.publish("cleared", {"endpoint": endpoint or None})
    return JSONResponse({"deleted": changed.count})


routes: list[BaseRoute] = [
    Route("/api/requests", list_requests, methods=["GET"]),
    Route("/api/requests", clear_requests, methods=["DELETE"]),
    Route("/api/requests/{id}", get_request, methods=["GET"]),
    Route("/api/requests/{id}", delete_request, methods=["DELETE"]),
    Route("/api/requests/{id}/body", get_body, methods=["GET"]),
]
