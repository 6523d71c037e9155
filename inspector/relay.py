"""The live view across replicas: the store's notifications become this process's events.

On a shared store (PostgreSQL) each write batch leaves notices in its transaction — kinds
and ids, never a body — that PostgreSQL delivers at commit, in commit order, to every
replica (``PostgresBackend.listen``). The ``Relay`` turns each notification into events on
the local ``Broadcaster`` (``deliver``): it reads what the events carry — request items,
delivery items, log lines — by id, in one trip to the store per notification, and publishes
them in notice order. The replica that wrote gets its own events the same way, so every
replica's streams see one order, the commit order, which is also id order (see
``store/postgres.py``) — which keeps ``Last-Event-ID`` exact.

Settings notices reload the ``EndpointCache`` at once; delivery notices wake the delivery
engine (another replica may have scheduled, cancelled or given back a delivery). If the
channel is lost, notices may be missed: every stream resyncs from the store, the settings
are reloaded and the engine looks at its schedule again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from inspector.broadcast import Broadcaster
from inspector.store import Connection, Notice, Store, deliveries, requests

log = logging.getLogger("inspector.relay")

# What the relay publishes: (event, data, id).
Event = tuple[str, dict[str, object], int | None]


def events_for(conn: Connection, notices: Sequence[Notice]) -> list[Event]:
    """The events a notification stands for, in its order, with their data read by id."""
    request_ids = [int(n[1]) for n in notices if n[0] in ("request", "update") and n[1] is not None]
    delivery_ids = sorted({int(n[1]) for n in notices if n[0] == "delivery" and n[1] is not None})
    attempt_ids = [
        int(n[3])
        for n in notices
        if n[0] == "delivery" and len(n) > 3 and n[2] != "sending" and isinstance(n[3], int)
    ]
    items = requests.items_by_ids(conn, request_ids)
    found = {i: deliveries.get_item(conn, i) for i in delivery_ids}
    attempts = deliveries.attempt_items(conn, attempt_ids)
    out: list[Event] = []
    for n in notices:
        kind, key = n[0], n[1]
        if kind in ("request", "update") and isinstance(key, int) and key in items:
            out.append((str(kind), dict(items[key]), key))
        elif kind == "deleted":
            out.append(("deleted", {"id": key}, None))
        elif kind == "cleared":
            out.append(("cleared", {"endpoint": key}, None))
        elif kind == "delivery" and isinstance(key, int):
            item = found.get(key)
            if item is None:
                continue
            change, extra = n[2], n[3] if len(n) > 3 else None
            attempt: object = None
            if change == "sending":
                attempt = {"attempt": extra, "url": item["url"]}
            elif isinstance(extra, int):
                attempt = attempts.get(extra)
            out.append(("delivery", {"change": change, "delivery": item, "attempt": attempt}, key))
    return out


class Relay:
    """Feeds a replica's broadcaster, settings and delivery engine from the store."""

    def __init__(
        self,
        store: Store,
        hub: Broadcaster,
        *,
        on_settings: Callable[[], Awaitable[None]],
        on_delivery: Callable[[], None],
    ) -> None:
        self.store = store
        self.hub = hub
        self.on_settings = on_settings
        self.on_delivery = on_delivery
        self._pending: list[Notice] = []
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def handle(self, notices: list[Notice]) -> None:
        """Take one notification's notices. They are turned into events by one worker, which
        takes everything that arrived meanwhile in one read: under load a read per
        notification would fall behind, and its streams with it."""
        self._pending.extend(notices)
        self._wake.set()
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="relay")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            notices, self._pending = self._pending, []
            if notices:
                await self.process(notices)

    async def process(self, notices: list[Notice]) -> None:
        """Notices, in commit order: their events; settings and deliveries looked at anew."""
        if any(n[0] == "settings" for n in notices):
            await self._settings()
        if any(n[0] == "delivery" for n in notices):
            self.on_delivery()
        if not self.hub.has_subscribers:
            return
        try:
            events = await self.store.read(events_for, notices)
        except Exception:
            # Without these events a stream would have a gap: make every stream catch up.
            log.exception("could not read what a notification names; streams resync")
            self.hub.resync_all()
            return
        for event, data, id in events:
            self.hub.deliver(event, data, id=id)

    async def connected(self, again: bool) -> None:
        """The channel is listened to; after a loss, catch up on whatever was missed."""
        if not again:
            return
        log.warning("store notifications resumed; live views resync from the store")
        self.hub.resync_all()
        await self._settings()
        self.on_delivery()

    async def _settings(self) -> None:
        try:
            await self.on_settings()
        except Exception:
            log.exception("could not reload endpoint settings")
