"""The one place outbound HTTP clients are built: httpx over the guarded network backend.

``open_client`` is the only constructor of outbound clients (replay, mirror, proxy, the
sender, ``check``): no redirects followed, no proxies or certificates from the environment,
the address guard on every connection. Outgoing TLS settings live here too: a client has
default ``TlsOptions`` (``trust``), a request may carry its own (extension ``inspector.tls``,
set by ``exchange.send``), and each set of options gets its own connection pool with its own
SSL context — made once, off the event loop, when an https:// target first needs it.

``GuardedTransport`` is httpx's transport minus everything httpx would add: the
request-target is sent as given (extension ``inspector.target``), byte for byte, and
``exact_request`` builds a request whose method, header order and body are the caller's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

import anyio.to_thread
import httpcore
import httpx

from inspector.outbound.guard import GuardedBackend, Resolver
from inspector.outbound.trust import VERIFY, TlsOptions, client_context, self_target

TARGET = "inspector.target"  # request extension: the raw request-target bytes
TLS = "inspector.tls"  # request extension: the request's ``TlsOptions``

# A pool per kind of connection: None for plain http://, else the TLS options and whether
# the target is this machine (the local CA is trusted for it).
PoolKey = tuple[TlsOptions, bool] | None

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
    ``trust`` is the TLS options of requests that carry none; ``own_ca`` the inspector's
    local CA, trusted for targets on this machine.
    """

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        keepalive: int = 8,
        trust: TlsOptions = VERIFY,
        own_ca: Path | None = None,
    ) -> None:
        self._backend = backend
        self._keepalive = keepalive
        self._trust = trust
        self._own_ca = own_ca
        self._pools: dict[PoolKey, httpcore.AsyncConnectionPool] = {}

    @property
    def backend(self) -> GuardedBackend:
        return self._backend

    async def _connections(
        self, url: httpx.URL, options: TlsOptions
    ) -> httpcore.AsyncConnectionPool:
        # Plain http:// never builds an SSL context (loading the CA bundle blocks for tens of
        # milliseconds); https:// builds one per pool, in a worker thread.
        key: PoolKey = None
        if url.scheme == "https":
            key = (options, not options.insecure and self_target(url.host))
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        context = None
        if key is not None:
            own_ca = self._own_ca if key[1] else None
            context = await anyio.to_thread.run_sync(client_context, options, own_ca)
        pool = self._pools.get(key)  # another request may have made it meanwhile
        if pool is None:
            pool = self._pools[key] = httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=32,
                max_keepalive_connections=self._keepalive,
                keepalive_expiry=5.0,
                network_backend=self._backend,
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        extensions = dict(request.extensions)
        target = extensions.pop(TARGET, None) or request.url.raw_path
        options = extensions.pop(TLS, None) or self._trust
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
        pool = await self._connections(request.url, options)
        with _as_httpx_errors():
            response = await pool.handle_async_request(core)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def open_client(
    *,
    keepalive: int = 8,
    headers: Mapping[str, str] | None = None,
    backend: GuardedBackend | None = None,
    resolve: Resolver | None = None,
    trust: TlsOptions = VERIFY,
    own_ca: Path | None = None,
) -> httpx.AsyncClient:
    """An outbound client: the address guard on every connection, redirects never followed,
    nothing taken from the environment (proxies, ``SSL_CERT_FILE``, netrc).

    ``keepalive`` idle connections are kept (0: a fresh connection per request);
    ``headers`` are defaults for requests built with ``client.build_request``; ``backend``
    (or ``resolve`` for a new one) is the guard, shared when the caller wants to reach it.
    Certificates are verified: ``trust`` is the default ``TlsOptions`` (a request may carry
    its own, see ``exchange.send``); ``own_ca``, the inspector's local CA (``ca.crt``), is
    trusted for targets on this machine when it exists.
    """
    guard = backend if backend is not None else GuardedBackend(resolve)
    return httpx.AsyncClient(
        transport=GuardedTransport(guard, keepalive=keepalive, trust=trust, own_ca=own_ca),
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
