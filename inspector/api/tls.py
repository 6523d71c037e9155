"""``/api/tls``: the HTTPS listener as the page and clients need it.

* ``GET /api/tls`` — whether HTTPS is on, its port, and where the local CA can be fetched.
* ``GET /api/tls/ca.crt`` — the local CA's certificate (PEM), to trust once: the page links
  it. Only the certificate: the key never leaves ``<data-dir>/tls/``.
"""

from __future__ import annotations

from typing import TypedDict

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from inspector.errors import NotFound
from inspector.openapi import Operation, api_route
from inspector.params import runtime
from inspector.tls import CA_URL


class TlsView(TypedDict):
    """``GET /api/tls``."""

    https: bool
    port: int | None  # the HTTPS listener's port (None: no HTTPS)
    ca: str | None  # the URL of the local CA's certificate (None: not in use)


async def tls_info(request: Request) -> Response:
    settings = runtime(request).settings
    view: TlsView = {
        "https": settings.https,
        "port": settings.https_port if settings.https else None,
        "ca": CA_URL if settings.local_ca is not None else None,
    }
    return JSONResponse(view)


async def ca_certificate(request: Request) -> Response:
    path = runtime(request).settings.local_ca
    if path is None or not await anyio.Path(path).is_file():
        raise NotFound(
            "This inspector has no local CA: `serve --https` (without --cert) makes one."
        )
    return Response(
        await anyio.Path(path).read_bytes(),
        media_type="application/x-x509-ca-cert",
        headers={"content-disposition": 'attachment; filename="webhook-inspector-ca.crt"'},
    )


routes: list[BaseRoute] = [
    api_route(
        "/api/tls",
        tls_info,
        "GET",
        Operation("The HTTPS listener: on or off, its port, the local CA", answer=TlsView),
    ),
    api_route(
        CA_URL,
        ca_certificate,
        "GET",
        Operation(
            "The local CA's certificate (PEM), to trust once (no token needed: it is public)",
            media="application/x-x509-ca-cert",
            answer_text="The certificate of the CA that issued the HTTPS listener's certificate.",
            description="404 when this inspector has no local CA (no --https, or --cert given).",
            errors=(404,),
        ),
    ),
]
