"""``GET /api/openapi.json``: the API's OpenAPI 3.1 document, made from the app's own routes
(``openapi.document``) once per app, and ``GET /api/docs``: the same, as a page to read."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import openapi
from inspector.openapi import Operation, api_route


def api_document(request: Request) -> dict[str, Any]:
    """The document of the app serving ``request`` (built on first use, then kept)."""
    state = request.app.state
    found: dict[str, Any] | None = getattr(state, "openapi", None)
    if found is None:
        found = openapi.document(request.app.routes)
        state.openapi = found
    return found


async def openapi_json(request: Request) -> Response:
    return JSONResponse(api_document(request))


routes: list[BaseRoute] = [
    api_route(
        "/api/openapi.json",
        openapi_json,
        "GET",
        Operation(
            "This API's OpenAPI 3.1 document",
            media="application/json",
            answer_text="The OpenAPI document (JSON).",
        ),
    ),
]
