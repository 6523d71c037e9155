"""The JSON API under ``/api``: one module per concept, each with its ``routes``.

Every route answers ``application/json``; errors are ``{"error": ..., "detail": ...}``
(raised as ``InspectorError``, rendered in ``app.py``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from inspector.api import deliveries, endpoints, replays, requests, stream, timeline

routes: list[BaseRoute] = [
    *requests.routes,
    *endpoints.routes,
    *timeline.routes,
    *deliveries.routes,
    *stream.routes,
    *replays.routes,
]
