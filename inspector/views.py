"""HTML pages. Views build the context; templates stay dumb (and autoescape everything).

The request page is rendered complete on the server (the first page of rows, the endpoints,
the empty state) and then driven by ``static/app.js``, which takes its starting state from a
JSON data block (``|tojson`` escapes ``<``, ``>``, ``&`` and ``'``, so captured text cannot
end the block) and keeps the page live from ``/api/stream``. Rows come from one partial,
``_row.html``: rendered here for the first paint, and cloned from a ``<template>`` by the
script for live rows.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from inspector import __version__
from inspector.resources import resource_dir
from inspector.signatures.config import SCHEMES, STATUSES
from inspector.store import requests
from inspector.summary import human_size

if TYPE_CHECKING:
    from inspector.app import Runtime

templates = Jinja2Templates(directory=str(resource_dir("templates")))
templates.env.globals["version"] = __version__

PAGE_SIZE = 50
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
PLATFORM_EVENTS = ("message.received", "member.joined", "member.left", "file.uploaded")
FILTER_KEYS = ("endpoint", "method", "status", "signature", "event_type", "q")


def capture_base(request: Request) -> str:
    """The capture URL prefix as the user reached the page (``http://localhost:8765/h/``)."""
    return f"{request.url.scheme}://{request.url.netloc}/h/"


def suggest_endpoint() -> str:
    """A fresh endpoint name nobody else will pick: ``hook-5f2a9c``."""
    return f"hook-{secrets.token_hex(3)}"


def answer_badge(response: dict[str, Any]) -> tuple[str, str]:
    """(label, class) for what the inspector answered; mirrored by ``answerOf`` in util.js."""
    if response["in_progress"]:
        return "stalling…", "pending"
    if response["dropped"]:
        return "dropped", "bad"
    gave_up = response["client_gave_up_after_ms"]
    if gave_up is not None:
        return f"sender gave up after {gave_up / 1000:.1f} s", "bad"
    status = response["status"]
    if status is None:
        return "—", "muted"
    return str(status), {2: "ok", 3: "info", 4: "warn"}.get(status // 100, "bad")


SIGNATURE_CLASSES = {"valid": "ok", "invalid": "bad", "malformed": "bad", "no_secret": "muted"}


def row_view(item: dict[str, Any]) -> dict[str, Any]:
    """What ``_row.html`` shows for a list item (``rowView`` in app.js does the same)."""
    answer, answer_class = answer_badge(item["response"])
    sig = item["signature"]
    what = item["event_type"] or item["content_type"] or ("no body" if not item["size"] else "")
    if item["event_type"] and item.get("summary"):
        what = f"{item['event_type']} — {item['summary']}"
    meta = [f"#{item['id']}", item["endpoint"], human_size(item["size"])]
    if item["attempt"] > 1:
        meta.append(f"attempt {item['attempt']}")
    return {
        "id": item["id"],
        "method": item["method"],
        "target": item["path"] + (f"?{item['query']}" if item["query"] else ""),
        "what": what,
        "meta": " · ".join(meta),
        "time": item["received_at"][11:23],
        "datetime": item["received_at"],
        "answer": answer,
        "answer_class": answer_class,
        "sig": f"sig {sig['status']}" if sig else "",
        "sig_class": SIGNATURE_CLASSES.get(sig["status"], "warn") if sig else "",
        "sig_title": (sig["reason"] or "") if sig else "",
    }


def first_page(
    conn: sqlite3.Connection, flt: requests.RequestFilter
) -> tuple[int, list[dict[str, Any]], int | None, list[dict[str, Any]]]:
    """The page's reads in one trip to a reader thread. The head comes first: the stream
    resumes after it, so whatever commits while the page renders still reaches it."""
    head = requests.head_id(conn)
    items, next_before = requests.list_requests(conn, flt, PAGE_SIZE, None)
    return head, items, next_before, requests.list_endpoints(conn)


async def index(request: Request) -> Response:
    # Imported here: inspector.api imports this module (for ``templates``).
    from inspector.api.requests import request_filter

    rt: Runtime = request.app.state.runtime
    flt = request_filter(request)
    head, items, next_before, endpoints = await rt.store.read(first_page, flt)
    filters = {key: request.query_params.get(key) or "" for key in FILTER_KEYS}
    boot = {
        "requests": items,
        "next_before": next_before,
        "endpoints": endpoints,
        "head": head,
        "filters": filters,
        "capture_base": capture_base(request),
        "suggestion": suggest_endpoint(),
        "page_size": PAGE_SIZE,
    }
    context: dict[str, Any] = {
        "rows": [row_view(it) for it in items],
        "endpoints": endpoints,
        "total": sum(e["count"] for e in endpoints),
        "filters": filters,
        "filtered": any(filters.values()),
        "capture_base": boot["capture_base"],
        "suggestion": boot["suggestion"],
        "methods": METHODS,
        "statuses": (*STATUSES, "none"),
        "schemes": ("auto", *SCHEMES),
        "event_types": sorted(
            {*PLATFORM_EVENTS, *(it["event_type"] for it in items if it["event_type"])}
        ),
        "boot": boot,
    }
    return templates.TemplateResponse(request, "index.html", context)


def error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


routes: list[BaseRoute] = [Route("/", index, methods=["GET", "HEAD"])]
