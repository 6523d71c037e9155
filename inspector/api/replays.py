"""Replays and exports: ``POST /api/requests/{id}/replay``, a request's replays, its curl
command, and ``GET /api/export``.

Replaying is a control route like every ``/api`` write: ``ControlGuard`` refuses foreign
Hosts and cross-origin POSTs before it gets here.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute

from inspector import openapi, transfer
from inspector.errors import BadRequest, NotFound
from inspector.openapi import Operation, api_route
from inspector.outbound import parse_target
from inspector.params import (
    ID,
    LIMIT,
    MAX_LIMIT,
    NAME_PATTERN,
    endpoint_name,
    int_param,
    json_body,
    path_id,
    runtime,
)
from inspector.replay import ReplayOptions, compose_target
from inspector.shapes import ReplayChange, ReplayList, ReplayResult
from inspector.store import endpoints, replays, requests
from inspector.store.replays import ReplayDetail


async def _detail(
    request: Request, request_id: int, body_limit: int | None = None
) -> requests.RequestDetail:
    found = await runtime(request).store.read(requests.get_request, request_id, body_limit)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    return found


async def replay_request(request: Request) -> Response:
    request_id = path_id(request)
    options = ReplayOptions.from_json(await json_body(request))
    rt = runtime(request)
    detail = await _detail(request, request_id)
    name = detail["endpoint"]
    endpoint = rt.endpoints.get(name)
    url = options.url or endpoint.settings.replay_to
    if url is None:
        raise BadRequest(
            f"url: give the target URL (nothing remembered for endpoint {name} yet).",
            error="no_url",
        )
    result = await rt.replay.replay(
        detail, replace(options, url=url), endpoint.signature, endpoint.settings.tls
    )
    current = rt.endpoints.settings(name)
    if url != current.replay_to:  # remember the target for the next replay of this endpoint
        updated = current.merged({"replay_to": url})
        now = datetime.now(UTC).isoformat(timespec="seconds")
        await rt.store.write(endpoints.put_endpoint_settings, name, updated.to_dict(), now)
        await rt.endpoints.refresh()
    return JSONResponse(result)


async def list_replays(request: Request) -> Response:
    request_id = path_id(request)
    store = runtime(request).store
    exists, _ = await store.read(requests.request_exists, request_id)
    if not exists:
        raise NotFound(f"No request {request_id}.")
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    assert limit is not None
    listed: ReplayList = {"replays": await store.read(replays.list_replays, request_id, limit)}
    return JSONResponse(listed)


async def get_replay(request: Request) -> Response:
    replay_id = path_id(request)
    found = await runtime(request).store.read(replays.get_replay, replay_id)
    if found is None:
        raise NotFound(f"No replay {replay_id}.")
    return JSONResponse(found)


async def curl(request: Request) -> Response:
    """``?url=`` (default: the endpoint's remembered ``replay_to``, else this inspector)."""
    request_id = path_id(request)
    # One byte more than goes inline tells a long body from one that fits: no more is read.
    detail = await _detail(request, request_id, transfer.INLINE_LIMIT + 1)
    origin = f"{request.url.scheme}://{request.url.netloc}"
    url = (
        request.query_params.get("url")
        or runtime(request).endpoints.get(detail["endpoint"]).settings.replay_to
    )
    if url:
        base = parse_target(url)
        target = compose_target(base, detail["path"], detail["query"]).decode("latin-1")
        full = f"{base.scheme}://{base.netloc.decode('ascii')}{target}"
    else:
        full = origin + detail["path"] + (f"?{detail['query']}" if detail["query"] else "")
    body_url = f"{origin}/api/requests/{request_id}/body"
    # Off the event loop: quoting 64 KiB of escapes one character at a time takes a while.
    text = await anyio.to_thread.run_sync(
        functools.partial(transfer.curl_command, detail, full, body_url=body_url)
    )
    return PlainTextResponse(text)


async def export(request: Request) -> Response:
    raw = request.query_params.get("endpoint")
    name = endpoint_name(raw) if raw else None
    fmt = transfer.check_format(request.query_params.get("format") or "jsonl")
    filename = f"webhook-inspector-{name or 'all'}.{fmt}"
    return StreamingResponse(
        transfer.export_stream(runtime(request).store, name, fmt),
        media_type="application/x-ndjson" if fmt == "jsonl" else "application/json",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


routes: list[BaseRoute] = [
    api_route(
        "/api/requests/{id}/replay",
        replay_request,
        "POST",
        Operation(
            "Replay a request to your app (exactly, or edited and re-signed) and record it",
            (ID,),
            body=ReplayChange,
            answer=ReplayResult,
        ),
    ),
    api_route(
        "/api/requests/{id}/replays",
        list_replays,
        "GET",
        Operation(
            "A request's replays, mirrors and proxy exchanges", (ID, LIMIT), answer=ReplayList
        ),
    ),
    api_route(
        "/api/requests/{id}/curl",
        curl,
        "GET",
        Operation(
            "A curl command that sends the request again",
            (ID, openapi.text("url", "Where to (default: the remembered target, else here).")),
            media="text/plain",
            answer_text="A shell command.",
        ),
    ),
    api_route(
        "/api/replays/{id}",
        get_replay,
        "GET",
        Operation("One replay with what was sent and what came back", (ID,), answer=ReplayDetail),
    ),
    api_route(
        "/api/export",
        export,
        "GET",
        Operation(
            "Export captured requests (JSON Lines round-trips byte-exact; HAR)",
            (
                openapi.text("endpoint", "Only this endpoint.", pattern=NAME_PATTERN),
                openapi.text("format", "jsonl (default) or har.", enum=["jsonl", "har"]),
            ),
            media=("application/x-ndjson", "application/json"),
            answer_text="One request per line (jsonl), or a HAR document (har).",
        ),
    ),
]
