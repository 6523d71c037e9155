"""``/api/requests/{a}/diff/{b}``: what differs between two captures (``inspector.diff``);
``/api/replays/{id}/diff``: between a capture and what a replay of it sent; and
``/api/requests/{id}/pairs``: the captures a request is naturally compared with."""

from __future__ import annotations

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import diff, openapi
from inspector.errors import BadRequest, NotFound
from inspector.openapi import Operation, api_route
from inspector.params import ID, MAX_ID, path_id, runtime
from inspector.store import replays, requests


def ignore_key_order(request: Request) -> bool:
    raw = request.query_params.get("ignore_key_order", "")
    if raw not in ("", "0", "1", "false", "true"):
        raise BadRequest("ignore_key_order: must be true or false.")
    return raw in ("1", "true")


async def _capture(request: Request, request_id: int) -> diff.Side:
    found = await runtime(request).store.read(requests.get_request, request_id)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    return diff.captured(found)


async def _diff(a: diff.Side, b: diff.Side, ignoring: bool) -> Response:
    # Parsing and comparing up to 1 MiB of JSON per side is CPU work: off the event loop.
    result = await anyio.to_thread.run_sync(lambda: diff.diff(a, b, ignore_key_order=ignoring))
    return JSONResponse(result)


async def diff_requests(request: Request) -> Response:
    ignoring = ignore_key_order(request)
    a = await _capture(request, path_id(request, "a"))
    b = await _capture(request, path_id(request, "b"))
    return await _diff(a, b, ignoring)


async def diff_replay(request: Request) -> Response:
    ignoring = ignore_key_order(request)
    replay_id = path_id(request)
    found = await runtime(request).store.read(replays.get_replay, replay_id)
    if found is None:
        raise NotFound(f"No replay {replay_id}.")
    original = await _capture(request, found["request_id"])
    return await _diff(original, diff.replayed(found), ignoring)


async def pairs(request: Request) -> Response:
    request_id = path_id(request)
    found = await runtime(request).store.read(requests.diff_partners, request_id)
    if found is None:
        raise NotFound(f"No request {request_id}.")
    return JSONResponse(found)


IGNORE_KEY_ORDER = openapi.text(
    "ignore_key_order",
    "true: JSON objects with the same keys in another order are the same.",
    enum=["0", "1", "false", "true"],
)
SIDE = {"type": "integer", "minimum": 1, "maximum": MAX_ID}

routes: list[BaseRoute] = [
    api_route(
        "/api/requests/{a}/diff/{b}",
        diff_requests,
        "GET",
        Operation(
            "What differs from capture a to capture b",
            (
                openapi.path("a", "The capture compared from.", SIDE),
                openapi.path("b", "The capture compared with.", SIDE),
                IGNORE_KEY_ORDER,
            ),
            answer=diff.RequestDiff,
            description=(
                "The request line, the query by parameter, headers by name and order, and the "
                "body: JSON by path, form fields, text lines, else the differing bytes."
            ),
        ),
    ),
    api_route(
        "/api/requests/{id}/pairs",
        pairs,
        "GET",
        Operation(
            "The captures a request is naturally compared with",
            (ID,),
            answer=requests.DiffPartners,
        ),
    ),
    api_route(
        "/api/replays/{id}/diff",
        diff_replay,
        "GET",
        Operation(
            "What a replay, mirror or proxy exchange sent, against the captured request",
            (ID, IGNORE_KEY_ORDER),
            answer=diff.RequestDiff,
        ),
    ),
]
