"""The delivery engine: carriers, the schedule loop, retries and resume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets as _random
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

import httpx

from inspector import timeline
from inspector.broadcast import Broadcaster
from inspector.outbound import TlsOptions
from inspector.sender.attempt import attempt_record, make_client, send_once, signed_headers
from inspector.sender.delivery import DeliveryRequest
from inspector.store import Store, deliveries, leases

log = logging.getLogger("inspector.sender")


# -- carriers --------------------------------------------------------------------------------


def cli_carrier() -> str:
    """The carrier name of this process when it sends in the foreground (``send --wait``)."""
    return f"cli:{socket.gethostname()}:{os.getpid()}"


def carrier_alive(carrier: str) -> bool:
    """False only when ``carrier`` is certainly a process of this host that has exited."""
    kind, _, rest = carrier.partition(":")
    host, _, pid_text = rest.rpartition(":")
    if kind != "cli" or host != socket.gethostname() or not pid_text.isdigit():
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) is not a probe there
        return True
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


# -- the engine ------------------------------------------------------------------------------


class SendingAttempt(TypedDict):
    """The attempt a ``sending`` change announces (it has no log line yet)."""

    attempt: int
    url: str


class DeliveryChange(TypedDict):
    """What the engine reports, to the broadcaster (kind ``"delivery"``) and its listeners."""

    change: str  # created | sending | attempt | succeeded | failed | cancelled
    delivery: deliveries.DeliveryItem
    attempt: deliveries.AttemptItem | SendingAttempt | None


Listener = Callable[[DeliveryChange], None]


class Dispatcher:
    """Sends due deliveries and schedules their retries; one asyncio task plus one task per
    attempt in flight.

    ``carrier`` None is the server's engine: it sends deliveries nobody else carries and
    adopts those of ``send --wait`` processes that have exited. A CLI engine passes its own
    ``cli_carrier()`` and sends only the deliveries it created. Before each attempt the engine
    takes the delivery's lease (``leases.claim``), so that of several replicas on one
    store exactly one sends it; a lone server on SQLite frees its predecessor's leases at
    start, replicas let them expire.

    Every change is reported as ``{"change", "delivery", "attempt"}`` — ``change`` one of
    ``created``, ``sending``, ``attempt``, ``succeeded``, ``failed``, ``cancelled`` — to the
    broadcaster (kind ``"delivery"``) and to ``listeners``.

    Each delivery carries its own TLS options (``ca_file``, ``insecure``); ``own_ca``, the
    inspector's local CA, is trusted for receivers on this machine.
    """

    def __init__(
        self,
        store: Store,
        *,
        hub: Broadcaster | None = None,
        carrier: str | None = None,
        client: httpx.AsyncClient | None = None,
        max_in_flight: int = 32,
        rescan: float = 10.0,
        own_ca: Path | None = None,
    ) -> None:
        self.store = store
        self.own_ca = own_ca
        self.hub = hub
        self.carrier = carrier
        self.listeners: list[Listener] = []
        self.max_in_flight = max_in_flight
        self.rescan = rescan
        self._client = client
        self._own_client = client is None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._backoff: dict[int, float] = {}
        self._next_adoption = 0.0
        # Who holds a lease: this engine, in this process, this time.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{_random.token_hex(4)}"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start sending: pending deliveries that are due go at once (resume)."""
        if self._client is None:
            self._client = make_client(own_ca=self.own_ca)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="delivery-engine")

    async def stop(self) -> None:
        """Stop at once. Attempts in flight are abandoned unlogged, and their leases given
        back: they are sent again by the next engine on this store."""
        tasks = [t for t in (self._task, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self.store.write(leases.release, self.owner)
        self._task = None
        self._in_flight.clear()
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def notify(self) -> None:
        """Look at the schedule again now (a delivery was added or changed)."""
        self._wake.set()

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, request: DeliveryRequest) -> deliveries.DeliveryItem:
        """Store a new delivery (due now) and wake the engine; returns its item."""
        msg_id = "msg_" + _random.token_hex(12)
        # The key a receiver (and our capture route) will group the attempts under.
        id_headers = [("webhook-id", msg_id)] if request.scheme == "standard" else []
        key = timeline.event_key(id_headers, request.body)
        new = deliveries.NewDelivery(
            event=request.event,
            event_key=key,
            url=request.url,
            scheme=request.scheme,
            secret=request.secret,
            headers=request.headers,
            body=request.body,
            schedule=request.schedule,
            timeout=request.timeout,
            time_scale=request.time_scale,
            msg_id=msg_id,
            carrier=self.carrier,
            created_ts=time.time(),
            ca_file=request.ca_file,
            insecure=request.insecure,
            wait_from=request.wait_from,
        )
        created = await self.store.write(deliveries.insert_delivery, new)
        self._emit("created", created, None)
        self.notify()
        return created

    async def cancel(self, delivery_id: int) -> deliveries.DeliveryItem | None:
        """Stop a delivery's retries; an attempt this engine has in flight is abandoned."""
        found = await self.store.write(deliveries.cancel_delivery, delivery_id, time.time())
        if found is not None and found["state"] == "cancelled":
            task = self._in_flight.get(delivery_id)
            if task is not None:
                task.cancel()
            self._emit("cancelled", found, None)
        return found

    # -- the loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        if self.carrier is None and not self.store.shared:
            # The only server on this store: leases left are a stopped predecessor's.
            with contextlib.suppress(Exception):
                await self.store.write(leases.release, None, None)
        while True:
            self._wake.clear()
            try:
                wait = await self._dispatch()
            except Exception:
                log.exception("the delivery engine could not read its schedule")
                wait = 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _dispatch(self) -> float:
        """Start every due delivery; return how long to sleep until the next one is due."""
        if self.carrier is None and time.monotonic() >= self._next_adoption:
            # Not on every wake: the read would delay deliveries that are due right now.
            self._next_adoption = time.monotonic() + self.rescan
            await self._adopt_orphans()
        room = self.max_in_flight - len(self._in_flight)
        rows = await self.store.read(
            deliveries.due_schedule, self.carrier, len(self._in_flight) + max(room, 0) + 1
        )
        now = time.time()
        monotonic = time.monotonic()
        wait = self.rescan
        wanted: list[int] = []
        for delivery_id, due in rows:
            if delivery_id in self._in_flight:
                continue
            if self._backoff.get(delivery_id, 0.0) > monotonic:
                wait = min(wait, self._backoff[delivery_id] - monotonic)
                continue
            if due > now:
                wait = min(wait, due - now)
                break
            if len(self._in_flight) + len(wanted) >= self.max_in_flight:
                break  # a finishing attempt wakes us
            wanted.append(delivery_id)
        if wanted:
            # Another replica may have claimed some meanwhile: we send only what we hold.
            claimed = await self.store.write(leases.claim, wanted, self.owner, now)
            for delivery_id in claimed:
                self._in_flight[delivery_id] = asyncio.get_running_loop().create_task(
                    self._attempt(delivery_id), name=f"delivery-{delivery_id}"
                )
        return max(wait, 0.0)

    async def _adopt_orphans(self) -> None:
        carriers = await self.store.read(deliveries.foreign_carriers)
        gone = [c for c in carriers if not carrier_alive(c)]
        if gone:
            count = await self.store.write(deliveries.adopt, gone)
            log.info("resumed %d delivery(ies) left by stopped send processes", count)

    async def _attempt(self, delivery_id: int) -> None:
        try:
            # One read for the row and its item: the time from due to sent stays small.
            found = await self.store.read(deliveries.load_pending, delivery_id)
            if found is None:
                return
            pending, item = found
            if pending.state != "pending" or pending.carrier != self.carrier:
                return
            await self._send(pending, item)
            self._backoff.pop(delivery_id, None)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("delivery %d: attempt failed unexpectedly; retrying in 5 s", delivery_id)
            self._backoff[delivery_id] = time.monotonic() + 5.0
        finally:
            self._in_flight.pop(delivery_id, None)
            self._wake.set()

    async def _send(self, pending: deliveries.Pending, item: deliveries.DeliveryItem) -> None:
        assert self._client is not None
        number = pending.attempts + 1
        headers = signed_headers(
            pending.scheme,
            pending.secret,
            pending.body,
            msg_id=pending.msg_id,
            extra=pending.headers,
        )
        self._emit("sending", item, {"attempt": number, "url": pending.url})
        result = await send_once(
            self._client,
            pending.url,
            headers,
            pending.body,
            timeout=pending.timeout,
            tls=TlsOptions(pending.ca_file, pending.insecure),
        )
        if result.ok:
            state, next_ts = "succeeded", None
        elif number > len(pending.schedule):
            state, next_ts = "failed", None
        else:
            state = "pending"
            # From the attempt's start, or from its end (its answer, or its timeout).
            since = result.sent_ts
            if pending.wait_from == "end":
                since += result.elapsed_ms / 1000
            next_ts = since + pending.schedule[number - 1] * pending.time_scale
        recorded = await self.store.write(
            deliveries.record_attempt,
            pending.id,
            attempt_record(number, headers, result),
            state,
            next_ts,
        )
        if recorded is None:
            return  # cancelled meanwhile, or recorded by another engine
        updated, attempt = recorded
        self._emit("attempt", updated, attempt)
        if state != "pending":
            self._emit(state, updated, attempt)

    def _emit(
        self,
        change: str,
        item: deliveries.DeliveryItem,
        attempt: deliveries.AttemptItem | SendingAttempt | None,
    ) -> None:
        data: DeliveryChange = {"change": change, "delivery": item, "attempt": attempt}
        if self.hub is not None:
            self.hub.publish("delivery", data, id=item["id"])
        for listener in self.listeners:
            try:
                listener(data)
            except Exception:
                log.exception("a delivery listener failed")


def describe_schedule(
    schedule: Sequence[float], time_scale: float, wait_from: str = timeline.DEFAULT_WAIT_FROM
) -> str:
    """``"retries 60 s, 300 s, 1800 s after each failed attempt ends"`` (scaled), or
    ``"no retries"``."""
    if not schedule:
        return "no retries"
    waits = ", ".join(f"{s * time_scale:g} s" for s in schedule)
    return f"retries {waits} after each failed attempt {'ends' if wait_from == 'end' else 'starts'}"
