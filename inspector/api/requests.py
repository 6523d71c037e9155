"""``/api/requests``: list, search, read, download, delete captured requests."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import openapi, waiters
from inspector.diagnosis import waiting
from inspector.errors import BadRequest, NotFound
from inspector.openapi import Operation, api_route
from inspector.params import (
    BEFORE,
    BODY_LIMIT,
    FILTERS,
    ID,
    LIMIT,
    MAX_LIMIT,
    NAME_PATTERN,
    byte_range,
    endpoint_name,
    float_param,
    int_param,
    path_id,
    request_filter,
    runtime,
)
from inspector.shapes import Deleted, RequestCount, RequestPage, WaitResult
from inspector.store import listing, requests
from inspector.store.requests import RequestDetail


async def list_requests(request: Request) -> Response:
    flt = request_filter(request, prefixes=True)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    items, next_before = await runtime(request).store.read(
        listing.list_requests, flt, limit, before
    )
    page: RequestPage = {"requests": items, "next_before": next_before}
    return JSONResponse(page)


async def wait_requests(request: Request) -> Response:
    """Long-poll until ``count`` matching requests with id > ``after`` are stored, or
    ``timeout`` seconds pass; ends early (and frees its slot) if the client goes away."""
    flt = request_filter(request, prefixes=True)
    count = int_param(request, "count", default=1, lo=1, hi=waiters.MAX_COUNT)
    after = int_param(request, "after", default=0, lo=0, hi=2**62)
    timeout = float_param(
        request, "timeout", default=waiters.DEFAULT_TIMEOUT, lo=0, hi=waiters.MAX_TIMEOUT
    )
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


async def count_requests(request: Request) -> Response:
    """``GET /api/requests/count?after=ID[&before=ID]`` and the list's filters: how many
    requests newer than ``after`` (and older than ``before``) match, exactly."""
    flt = request_filter(request, prefixes=True)
    after = int_param(request, "after", default=0, lo=0, hi=2**62)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert after is not None
    count = await runtime(request).store.read(listing.count_requests, flt, after, before)
    answer: RequestCount = {"count": count, "after": after, "before": before}
    return JSONResponse(answer)


async def get_request(request: Request) -> Response:
    """One request in full; ``?body_limit=N``: only the body's first N bytes (the page asks
    for none, and fetches the bytes it shows from ``/body`` with a Range)."""
    request_id = path_id(request)
    rt = runtime(request)
    limit = int_param(request, "body_limit", default=None, lo=0, hi=2**62)
    found = await rt.store.read(requests.get_request, request_id, limit)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    if waiting(found["signature"]):
        # Skipped when the doctor was busy, or lost to a restart: someone looks, diagnose it.
        rt.diagnoser.request(request_id, rt.endpoints.get(found["endpoint"]))
    return JSONResponse(found)


async def get_body(request: Request) -> Response:
    """The exact body bytes, as a download; a ``Range: bytes=...`` asks for a part (206): the
    page fetches a screenful's worth of a 10 MiB body this way, and only that is read."""
    request_id = path_id(request)
    store = runtime(request).store
    exists, _content_type = await store.read(requests.request_exists, request_id)
    if not exists:
        raise NotFound(f"No request {request_id}.")
    # Always a download of opaque bytes: never let a browser render captured content.
    headers = {
        "content-disposition": f'attachment; filename="request-{request_id}.bin"',
        "x-content-type-options": "nosniff",
        "accept-ranges": "bytes",
    }
    wanted = request.headers.get("range")
    if wanted is None:
        body = await store.read(requests.get_body, request_id)
        return Response(body, media_type="application/octet-stream", headers=headers)
    size = await store.read(requests.body_size, request_id)
    found = byte_range(wanted, size)
    if found is None:  # not a single byte range: the whole body, as without one
        body = await store.read(requests.get_body, request_id)
        return Response(body, media_type="application/octet-stream", headers=headers)
    start, end = found
    part, size = await store.read(requests.body_slice, request_id, start, end - start + 1)
    headers["content-range"] = f"bytes {start}-{start + len(part) - 1}/{size}"
    return Response(part, 206, media_type="application/octet-stream", headers=headers)


async def delete_request(request: Request) -> Response:
    request_id = path_id(request)
    changed = await runtime(request).store.write(requests.delete_request, request_id)
    if not changed.count:
        raise NotFound(f"No request {request_id}.")
    runtime(request).hub.publish("deleted", {"id": request_id})
    answer: Deleted = {"deleted": changed.count}
    return JSONResponse(answer)


async def clear_requests(request: Request) -> Response:
    endpoint = request.query_params.get("endpoint")
    if endpoint:
        endpoint_name(endpoint)
    elif request.query_params.get("all") not in ("1", "true"):
        raise BadRequest("Name the endpoint to clear (?endpoint=E), or pass ?all=true.")
    changed = await runtime(request).store.write(requests.clear_endpoint, endpoint or None)
    runtime(request).hub.publish("cleared", {"endpoint": endpoint or None})
    answer: Deleted = {"deleted": changed.count}
    return JSONResponse(answer)


WAIT_PARAMS = (
    *FILTERS,
    openapi.integer("count", "How many matching requests to wait for.", 1, waiters.MAX_COUNT, 1),
    openapi.integer("after", "Only requests with a larger id.", 0, 2**62, 0),
    openapi.number(
        "timeout", "Seconds to wait at most.", 0, waiters.MAX_TIMEOUT, waiters.DEFAULT_TIMEOUT
    ),
)

routes: list[BaseRoute] = [
    api_route(
        "/api/requests",
        list_requests,
        "GET",
        Operation(
            "Captured requests, newest first, filtered and searched",
            (*FILTERS, LIMIT, BEFORE),
            answer=RequestPage,
        ),
    ),
    api_route(
        "/api/requests",
        clear_requests,
        "DELETE",
        Operation(
            "Delete every request of an endpoint (or of all, with all=true)",
            (
                openapi.text("endpoint", "The endpoint to clear.", pattern=NAME_PATTERN),
                openapi.text("all", "true: clear every endpoint.", enum=["1", "true"]),
            ),
            answer=Deleted,
        ),
    ),
    # Before /api/requests/{id}, which would take "count" or "wait" for an id.
    api_route(
        "/api/requests/count",
        count_requests,
        "GET",
        Operation(
            "How many requests newer than `after` (and older than `before`) match",
            (
                *FILTERS,
                openapi.integer("after", "Only requests with a larger id.", 0, 2**62, 0),
                openapi.integer("before", "Only requests with a smaller id.", 1, 2**62),
            ),
            answer=RequestCount,
            description=(
                "Exact, search included: the live page's count of new captures while its "
                "list holds still."
            ),
        ),
    ),
    api_route(
        "/api/requests/wait",
        wait_requests,
        "GET",
        Operation(
            "Wait until `count` matching requests newer than `after` are stored",
            WAIT_PARAMS,
            answer=WaitResult,
            description=(
                "Long-polls: answers as soon as `count` requests matching the filters with ids "
                "above `after` are stored (the first `count`, oldest first), or after "
                "`timeout` seconds with those there are and `timed_out: true`. At most "
                f"{waiters.MAX_WAITERS} clients wait at once: beyond, 503 with Retry-After."
            ),
        ),
    ),
    api_route(
        "/api/requests/{id}",
        get_request,
        "GET",
        Operation(
            "One request: headers in order and the exact body",
            (ID, BODY_LIMIT),
            answer=RequestDetail,
        ),
    ),
    api_route(
        "/api/requests/{id}",
        delete_request,
        "DELETE",
        Operation("Delete one request", (ID,), answer=Deleted),
    ),
    api_route(
        "/api/requests/{id}/body",
        get_body,
        "GET",
        Operation(
            "The exact body bytes, as a download",
            (ID,),
            media="application/octet-stream",
            answer_text="The body, byte for byte.",
            description=(
                "`Range: bytes=A-B` (or `A-`, or `-N`) asks for a part of it: 206 with "
                "`Content-Range`, and only those bytes are read; 416 if the range starts "
                "beyond the body. Any other Range is ignored (the whole body, 200)."
            ),
            errors=(416,),
        ),
    ),
]
