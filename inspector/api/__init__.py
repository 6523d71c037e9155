"""The JSON API under ``/api``: one module per concept, each with its ``routes``.

Every route answers ``application/json``; errors are ``{"error": ..., "detail": ...}``
(raised as ``InspectorError``, rendered in ``app.py``).
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from inspector.api import captures, deliveries, endpoints, events, replays, stream

routes: list[BaseRoute] = [
    *captures.routes,
    *endpoints.routes,
    *events.routes,
    *deliveries.routes,
    *stream.routes,
    *replays.routes,
]
