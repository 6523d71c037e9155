"""``/api/events``: deliveries of the same event grouped, and their retry timeline judged
against the schedule the sender promises (the platform's 1, 5, 30 minutes by default)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector import timeline
from inspector.endpoints import EndpointSettings
from inspector.errors import BadRequest, NotFound
from inspector.params import MAX_LIMIT, endpoint_name, int_param, runtime
from inspector.store import attempts


def schedule_for(request: Request, settings: EndpointSettings) -> tuple[tuple[float, ...], float]:
    """The expected schedule and tolerance: ``?schedule=60,300,1800&tolerance=0.1`` override
    the endpoint's settings."""
    schedule = settings.schedule
    tolerance = settings.schedule_tolerance
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
    return schedule, tolerance


async def list_events(request: Request) -> Response:
    raw = request.query_params.get("endpoint")
    if not raw:
        raise BadRequest("Name the endpoint: /api/events?endpoint=E.")
    name = endpoint_name(raw)
    limit = int_param(request, "limit", default=50, lo=1, hi=MAX_LIMIT)
    before = int_param(request, "before", default=None, lo=1, hi=2**62)
    assert limit is not None
    rt = runtime(request)
    schedule, tol = schedule_for(request, rt.endpoints.settings(name))
    rows, by_key, next_before = await rt.store.read(attempts.list_events, name, limit, before)
    found = [timeline.timeline_report(r, by_key[r["event_key"]], schedule, tol) for r in rows]
    return JSONResponse({"endpoint": name, "events": found, "next_before": next_before})


async def get_event(request: Request) -> Response:
    name = endpoint_name(request.path_params["endpoint"])
    key = request.path_params["event_key"]
    rt = runtime(request)
    schedule, tol = schedule_for(request, rt.endpoints.settings(name))
    event = await rt.store.read(attempts.event_summary, name, key)
    if event is None:
        raise NotFound(f"No event {key!r} at endpoint {name!r}.")
    tried = await rt.store.read(attempts.event_attempts, name, key)
    return JSONResponse(timeline.timeline_report(event, tried, schedule, tol))


routes: list[BaseRoute] = [
    Route("/api/events", list_events, methods=["GET"]),
    Route("/api/events/{endpoint}/{event_key:path}", get_event, methods=["GET"]),
]
