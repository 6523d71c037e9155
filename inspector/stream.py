"""One Broadcaster: a bounded queue per subscriber, resume by Last-Event-ID from the store.

Capture publishes a small event (the request's summary) after its commit; each subscriber
(an SSE connection, ``tail``) has its own bounded queue. Publishing never waits: a subscriber
whose queue is full is marked *behind* and told to resync — it never slows capture and never
silently loses events. Resuming (``Last-Event-ID``) reads the store, so a client that was away
catches up in order, with no gaps and no duplicates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Message:
    event: str  # "request" | "update" | "delivery" | "resync" | ...
    id: int | None
    data: str  # JSON text, serialized once for every subscriber
    endpoint: str | None = None


@dataclass(eq=False)
class Subscriber:
    endpoint: str | None = None
    kinds: frozenset[str] | None = None
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    behind: bool = False

    def offer(self, message: Message) -> None:
        if self.behind:
            return
        if self.kinds is not None and message.event not in self.kinds:
            return
        if self.endpoint is not None and message.endpoint not in (None, self.endpoint):
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.behind = True
            # Make room for the marker so the consumer wakes up and learns it is behind.
            self.queue.get_nowait()
            self.queue.put_nowait(Message("resync", None, "{}"))


class Broadcaster:
    """Fan-out of small events to subscribers, on the event loop (not thread-safe)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscriber] = set()
        self._closed = asyncio.Event()

    @property
    def has_subscribers(self) -> bool:
        return bool(self._subscribers)

    def publish(self, event: str, data: dict[str, Any], *, id: int | None = None) -> None:
        if not self._subscribers:
            return
        endpoint = data.get("endpoint")
        message = Message(
            event, id, json.dumps(data), endpoint if isinstance(endpoint, str) else None
        )
        for subscriber in self._subscribers:
            subscriber.offer(message)

    def subscribe(
        self, endpoint: str | None = None, kinds: frozenset[str] | None = None
    ) -> Subscriber:
        subscriber = Subscriber(endpoint, kinds)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """Wake every subscriber so streams end (server shutdown)."""
        self._closed.set()
        for subscriber in list(self._subscribers):
            subscriber.behind = True
            try:
                subscriber.queue.put_nowait(Message("shutdown", None, "{}"))
            except asyncio.QueueFull:
                subscriber.queue.get_nowait()
                subscriber.queue.put_nowait(Message("shutdown", None, "{}"))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def messages(self, subscriber: Subscriber) -> AsyncIterator[Message]:
        """Yield a subscriber's messages until it falls behind (then a ``resync``) or the
        broadcaster closes."""
        while True:
            message = await subscriber.queue.get()
            if message.event == "shutdown":
                return
            yield message
            if message.event == "resync":
                return
