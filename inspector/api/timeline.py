"""``/api/events``: deliveries of the same event grouped, and their retry timeline judged
against the schedule the sender promises (the platform's 1, 5, 30 minutes by default, each
counted from the end of the failed attempt) — or, for an event one of our own deliveries sent
here, the schedule that delivery kept, scaled by its time scale."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import openapi, timeline
from inspector.endpoints import EndpointSettings
from inspector.errors import BadRequest, NotFound
from inspector.openapi import Operation, api_route
from inspector.params import (
    BEFORE,
    LIMIT,
    MAX_LIMIT,
    NAME_PATTERN,
    endpoint_name,
    int_param,
    runtime,
)
from inspector.shapes import EventPage
from inspector.store import attempts, deliveries
from inspector.timeline import TimelineReport


def schedule_for(request: Request, settings: EndpointSettings) -> timeline.Expected:
    """What retries are judged against: ``?schedule=60,300,1800&tolerance=0.1&wait_from=end``
    override the endpoint's settings (and then no delivery of ours is looked up)."""
    schedule = settings.schedule
    tolerance = settings.schedule_tolerance
    wait_from = settings.wait_from
    raw = request.query_params.get("schedule")
    if raw:
        try:
            schedule = tuple(float(part) for part in raw.split(","))
        except ValueError:
            raise BadRequest(f"schedule: comma-separated seconds, got {raw!r}.") from None
        if not schedule or any(not 0 < s < 1e7 for s in schedule):
            raise BadRequest("schedule: every interval must be a positive number of seconds.")
    raw_tol = request.query_params.get("tolerance")
    if raw_tol:
        try:
            tolerance = float(raw_tol)
        except ValueError:
            raise BadRequest(f"tolerance: a fraction between 0 and 1, got {raw_tol!r}.") from None
        if not 0 <= tolerance <= 1:
            raise BadRequest("tolerance: a fraction between 0 and 1.")
    raw_from = request.query_params.get("wait_from")
    if raw_from:
        if raw_from not in timeline.WAIT_FROM:
            raise BadRequest("wait_from: start or end.")
        wait_from = raw_from
    source = "query" if raw or raw_from else "endpoint"
    return timeline.Expected(schedule, tolerance, wait_from, source)


async def _ours(
    request: Request, name: str, expected: timeline.Expected, keys: list[str]
) -> dict[str, timeline.SenderSchedule]:
    """Events our own deliveries sent here: judged by the (scaled) schedule they kept."""
    if expected.source == "query":
        return {}
    return await runtime(request).store.read(deliveries.sender_schedules, name, keys)


async def list_events(request: Request) -> Response:
    raw = request.query_params.get("endpoint")
    if not raw:
        raise BadRequest("Name the endpoint: /api/events?endpoint=E.")
    name = endpoint_name(raw)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    rt = runtime(request)
    expected = schedule_for(request, rt.endpoints.settings(name))
    rows, by_key, next_before = await rt.store.read(attempts.list_events, name, limit, before)
    ours = await _ours(request, name, expected, [r["event_key"] for r in rows])
    found = [
        timeline.timeline_report(r, by_key[r["event_key"]], expected.of(ours.get(r["event_key"])))
        for r in rows
    ]
    page: EventPage = {"endpoint": name, "events": found, "next_before": next_before}
    return JSONResponse(page)


async def get_event(request: Request) -> Response:
    name = endpoint_name(request.path_params["endpoint"])
    key = request.path_params["event_key"]
    rt = runtime(request)
    expected = schedule_for(request, rt.endpoints.settings(name))
    event = await rt.store.read(attempts.event_summary, name, key)
    if event is None:
        raise NotFound(f"No event {key!r} at endpoint {name!r}.")
    tried = await rt.store.read(attempts.event_attempts, name, key)
    ours = await _ours(request, name, expected, [key])
    return JSONResponse(timeline.timeline_report(event, tried, expected.of(ours.get(key))))


SCHEDULE = (
    openapi.text("schedule", "The promised retry schedule, e.g. 60,300,1800 (seconds)."),
    openapi.number("tolerance", "Allowed deviation from the schedule, a fraction.", 0, 1, 0.1),
    openapi.text(
        "wait_from",
        "Whether each wait counts from the failed attempt's start or its end (default: the "
        "endpoint's, end). With schedule or wait_from, our own deliveries' schedules are not used.",
        enum=list(timeline.WAIT_FROM),
    ),
)

routes: list[BaseRoute] = [
    api_route(
        "/api/events",
        list_events,
        "GET",
        Operation(
            "An endpoint's events, each with its judged retry timeline",
            (
                openapi.text("endpoint", "The endpoint.", pattern=NAME_PATTERN),
                *SCHEDULE,
                LIMIT,
                BEFORE,
            ),
            answer=EventPage,
        ),
    ),
    api_route(
        "/api/events/{endpoint}/{event_key:path}",
        get_event,
        "GET",
        Operation(
            "One event's retry timeline",
            (
                openapi.path(
                    "endpoint", "The endpoint.", {"type": "string", "pattern": NAME_PATTERN}
                ),
                openapi.path("event_key", "The event's key.", {"type": "string", "minLength": 1}),
                *SCHEDULE,
            ),
            answer=TimelineReport,
        ),
    ),
]
