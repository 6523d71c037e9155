"""HTML pages. Views build the context; templates stay dumb (and autoescape everything)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from inspector import __version__
from inspector.resources import resource_dir
from inspector.store import captures

if TYPE_CHECKING:
    from inspector.app import Runtime

templates = Jinja2Templates(directory=str(resource_dir("templates")))
templates.env.globals["version"] = __version__

PAGE_SIZE = 50


def capture_base(request: Request) -> str:
    """The capture URL prefix as the user reached the page (``http://localhost:8765/h/``)."""
    return f"{request.url.scheme}://{request.url.netloc}/h/"


async def index(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    items, next_before = await rt.store.read(
        captures.list_requests, captures.RequestFilter(), PAGE_SIZE, None
    )
    endpoints = await rt.store.read(captures.list_endpoints)
    context: dict[str, Any] = {
        "requests": items,
        "next_before": next_before,
        "endpoints": endpoints,
        "capture_base": capture_base(request),
    }
    return templates.TemplateResponse(request, "index.html", context)


def error_page(request: Request, status: int, message: str) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status
    )


routes: list[BaseRoute] = [Route("/", index, methods=["GET", "HEAD"])]
