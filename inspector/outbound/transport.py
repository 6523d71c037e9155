"""The one place outbound HTTP clients are built: httpx over the guarded network backend.

``open_client`` is the only constructor of outbound clients (replay, mirror, proxy, the
sender, ``check``): no redirects followed, no proxies or certificates from the environment,
the address guard on every connection. Outgoing TLS settings (verification, a CA file, an
explicit insecure mode) belong here too, as one SSL context handed to the connection pool.

``GuardedTransport`` is httpx's transport minus everything httpx would add: the
request-target is sent as given (extension ``inspector.target``), byte for byte, and
``exact_request`` builds a request whose method, header order and body are the caller's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence

import httpcore
import httpx

from inspector.outbound.guard import GuardedBackend, Resolver

TARGET = "inspector.target"  # request extension: the raw request-target bytes

_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc) or type(exc).__name__) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, inner: AsyncIterable[bytes]) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._inner:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport, minus everything it would add, over a ``GuardedBackend``.

    The request-target comes from the ``inspector.target`` extension when set, so a
    captured path and query are sent byte for byte (httpx would normalise them).
    ``keepalive`` is how many idle connections are kept (0: a fresh one per request).
    """

    def __init__(self, backend: GuardedBackend, *, keepalive: int = 8) -> None:
        self._backend = backend
        self._keepalive = keepalive
        self._pool: httpcore.AsyncConnectionPool | None = None

    @property
    def backend(self) -> GuardedBackend:
        return self._backend

    def _connections(self) -> httpcore.AsyncConnectionPool:
        # No SSL context here: httpcore loads the CA bundle (tens of milliseconds, blocking)
        # only when an https:// target first needs it, never for plain http to a local app.
        # Outgoing TLS settings, when they come, are one ``ssl_context`` passed here.
        if self._pool is None:
            self._pool = httpcore.AsyncConnectionPool(
                max_connections=32,
                max_keepalive_connections=self._keepalive,
                keepalive_expiry=5.0,
                network_backend=self._backend,
            )
        return self._pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        extensions = dict(request.extensions)
        target = extensions.pop(TARGET, None) or request.url.raw_path
        core = httpcore.Request(
            method=request.method.encode("latin-1"),
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=target,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=extensions,
        )
        with _as_httpx_errors():
            response = await self._connections().handle_async_request(core)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()


def open_client(
    *,
    keepalive: int = 8,
    headers: Mapping[str, str] | None = None,
    backend: GuardedBackend | None = None,
    resolve: Resolver | None = None,
) -> httpx.AsyncClient:
    """An outbound client: the address guard on every connection, redirects never followed,
    nothing taken from the environment (proxies, ``SSL_CERT_FILE``, netrc).

    ``keepalive`` idle connections are kept (0: a fresh connection per request);
    ``headers`` are defaults for requests built with ``client.build_request``; ``backend``
    (or ``resolve`` for a new one) is the guard, shared when the caller wants to reach it.
    """
    guard = backend if backend is not None else GuardedBackend(resolve)
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, keepalive=keepalive),
        follow_redirects=False,
        trust_env=False,
        headers=headers,
    )


def exact_request(
    method: str,
    base: httpx.URL,
    target: bytes,
    headers: Sequence[tuple[str, str]],
    body: bytes,
) -> httpx.Request:
    """A request that goes on the wire exactly as given: the method as spelled, ``target``
    as the raw request-target, the headers in order with duplicates (nothing added), the
    body bytes. ``base`` gives the scheme, host and port."""
    request = httpx.Request(
        method,
        base,
        headers=[(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        stream=httpx.ByteStream(body),
        extensions={TARGET: target},
    )
    request.method = method  # httpx upper-cases; send the method as given
    return request
