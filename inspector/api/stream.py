"""The server-sent event streams: captures (``/api/stream``) and deliveries
(``/api/deliveries/stream``).

``GET /api/stream[?endpoint=E][&after=ID]``: captures, resumable. Events (``data:`` is always
one line of JSON):

* ``ready`` — first, once subscribed: ``{"after": N, "head": H}``, with ``id: N`` and
  ``retry: 1000``. ``N`` is where this stream resumes from: the client's ``Last-Event-ID``
  (or ``?after=``), else the newest id in the store (live from now).
* ``request`` — a new capture, ``id:`` = its request id, data = its list item. After
  ``ready`` come the requests the client missed (from the store, oldest first), then live
  ones; each id exactly once, in order.
* ``update`` — a capture changed (a stall ended, a replay, a new verdict): data = its item.
  ``deleted`` ``{"id"}``, ``cleared`` ``{"endpoint"}``. None of these has an ``id:`` line, so
  ``Last-Event-ID`` stays a request id: "I have every request up to here".
* ``resync`` — the client fell too far behind (its queue overflowed) or resumes from an id
  this store never issued (a different store): ``{"reason", "after"}``. The stream ends; the
  client reloads what it shows from the store and reconnects from ``after``.

A live event reaches an idle stream inside ``publish`` (``Broadcaster.batches``' ``direct``):
``Writer`` sends it through the ``send`` sse-starlette's response was given, without waiting
for the stream's task to be woken on the next turn of the event loop — at 1,000 captures/s
that turn is most of what an event waits for once committed. A client slow to read gets
its events queued instead, and sent by the task as before.

Keep-alive comments every 15 s. A client that accepts none of what is queued for it for
``--send-timeout`` (30 s) is cut by the connection layer (``connections.py``), which drops
the kernel's buffers with it; sse-starlette's own ``send_timeout`` only ended the generator
and left uvicorn closing the connection "after the buffers drain" — never, for such a
client. The resume protocol: subscribe to the broadcaster *first*,
then read the store; live requests the backlog already covered are skipped by id.

``GET /api/deliveries/stream``: ``ready`` once subscribed, then a ``delivery`` event per
attempt and state change (``sender.DeliveryChange``); ``resync`` when the client fell
behind (it reloads the list, then listens again). Not resumable: the list is the state.

Shutdown: on Ctrl-C/SIGTERM sse-starlette (which hooks uvicorn's exit handler) sets our
``shutdown`` event; the stream then ends cleanly (a complete chunked response, so the client
reconnects at once) well within uvicorn's graceful-shutdown timeout. ``Broadcaster.close()``
ends streams the same way for servers stopped without a signal (embedded, tests).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from inspector import openapi
from inspector.broadcast import Behind, Broadcaster, Message, Subscriber, dumps, encode
from inspector.errors import BadRequest
from inspector.openapi import Operation, api_route
from inspector.params import NAME_PATTERN, endpoint_name, runtime
from inspector.store import Store, listing, requests

KINDS = frozenset({"request", "update", "deleted", "cleared"})
BACKFILL_BATCH = 500
RETRY_MS = 1000
PING_SECONDS = 15
# How long a stream may take to end by itself at shutdown before sse-starlette cancels it
# (uvicorn's own graceful timeout, ``serve``'s 3 s, must be longer).
SHUTDOWN_GRACE = 1.0


def resume_point(request: Request) -> int | None:
    """``Last-Event-ID`` (sent by a reconnecting EventSource) wins over ``?after=``."""
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or ""
    raw = raw.strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise BadRequest(f"Last-Event-ID / after: must be a request id, got {raw[:40]!r}.")
    return int(raw)


async def stream(request: Request) -> Response:
    rt = runtime(request)
    raw_endpoint = request.query_params.get("endpoint")
    endpoint = endpoint_name(raw_endpoint) if raw_endpoint else None
    after = resume_point(request)
    shutdown = anyio.Event()
    writer = Writer()
    return LiveResponse(
        writer,
        events(rt.hub, rt.store, endpoint, after, shutdown, writer),
        ping=PING_SECONDS,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE,
    )


def send_now(send: Send, message: AsgiMessage) -> bool:
    """Send an ASGI message without awaiting: True once sent; False, with nothing sent, when
    the server's ``send`` would wait first — uvicorn's waits, before writing anything, while
    the client has not taken what was written before."""
    step = send(message)
    if not isinstance(step, Coroutine):  # not one we can drive: let the task send it
        return False
    try:
        step.send(None)
    except StopIteration:
        return True
    except Exception:
        return False  # the task's send meets the same error, where it is handled
    step.close()
    return False


class Writer:
    """Sends a stream's live events from ``publish`` itself, through the ``send`` of the
    stream's response (set while the response runs)."""

    send: Send | None = None

    def write(self, chunk: bytes) -> bool:
        send = self.send
        if send is None:
            return False
        return send_now(send, {"type": "http.response.body", "body": chunk, "more_body": True})


class LiveResponse(EventSourceResponse):
    """sse-starlette's response, lending its ``send`` to a ``Writer`` while it runs."""

    def __init__(self, writer: Writer, content: AsyncIterator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.writer = writer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.writer.send = send
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.writer.send = None


async def close_on(shutdown: anyio.Event, subscriber: Subscriber) -> None:
    """End a subscriber's stream when sse-starlette signals shutdown."""
    await shutdown.wait()
    subscriber.close()


async def events(
    hub: Broadcaster,
    store: Store,
    endpoint: str | None,
    after: int | None,
    shutdown: anyio.Event | None = None,
    writer: Writer | None = None,
) -> AsyncIterator[bytes]:
    """The stream of one client, as encoded SSE chunks; with a ``writer``, live events reach
    it at once while the stream is idle."""
    # Subscribed before the store is read: whatever commits from now on is either in the
    # backlog read below or queued here (or both — the id check drops the copy).
    subscriber = hub.subscribe(endpoint, KINDS)
    watcher = asyncio.create_task(close_on(shutdown, subscriber)) if shutdown else None
    try:
        head = await store.read(requests.head_id)
        if after is not None and after > head:
            yield encode("resync", dumps({"reason": "unknown_id", "after": 0}))
            return
        seen = head if after is None else after
        yield encode("ready", dumps({"after": seen, "head": head}), seen, RETRY_MS)
        if after is not None:
            async for chunk, last in backlog(store, endpoint, after):
                seen = max(seen, last)
                yield chunk
        async for chunk in live(hub, subscriber, seen, writer):
            yield chunk
    finally:
        hub.unsubscribe(subscriber)
        if watcher is not None:
            watcher.cancel()


async def backlog(
    store: Store, endpoint: str | None, after: int
) -> AsyncIterator[tuple[bytes, int]]:
    """Stored requests after ``after``, oldest first, one chunk per batch."""
    while True:
        items = await store.read(listing.items_after, after, endpoint, BACKFILL_BATCH)
        if not items:
            return
        after = items[-1]["id"]
        yield b"".join(encode("request", dumps(it), it["id"]) for it in items), after
        if len(items) < BACKFILL_BATCH:
            return


async def live(
    hub: Broadcaster, subscriber: Subscriber, seen: int, writer: Writer | None = None
) -> AsyncIterator[bytes]:
    """Published events; requests with id <= ``seen`` were already sent (or predate the
    stream). Ends with ``resync`` if the subscriber falls behind. With a ``writer``, events
    published while the stream is idle are written at once (those it cannot write, queued)."""

    def direct(message: Message) -> bool:
        nonlocal seen
        assert writer is not None
        if message.event == "request" and message.id is not None:
            if message.id <= seen:
                return True  # sent already: dropped, as below
            if not writer.write(message.wire):
                return False
            seen = message.id
            return True
        return writer.write(message.wire)

    try:
        async for batch in hub.batches(subscriber, direct if writer is not None else None):
            chunks = []
            for message in batch:
                if message.event == "request" and message.id is not None:
                    if message.id <= seen:
                        continue
                    seen = message.id
                chunks.append(message.wire)
            if chunks:
                yield b"".join(chunks)
    except Behind:
        yield encode("resync", dumps({"reason": "behind", "after": seen}))


async def delivery_stream(request: Request) -> Response:
    hub = runtime(request).hub
    # Ended by us at shutdown (like /api/stream), not cut by sse-starlette's cancellation.
    shutdown = anyio.Event()

    async def messages() -> AsyncIterator[ServerSentEvent]:
        subscriber = hub.subscribe(kinds=frozenset({"delivery"}))
        watcher = asyncio.create_task(close_on(shutdown, subscriber))
        try:
            # Sent once subscribed: a client that (re)loads the list now misses nothing.
            yield ServerSentEvent(data="{}", event="ready")
            async for batch in hub.batches(subscriber):
                for message in batch:
                    yield ServerSentEvent(data=message.data, event=message.event)
        except Behind:
            # Too slow to keep up: the client reloads the list, then listens again.
            yield ServerSentEvent(data="{}", event="resync")
        finally:
            watcher.cancel()
            hub.unsubscribe(subscriber)

    return EventSourceResponse(
        messages(),
        ping=PING_SECONDS,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE,
    )


STREAM = "Server-sent events; see the README's JSON API section for the event kinds."

# Before ``api/deliveries.py``'s routes, whose ``/api/deliveries/{id}`` would take "stream".
routes: list[BaseRoute] = [
    api_route(
        "/api/stream",
        stream,
        "GET",
        Operation(
            "Captures live (server-sent events), resumable with Last-Event-ID",
            (
                openapi.text("endpoint", "Only this endpoint.", pattern=NAME_PATTERN),
                openapi.text("after", "Resume after this request id.", pattern="^[0-9]{0,18}$"),
            ),
            media="text/event-stream",
            answer_text=STREAM,
        ),
    ),
    api_route(
        "/api/deliveries/stream",
        delivery_stream,
        "GET",
        Operation(
            "Deliveries live (server-sent events)",
            media="text/event-stream",
            answer_text=STREAM,
        ),
    ),
]
