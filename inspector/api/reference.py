"""``GET /api/openapi.json``: the API's OpenAPI 3.1 document, made from the app's own routes
(``openapi.document``) once per app. The same, as a page to read, is ``/reference``
(``views.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector import openapi
from inspector.openapi import Operation, api_route


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.served(request.app))


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
