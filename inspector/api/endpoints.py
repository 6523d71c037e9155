"""``/api/endpoints``: endpoints seen or configured, and their settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from inspector.api.params import endpoint_name, json_body, runtime
from inspector.store import requests


async def list_endpoints(request: Request) -> Response:
    endpoints = await runtime(request).store.read(requests.list_endpoints)
    return JSONResponse({"endpoints": endpoints})


async def get_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    return JSONResponse(endpoint_payload(request, name))


def endpoint_payload(request: Request, name: str) -> dict[str, Any]:
    settings = runtime(request).endpoints.settings(name)
    return {"name": name, "settings": settings.to_dict()}


async def put_endpoint(request: Request) -> Response:
    name = endpoint_name(request.path_params["name"])
    data = await json_body(request)
    rt = runtime(request)
    current = rt.endpoints.settings(name)
    updated = current.merged(data, max_delay=rt.settings.max_delay)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    await rt.store.write(requests.put_endpoint_settings, name, updated.to_dict(), now)
    await rt.endpoints.refresh()
    return JSONResponse(endpoint_payload(request, name))


routes: list[BaseRoute] = [
    Route("/api/endpoints", list_endpoints, methods=["GET"]),
    Route("/api/endpoints/{name}", get_endpoint, methods=["GET"]),
    Route("/api/endpoints/{name}", put_endpoint, methods=["PUT", "PATCH"]),
]
