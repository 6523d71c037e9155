"""HTML pages: the request page, the deliveries page, the error page. Views build the
context; templates stay dumb (and autoescape everything).

The request page's skeleton is rendered on the server (the endpoints, the filters, the empty
state) with its starting state in a JSON data block (``|tojson`` escapes ``<``, ``>``, ``&``
and ``'``, so captured text cannot end the block). ``static/app.js`` renders every row from
that block, the first page as well as live ones from ``/api/stream``: one renderer (``rowView``
and ``fillRow`` in rows.js, ``answerOf``/``signatureOf`` in util.js) fills clones of the one
row markup, ``_row.html``, so the first paint and a live row cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from inspector import __version__, catalog, openapi
from inspector.params import request_filter, runtime
from inspector.resources import resource_dir
from inspector.signatures.config import SCHEMES, STATUSES
from inspector.store import Connection, endpoints, listing, requests
from inspector.tls import CA_URL

templates = Jinja2Templates(directory=str(resource_dir("templates")))
templates.env.globals["version"] = __version__

PAGE_SIZE = 50
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
PLATFORM_EVENTS = ("message.received", "member.joined", "member.left", "file.uploaded")
# The list filters are the store's filter fields; the page learns them from the data block.
FILTER_KEYS = tuple(field.name for field in dataclasses.fields(listing.RequestFilter))


def capture_base(request: Request) -> str:
    """The capture URL prefix as the user reached the page (``http://localhost:8765/h/``)."""
    return f"{request.url.scheme}://{request.url.netloc}/h/"


def https_base(request: Request) -> str | None:
    """The HTTPS capture URL prefix (``https://localhost:8443/h/``) for a page reached over
    plain HTTP while ``--https`` is on; None otherwise (the page's own URL is the one)."""
    settings = runtime(request).settings
    if not settings.https or request.url.scheme == "https":
        return None
    host = request.url.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{settings.https_port}/h/"


def suggest_endpoint() -> str:
    """A fresh endpoint name nobody else will pick: ``hook-5f2a9c``."""
    return f"hook-{secrets.token_hex(3)}"


def first_page(
    conn: Connection, flt: listing.RequestFilter
) -> tuple[int, list[requests.ListedRequest], int | None, list[endpoints.EndpointItem]]:
    """The page's reads in one trip to a reader thread. The head comes first: the stream
    resumes after it, so whatever commits while the page renders still reaches it."""
    head = requests.head_id(conn)
    items, next_before = listing.list_requests(conn, flt, PAGE_SIZE, None)
    return head, items, next_before, endpoints.list_endpoints(conn)


async def index(request: Request) -> Response:
    flt = request_filter(request)
    head, items, next_before, listed = await runtime(request).store.read(first_page, flt)
    filters = {key: request.query_params.get(key) or "" for key in FILTER_KEYS}
    boot = {
        "requests": items,
        "next_before": next_before,
        "endpoints": listed,
        "head": head,
        "filters": filters,
        "capture_base": capture_base(request),
        "https_base": https_base(request),
        "ca_url": CA_URL if runtime(request).settings.local_ca is not None else None,
        "suggestion": suggest_endpoint(),
        "page_size": PAGE_SIZE,
    }
    context: dict[str, object] = {
        "shown": len(items),
        "endpoints": listed,
        "total": sum(e["count"] for e in listed),
        "filters": filters,
        "filtered": any(filters.values()),
        "capture_base": boot["capture_base"],
        "https_base": boot["https_base"],
        "ca_url": boot["ca_url"],
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


async def deliveries_page(request: Request) -> Response:
    """The delivery log with a "Send test" form (``deliveries.js`` drives it)."""
    context = {
        "event_types": catalog.EVENT_TYPES,
        "descriptions": catalog.DESCRIPTIONS,
        "default_url": f"{request.url.scheme}://{request.url.netloc}/h/platform-test",
        "has_default_secret": bool(runtime(request).settings.secret),
    }
    return templates.TemplateResponse(request, "deliveries.html", context)


async def reference_page(request: Request) -> Response:
    """The JSON API's reference: the OpenAPI document, readable (no script, no CDN)."""
    operations, schemas = openapi.reference(openapi.served(request.app))
    doc = openapi.served(request.app)
    context = {"doc": doc, "operations": operations, "schemas": schemas}
    return templates.TemplateResponse(request, "reference.html", context)


def error_page(request: Request, status: int, message: str) -> Response:
    """The HTML answer to an error outside ``/api`` (the JSON API answers JSON)."""
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


routes: list[BaseRoute] = [
    Route("/", index, methods=["GET", "HEAD"]),
    Route("/deliveries", deliveries_page, methods=["GET", "HEAD"]),
    Route("/reference", reference_page, methods=["GET", "HEAD"]),
]
