"""``/api/endpoints``: endpoints seen or configured, and their settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector.endpoints import SettingsDict
from inspector.params import endpoint_name, json_body, runtime
from inspector.store import endpoints


class EndpointSettingsView(TypedDict):
    """``GET/PUT /api/endpoints/{name}``: an endpoint's settings (defaults where unset)."""

    name: str
    settings: SettingsDict


async def list_endpoints(request: Request) -> Response:
    listed = await runtime(request).store.read(endpoints.list_endpoints)
    return JSONResponse({"endpoints": listed})


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
    rt = runtime(request)
    current = rt.endpoints.settings(name)
    updated = current.merged(data, max_delay=rt.settings.max_delay)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    await rt.store.write(endpoints.put_endpoint_settings, name, updated.to_dict(), now)
    await rt.endpoints.refresh()
    return JSONResponse(endpoint_payload(request, name))


routes: list[BaseRoute] = [
    Route("/api/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/endpoints/{name}", get_endpoint, methods=["GET"]),
    Route("/api/endpoints/{name}", put_endpoint, methods=["PUT", "PATCH"]),
]
