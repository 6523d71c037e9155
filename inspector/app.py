"""``create_app(settings)``: the Starlette app — routes, middleware, error handlers, the
lifespan (which runs ``runtime.running``) and the capture dispatch.

Capture requests (``/h/...``) go straight to the ``Receiver`` with the server's own ASGI
callables, ahead of Starlette's middleware: they accept any Host and Origin, cost as little
as possible, and can drop the connection. Everything else — the page, ``/api``, ``/static`` —
passes through ``ControlGuard``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from inspector import api, views
from inspector.errors import InspectorError
from inspector.receiver import Receiver
from inspector.resources import resource_dir
from inspector.runtime import Runtime, running
from inspector.security import ControlGuard
from inspector.settings import Settings


class InspectorApp(Starlette):
    # The capture route, once the lifespan has built it: looked up once, not per capture.
    receiver: Receiver | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/h/") or path == "/h":
                receiver = self.receiver
                if receiver is None:  # before the lifespan: as Starlette would fail
                    runtime: Runtime = self.state.runtime
                    receiver = runtime.receiver
                await receiver(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> InspectorApp:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert isinstance(app, InspectorApp)
        async with running(settings) as runtime:
            app.state.runtime = runtime
            app.receiver = runtime.receiver
            try:
                yield
            finally:
                app.receiver = None

    app = InspectorApp(
        routes=[
            *views.routes,
            *api.routes,
            Mount("/static", app=StaticFiles(directory=resource_dir("static")), name="static"),
        ],
        middleware=[
            Middleware(
                ControlGuard,
                allow_hosts=settings.allow_hosts,
                token=settings.token,
                bound=settings.host,
            )
        ],
        exception_handlers={
            InspectorError: _inspector_error,
            HTTPException: _http_error,
            ClientDisconnect: _client_gone,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


async def _inspector_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InspectorError)
    if _wants_json(request):
        return JSONResponse(exc.to_dict(), status_code=exc.status, headers=exc.headers)
    return views.error_page(request, exc.status, str(exc.detail))


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client left mid-request — or the server cut a body it could not parse (a malformed
    chunk), after answering 400 itself. Nobody is listening: end quietly, not as a crash."""
    return Response(status_code=400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if _wants_json(request):
        error = "not_found" if exc.status_code == 404 else "http_error"
        return JSONResponse(
            {"error": error, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )
    if exc.status_code == 404:
        return views.error_page(request, 404, "Nothing here.")
    return HTMLResponse(str(exc.detail), status_code=exc.status_code)
