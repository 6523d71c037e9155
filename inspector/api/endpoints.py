"""``/api/endpoints``: endpoints seen or configured, and their settings."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector.openapi import Operation, api_route
from inspector.outbound import check_ca_file
from inspector.params import ENDPOINT, endpoint_name, json_body, runtime
from inspector.shapes import EndpointList, EndpointSettingsView, SettingsChange
from inspector.store import endpoints


async def list_endpoints(request: Request) -> Response:
    listed: EndpointList = {
        "endpoints": await runtime(request).store.read(endpoints.list_endpoints)
    }
    return JSONResponse(listed)


async def get_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    await runtime(request).endpoints.refresh()  # one version read: show a CLI's change at once
    return JSONResponse(endpoint_payload(request, name))


def endpoint_payload(request: Request, name: str) -> EndpointSettingsView:
    settings = runtime(request).endpoints.settings(name)
    return {"name": name, "settings": settings.to_dict()}


async def put_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    data = await json_body(request)
    if isinstance(data, dict) and data.get("ca_file") is not None:
        data["ca_file"] = check_ca_file(data["ca_file"])  # the file must load, now
    rt = runtime(request)
    current = rt.endpoints.settings(name)
    updated = current.merged(data, max_delay=rt.settings.max_delay)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    await rt.store.write(endpoints.put_endpoint_settings, name, updated.to_dict(), now)
    await rt.endpoints.refresh()
    return JSONResponse(endpoint_payload(request, name))


routes: list[BaseRoute] = [
    api_route(
        "/api/endpoints",
        list_endpoints,
        "GET",
        Operation("Endpoints seen or configured: request count, last seen", answer=EndpointList),
    ),
    api_route(
        "/api/endpoints/{name}",
        get_endpoint,
        "GET",
        Operation("An endpoint's settings", (ENDPOINT,), answer=EndpointSettingsView),
    ),
    *(
        api_route(
            "/api/endpoints/{name}",
            put_endpoint,
            method,
            Operation(
                "Change an endpoint's settings: the keys sent (null resets one)",
                (ENDPOINT,),
                body=SettingsChange,
                answer=EndpointSettingsView,
                description="In effect for every capture that arrives after this answers.",
            ),
        )
        for method in ("PUT", "PATCH")
    ),
]
