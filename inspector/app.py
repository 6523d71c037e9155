"""``create_app(settings)``: the Starlette app, its lifespan, and the capture dispatch.

Capture requests (``/h/...``) go straight to the ``Receiver`` with the server's own ASGI
callables, ahead of Starlette's middleware: they accept any Host and Origin, cost as little
as possible, and can drop the connection. Everything else — the page, ``/api``, ``/static`` —
passes through ``ControlGuard``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from inspector import api, views
from inspector.broadcast import Broadcaster
from inspector.endpoints import EndpointCache
from inspector.errors import InspectorError
from inspector.receiver import Receiver
from inspector.replay import Replayer
from inspector.resources import resource_dir
from inspector.reverify import Reverifier
from inspector.security import ControlGuard
from inspector.sender import Dispatcher
from inspector.settings import Settings
from inspector.store import Store, requests

log = logging.getLogger("inspector")


@dataclass
class Runtime:
    """The running parts, created by the lifespan and shared by every route."""

    settings: Settings
    store: Store
    hub: Broadcaster
    endpoints: EndpointCache
    receiver: Receiver
    sender: Dispatcher
    replay: Replayer


class InspectorApp(Starlette):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/h/") or path == "/h":
                runtime: Runtime = self.state.runtime
                await runtime.receiver(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> InspectorApp:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = Store(
            settings.db_path,
            retention=settings.retention,
            busy_timeout=settings.busy_timeout,
            synchronous=settings.synchronous,
        )
        await anyio.to_thread.run_sync(store.open)
        interrupted = await anyio.to_thread.run_sync(store.write_sync, requests.end_interrupted)
        if interrupted.count:
            log.warning("%d stalled request(s) were interrupted by a restart", interrupted.count)
        store.start()
        hub = Broadcaster()
        endpoints = EndpointCache(
            store,
            default_secret=settings.secret,
            forward_to=settings.forward_to,
            forward_mode=settings.forward_mode,
            max_delay=settings.max_delay,
        )
        await endpoints.refresh()
        endpoints.start()
        # Stored verdicts follow an endpoint's signature settings when they change.
        reverifier = Reverifier(store, endpoints, hub)
        endpoints.on_signature_change.append(reverifier.schedule)
        receiver = Receiver(
            store, endpoints, hub, max_body=settings.max_body, max_delay=settings.max_delay
        )
        # Resumes pending deliveries: those due (or in flight when we stopped) go at once.
        sender = Dispatcher(store, hub=hub)
        sender.start()
        # Replays, and the receiver's mirror (after the commit) and proxy (the answer) hooks.
        replay = Replayer(
            store, timeout=settings.replay_timeout, hub=hub, max_relay=settings.max_body
        )
        receiver.after_capture.append(replay.after_capture)
        receiver.proxy = replay.proxy
        app.state.runtime = Runtime(
            settings, store, hub, endpoints, receiver, sender=sender, replay=replay
        )
        try:
            yield
        finally:
            reverifier.cancel()
            await sender.stop()
            await replay.aclose()
            hub.close()
            endpoints.stop()
            await anyio.to_thread.run_sync(store.close)

    app = InspectorApp(
        routes=[
            *views.routes,
            *api.routes,
            Mount("/static", app=StaticFiles(directory=resource_dir("static")), name="static"),
        ],
        middleware=[Middleware(ControlGuard, allow_hosts=settings.allow_hosts)],
        exception_handlers={InspectorError: _inspector_error, HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.settings = settings
    return app


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api")


async def _inspector_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InspectorError)
    if _wants_json(request):
        return JSONResponse(exc.to_dict(), status_code=exc.status)
    return views.error_page(request, exc.status, str(exc.detail))


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
