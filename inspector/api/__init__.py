"""The JSON API under ``/api``: one module per concept, each with its ``routes``.

Every route answers ``application/json``; errors are ``{"error": ..., "detail": ...}``
(raised as ``InspectorError``, rendered in ``app.py``); the two SSE streams are in
``stream``. The HTML pages are in ``views.py``, beside this package, not in it.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from inspector.api import (
    deliveries,
    diff,
    endpoints,
    reference,
    replays,
    requests,
    stream,
    timeline,
    tls,
)

routes: list[BaseRoute] = [
    *requests.routes,
    *endpoints.routes,
    *timeline.routes,
    *stream.routes,  # before deliveries: /api/deliveries/stream is not a delivery id
    *deliveries.routes,
    *replays.routes,
    *diff.routes,
    *tls.routes,
    *reference.routes,
]
