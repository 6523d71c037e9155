"""``/api/deliveries``: send events as the platform would, and read the delivery log.

* ``POST /api/deliveries`` — validate, store, hand to the server's delivery engine: 201.
* ``GET /api/deliveries`` — newest first, each with its state and attempts summary.
* ``GET /api/deliveries/{id}`` — one delivery with its body and every attempt in full.
* ``POST /api/deliveries/{id}/cancel`` — stop its retries.
* ``GET /api/catalog`` — the event types and a fresh sample body of each.

The live log (``GET /api/deliveries/stream``) is in ``api/stream.py``; the page
(``GET /deliveries``) in ``views.py``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import catalog, openapi, sender, timeline
from inspector.errors import BadRequest, NotFound
from inspector.openapi import Operation, api_route
from inspector.params import BEFORE, LIMIT, MAX_ID, MAX_LIMIT, int_param, json_body, runtime
from inspector.shapes import Catalog, CreatedDelivery, DeliveryOrder, DeliveryPage
from inspector.store import deliveries
from inspector.store.deliveries import DeliveryDetail, DeliveryItem

FIELDS = (
    "event",
    "url",
    "secret",
    "body",
    "set",
    "scheme",
    "schedule",
    "time_scale",
    "wait_from",
    "timeout",
    "headers",
    "ca_file",
    "insecure",
)


def delivery_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"No delivery {raw[:40]!r}: ids are positive integers.")
    return int(raw)


def parse_delivery(data: object, default_secret: str | None) -> sender.DeliveryRequest:
    """The POST body as a validated ``DeliveryRequest``; ``BadRequest`` names the problem."""
    if not isinstance(data, Mapping):
        raise BadRequest("The body must be a JSON object: {event, url, secret, ...}.")
    try:  # everything is stored and sent: a lone surrogate ("\ud800") can be neither
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("The body must be valid Unicode: it holds a lone surrogate.") from None
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(unknown)}. Known: {', '.join(FIELDS)}.")
    body = data.get("body")
    if body is not None and not isinstance(body, str):
        raise BadRequest("body: must be a string; it is sent byte-exact as UTF-8.")
    overrides = data.get("set")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise BadRequest('set: must be an object of {"data.content": value} overrides.')
    secret = data.get("secret", default_secret)
    return sender.prepare(
        data.get("event"),
        data.get("url"),
        secret,
        body=body,
        overrides=overrides,
        scheme=data.get("scheme", "platform"),
        schedule=data.get("schedule", list(timeline.DEFAULT_SCHEDULE)),
        timeout=data.get("timeout", sender.DEFAULT_TIMEOUT),
        time_scale=data.get("time_scale", 1.0),
        headers=data.get("headers") or (),
        ca_file=data.get("ca_file"),
        insecure=data.get("insecure", False),
        wait_from=data.get("wait_from", timeline.DEFAULT_WAIT_FROM),
    )


async def create_delivery(request: Request) -> Response:
    rt = runtime(request)
    wanted = parse_delivery(await json_body(request), rt.settings.secret)
    created = await rt.sender.submit(wanted)
    answer: CreatedDelivery = {**created, "store": rt.store.description}
    return JSONResponse(answer, status_code=201)


async def list_deliveries(request: Request) -> Response:
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    state = request.query_params.get("state") or None
    if state is not None and state not in deliveries.STATES:
        raise BadRequest(f"state: one of {', '.join(deliveries.STATES)}.")
    assert limit is not None
    rt = runtime(request)
    items, next_before = await rt.store.read(deliveries.list_deliveries, limit, before, state)
    page: DeliveryPage = {
        "deliveries": items,
        "next_before": next_before,
        "store": rt.store.description,
    }
    return JSONResponse(page)


async def get_delivery(request: Request) -> Response:
    found_id = delivery_id(request)
    found = await runtime(request).store.read(deliveries.get_delivery, found_id)
    if found is None:
        raise NotFound(f"No delivery {found_id}.")
    return JSONResponse(found)


async def cancel_delivery(request: Request) -> Response:
    found_id = delivery_id(request)
    found = await runtime(request).sender.cancel(found_id)
    if found is None:
        raise NotFound(f"No delivery {found_id}.")
    return JSONResponse(found)


async def get_catalog(request: Request) -> Response:
    answer: Catalog = {
        "events": [
            {
                "event": event,
                "description": catalog.DESCRIPTIONS[event],
                "sample": catalog.sample(event),
            }
            for event in catalog.EVENT_TYPES
        ]
    }
    return JSONResponse(answer)


DELIVERY_ID = openapi.path(
    "id", "The delivery's id.", {"type": "integer", "minimum": 1, "maximum": MAX_ID}
)

routes: list[BaseRoute] = [
    api_route(
        "/api/deliveries",
        list_deliveries,
        "GET",
        Operation(
            "The delivery log, newest first",
            (
                LIMIT,
                BEFORE,
                openapi.text(
                    "state", "Only deliveries in this state.", enum=list(deliveries.STATES)
                ),
            ),
            answer=DeliveryPage,
        ),
    ),
    api_route(
        "/api/deliveries",
        create_delivery,
        "POST",
        Operation(
            "Send an event as the platform would: signed, retried on its schedule",
            body=DeliveryOrder,
            answer=CreatedDelivery,
            status=201,
        ),
    ),
    api_route(
        "/api/deliveries/{id}",
        get_delivery,
        "GET",
        Operation(
            "One delivery with its body and every attempt", (DELIVERY_ID,), answer=DeliveryDetail
        ),
    ),
    api_route(
        "/api/deliveries/{id}/cancel",
        cancel_delivery,
        "POST",
        Operation("Stop a delivery's retries", (DELIVERY_ID,), answer=DeliveryItem),
    ),
    api_route(
        "/api/catalog",
        get_catalog,
        "GET",
        Operation("The platform's event types, each with a fresh sample body", answer=Catalog),
    ),
]
