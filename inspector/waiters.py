"""Long-polls over the captured requests: ``GET /api/requests/wait``.

A waiter answers as soon as ``count`` requests matching a filter, with ids above ``after``,
are stored, or when its time is up. It reads the store once, then sleeps on a broadcaster
subscription and reads again only when a capture (or an update: a stall that ended, a new
verdict) concerns it — no polling loop. Reads start from the newest id already looked at, so
each wake-up reads only what is new.

The number of waiters at once is bounded (``Busy``, 503 with Retry-After, beyond it) and so is
each one's time (``MAX_TIMEOUT``); a waiter whose client goes away is cancelled by the route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from inspector.broadcast import Behind, Broadcaster, Message, Subscriber
from inspector.errors import Busy
from inspector.shapes import WaitResult
from inspector.store import Store, listing, requests

MAX_WAITERS = 256
MAX_TIMEOUT = 300.0
DEFAULT_TIMEOUT = 30.0
MAX_COUNT = 1000
KINDS = frozenset({"request", "update"})


class Waiters:
    """Every long-poll of a server, and their bound."""

    def __init__(self, store: Store, hub: Broadcaster, *, limit: int = MAX_WAITERS) -> None:
        self.store = store
        self.hub = hub
        self.limit = limit
        self.active = 0

    async def wait(
        self, flt: listing.RequestFilter, count: int, after: int, timeout: float
    ) -> WaitResult:
        """The first ``count`` requests matching ``flt`` with id > ``after``, once stored, or
        those there are after ``timeout`` seconds. ``Busy`` when too many already wait."""
        if self.active >= self.limit:
            raise Busy(
                f"{self.active} clients are already waiting (the limit is {self.limit}): "
                "retry shortly.",
                retry_after=1,
            )
        self.active += 1
        try:
            return await self._wait(flt, count, after, timeout)
        finally:
            self.active -= 1

    async def _wait(
        self, flt: listing.RequestFilter, count: int, after: int, timeout: float
    ) -> WaitResult:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        found: dict[int, requests.ListedRequest] = {}
        cursor = after  # every request up to here has been looked at
        subscriber = self._subscribe(flt)
        try:
            while True:
                # Subscribed before reading: whatever commits after this read wakes us.
                items, head = await self.store.read(
                    listing.matching_after, flt, cursor, count - len(found)
                )
                found.update((it["id"], it) for it in items)
                if len(found) >= count:
                    return _result(found, count, timed_out=False)
                cursor = head
                rechecked = False
                while not rechecked:
                    remaining = deadline - loop.time()
                    if remaining <= 0 or subscriber.closed:
                        return _result(found, count, timed_out=True)
                    try:
                        batch = await self.hub.next_batch(subscriber, remaining)
                    except Behind:
                        # Missed events: start over from the store (it has everything).
                        subscriber = self._subscribe(flt)
                        cursor = after
                        break
                    if any(_is_new(m, flt, cursor) for m in batch):
                        break
                    changed = _updated(batch, flt, after, cursor, found)
                    if changed:
                        again = await self.store.read(listing.matching_ids, flt, changed)
                        found.update((it["id"], it) for it in again)
                        if len(found) >= count:
                            return _result(found, count, timed_out=False)
        finally:
            self.hub.unsubscribe(subscriber)

    def _subscribe(self, flt: listing.RequestFilter) -> Subscriber:
        # An exact endpoint is filtered by the broadcaster; a prefix here, per message.
        return self.hub.subscribe(flt.endpoint, KINDS)


def _concerns(message: Message, flt: listing.RequestFilter) -> bool:
    prefix = flt.endpoint_prefix
    return prefix is None or (message.endpoint or "").startswith(prefix)


def _is_new(message: Message, flt: listing.RequestFilter, cursor: int) -> bool:
    """A capture committed after the last read."""
    return (
        message.event == "request"
        and message.id is not None
        and message.id > cursor
        and _concerns(message, flt)
    )


def _updated(
    batch: Iterable[Message],
    flt: listing.RequestFilter,
    after: int,
    cursor: int,
    found: dict[int, requests.ListedRequest],
) -> list[int]:
    """Requests of the window already looked at that changed (and may match now)."""
    return sorted(
        {
            m.id
            for m in batch
            if m.event == "update"
            and m.id is not None
            and after < m.id <= cursor
            and m.id not in found
            and _concerns(m, flt)
        }
    )


def _result(found: dict[int, requests.ListedRequest], count: int, *, timed_out: bool) -> WaitResult:
    ordered = [found[i] for i in sorted(found)][:count]
    return {"requests": ordered, "timed_out": timed_out}
