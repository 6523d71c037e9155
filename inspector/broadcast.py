"""One Broadcaster: a bounded queue per subscriber, resume by Last-Event-ID from the store.

Capture publishes a small event (the request's summary) after its commit; each subscriber
(an SSE connection of the page, ``tail``) has its own bounded queue. Publishing never waits
and never fails: a subscriber whose queue is full is marked *behind* — its queue is dropped
and it is told to resync — so a slow or stuck client never slows capture and never silently
loses events. Resuming (``Last-Event-ID``) reads the store (see ``api/stream.py``), so a
client that was away catches up in order, with no gaps and no duplicates.

Each message is encoded to SSE bytes once, at publication, and shared by every subscriber;
a subscriber drains everything queued at each wake-up, so a busy stream sends one chunk per
wake-up instead of one per event.

A subscriber that is idle — everything it was given is sent, it waits for more — may be
handed a message at once instead (``Subscriber.direct``): the live stream writes it to its
client inside ``publish``, without waking its task for the next turn of the event loop. When
it cannot (the client is slow to read) the message is queued, and so is everything after it
until the subscriber has sent the queue and waits again: in order, never twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

log = logging.getLogger("inspector.broadcast")

QUEUE_SIZE = 1000
# Takes a message at once (the subscriber is idle); False when it cannot now: queue it.
Direct = Callable[["Message"], bool]
# Only these events carry an ``id:``: their id is a request id, the resume cursor. Others
# (update, deleted, cleared) must not move a client's Last-Event-ID backwards.
RESUMABLE = frozenset({"request"})


def encode(event: str, data: str, id: int | None = None, retry_ms: int | None = None) -> bytes:
    """One SSE event. ``data`` is JSON text, which never contains a line break."""
    head = f"id: {id}\n" if id is not None else ""
    tail = f"retry: {retry_ms}\n" if retry_ms is not None else ""
    return f"{head}event: {event}\ndata: {data}\n{tail}\n".encode()


_encode = msgspec.json.Encoder().encode
# Characters that msgspec leaves as they are but str.splitlines() breaks lines at (httpx's
# iter_lines, and so ``tail``, read the stream with it): escaped, as json.dumps did.
_LINE_BREAKS = (
    (b"\xc2\x85", b"\\u0085"),
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
)


def _json(data: object) -> bytes:
    """Compact JSON, one line for any line splitter. msgspec: a capture's event in ~4 us, where
    json.dumps took ~16 (other non-ASCII characters are sent as UTF-8, not escaped)."""
    raw = _encode(data)
    if not raw.isascii():
        for found, escaped in _LINE_BREAKS:
            raw = raw.replace(found, escaped)
    return raw


def dumps(data: object) -> str:
    return _json(data).decode()


@dataclass(frozen=True, slots=True)
class Message:
    event: str  # "request" | "update" | "deleted" | "cleared" | "delivery" | ...
    id: int | None
    data: str  # JSON text, serialized once for every subscriber
    endpoint: str | None = None
    wire: bytes = b""  # the SSE encoding, made once at publication

    @classmethod
    def make(cls, event: str, data: Mapping[str, object], id: int | None = None) -> Message:
        raw = _json(data)
        endpoint = data.get("endpoint")
        head = b"id: %d\n" % id if id is not None and event in RESUMABLE else b""
        return cls(
            event,
            id,
            raw.decode(),
            endpoint if isinstance(endpoint, str) else None,
            b"%sevent: %s\ndata: %s\n\n" % (head, event.encode(), raw),
        )


@dataclass(eq=False)
class Subscriber:
    """One consumer's queue. ``endpoint``/``kinds`` filter what it is offered."""

    endpoint: str | None = None
    kinds: frozenset[str] | None = None
    maxsize: int = QUEUE_SIZE
    behind: bool = False
    closed: bool = False
    pending: deque[Message] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Set by ``Broadcaster.batches`` only while the subscriber waits with nothing queued.
    direct: Direct | None = None

    def wants(self, message: Message) -> bool:
        if self.kinds is not None and message.event not in self.kinds:
            return False
        # Messages without an endpoint (deleted {id}, cleared all) go to everyone.
        return self.endpoint is None or message.endpoint in (None, self.endpoint)

    def offer(self, message: Message) -> None:
        if self.behind or self.closed or not self.wants(message):
            return
        direct = self.direct
        if direct is not None:
            try:
                taken = direct(message)
            except Exception:  # a bug there must not cost this or another subscriber an event
                log.exception("writing a live event at once failed; queueing it")
                taken = False
            if taken:
                return
            # Not taken: this one and every later one wait in the queue, in order, until the
            # subscriber has sent them (it is woken below) and is idle again.
            self.direct = None
        if len(self.pending) >= self.maxsize:
            # Dropping only the oldest would leave a gap the client cannot see; drop the
            # whole backlog instead and make the client resync from the store.
            self.pending.clear()
            self.behind = True
        else:
            self.pending.append(message)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.direct = None
        self.pending.clear()
        self.wake.set()


class Behind(Exception):
    """The subscriber's queue overflowed: the events it missed must come from the store."""


class Broadcaster:
    """Fan-out of small events to subscribers, on the event loop (not thread-safe).

    ``from_store``: on a store shared by replicas (PostgreSQL) every event reaches the
    subscribers through ``deliver``, fed by the store's notifications in commit order — the
    events of this process's own writes included. Its parts' ``publish`` calls are then
    ignored, so that each event arrives once, on one ordered path.
    """

    def __init__(self, queue_size: int = QUEUE_SIZE, *, from_store: bool = False) -> None:
        self.queue_size = queue_size
        self.from_store = from_store
        self._subscribers: set[Subscriber] = set()
        self._closed = False

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, event: str, data: Mapping[str, object], *, id: int | None = None) -> None:
        """Offer an event to every subscriber; never blocks (capture calls this). Ignored
        when events come ``from_store``."""
        if not self.from_store:
            self.deliver(event, data, id=id)

    def deliver(self, event: str, data: Mapping[str, object], *, id: int | None = None) -> None:
        """Offer an event to every subscriber, whatever its source."""
        if not self._subscribers:
            return
        message = Message.make(event, data, id)
        for subscriber in self._subscribers:
            subscriber.offer(message)

    def resync_all(self) -> None:
        """Events may have been missed (the store's channel was lost): every subscriber
        catches up from the store, as one that fell behind does."""
        for subscriber in self._subscribers:
            if not subscriber.closed:
                subscriber.pending.clear()
                subscriber.behind = True
                subscriber.wake.set()

    def subscribe(
        self,
        endpoint: str | None = None,
        kinds: Iterable[str] | None = None,
        *,
        queue_size: int | None = None,
    ) -> Subscriber:
        subscriber = Subscriber(
            endpoint,
            frozenset(kinds) if kinds is not None else None,
            queue_size or self.queue_size,
        )
        if self._closed:
            subscriber.close()
        else:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every subscription (server shutdown); later subscriptions end at once."""
        self._closed = True
        for subscriber in self._subscribers:
            subscriber.close()
        self._subscribers.clear()

    async def batches(
        self, subscriber: Subscriber, direct: Direct | None = None
    ) -> AsyncIterator[list[Message]]:
        """Everything queued for ``subscriber`` at each wake-up, in publication order.

        With ``direct``, messages published while the caller waits here — it has dealt with
        every batch yielded before — go to ``direct`` at once; those it does not take are
        queued and yielded as usual. Ends when the subscription is closed. Raises ``Behind``
        once the queue has overflowed (after the subscriber has been removed, so it costs
        nothing more).
        """
        while True:
            if subscriber.behind:
                self.unsubscribe(subscriber)
                raise Behind
            if subscriber.pending:
                batch = list(subscriber.pending)
                subscriber.pending.clear()
                yield batch
                continue
            if subscriber.closed:
                return
            subscriber.wake.clear()
            subscriber.direct = direct
            try:
                await subscriber.wake.wait()
            finally:
                subscriber.direct = None

    async def next_batch(self, subscriber: Subscriber, timeout: float) -> list[Message]:
        """What is queued for ``subscriber``, waiting at most ``timeout`` seconds for something
        (empty on time-out or once closed). Raises ``Behind`` like ``batches``."""
        if not subscriber.pending and not subscriber.closed and not subscriber.behind:
            subscriber.wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await subscriber.wake.wait()
        if subscriber.behind:
            self.unsubscribe(subscriber)
            raise Behind
        batch = list(subscriber.pending)
        subscriber.pending.clear()
        return batch

    async def messages(self, subscriber: Subscriber) -> AsyncIterator[Message]:
        """One message at a time; a subscriber that falls behind gets a final ``resync``."""
        try:
            async for batch in self.batches(subscriber):
                for message in batch:
                    yield message
        except Behind:
            yield Message.make("resync", {"reason": "behind"})
