"""``/api/requests``: list, search, read, download, delete captured requests."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector import waiters
from inspector.errors import BadRequest, NotFound
from inspector.params import (
    MAX_LIMIT,
    endpoint_name,
    float_param,
    int_param,
    path_id,
    request_filter,
    runtime,
)
from inspector.store import requests


async def list_requests(request: Request) -> Response:
    flt = request_filter(request, prefixes=True)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    items, next_before = await runtime(request).store.read(
        requests.list_requests, flt, limit, before
    )
    return JSONResponse({"requests": items, "next_before": next_before})


async def wait_requests(request: Request) -> Response:
    """Long-poll until ``count`` matching requests with id > ``after`` are stored, or
    ``timeout`` seconds pass; ends early (and frees its slot) if the client goes away."""
    flt = request_filter(request, prefixes=True)
    count = int_param(request, "count", default=1, lo=1, hi=waiters.MAX_COUNT)
    after = int_param(request, "after", default=0, lo=0, hi=2**62)
    timeout = float_param(request, "timeout", default=30.0, lo=0, hi=waiters.MAX_TIMEOUT)
    assert count is not None and after is not None
    waiting = asyncio.ensure_future(runtime(request).waiters.wait(flt, count, after, timeout))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not waiting.done():
            waiting.cancel()
    if not waiting.done() or waiting.cancelled():
        return Response(status_code=499)  # nobody is listening any more
    return JSONResponse(waiting.result())


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def get_request(request: Request) -> Response:
    request_id = path_id(request)
    found = await runtime(request).store.read(requests.get_request, request_id)
    if found is None:
        raise NotFound(f"No request {request_id}.")
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
    Route("/api/requests/wait", wait_requests, methods=["GET"]),  # before {id}
    Route("/api/requests/{id}", get_request, methods=["GET"]),
    Route("/api/requests/{id}", delete_request, methods=["DELETE"]),
    Route("/api/requests/{id}/body", get_body, methods=["GET"]),
]
