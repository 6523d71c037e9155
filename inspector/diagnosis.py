"""The doctor after the answer: failing signatures are diagnosed in the background.

The capture path verifies with ``diagnose=False`` (one HMAC per secret) and answers; the
verdict of a failure says ``doctor: "pending"``. After the commit the receiver hands the
request to the ``Diagnoser``, which runs the full doctor — up to a quarter of a second of CPU
on a big body — **one request at a time, in a worker thread**, as of the request's arrival
(``now=received_ts``), with its method and URL (a signed request line) and the endpoint's
retired secrets, stores the finding and publishes an ``update``, as re-verification does.

Its queue is bounded: when it is full the capture is stored with ``doctor: "skipped"`` and
a diagnosis that says why, at no extra cost (the receiver asks for a place *before* its
commit, so the verdict it stores already says so). A request whose diagnosis was skipped or
lost to a restart is diagnosed when someone opens it (``ensure``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import anyio
import anyio.to_thread

from inspector.broadcast import Broadcaster
from inspector.endpoints import Endpoint
from inspector.signatures import Verdict, verify
from inspector.signatures.config import PENDING, SKIPPED
from inspector.store import Store, verdicts

log = logging.getLogger("inspector.diagnosis")

# Queued diagnoses at most: with the doctor capped at 0.25 s each, a full queue is done in
# about 16 s; anything beyond is skipped rather than held (each job holds nothing but an id).
QUEUE = 64
BUSY = (
    "Not diagnosed yet: the doctor was busy with {queued} other failing requests. "
    "Open this request again to diagnose it."
)


def waiting(signature: Mapping[str, object] | None) -> bool:
    """Whether a stored verdict still waits for the doctor (pending, or skipped when busy)."""
    return signature is not None and signature.get("doctor") in (PENDING, SKIPPED)


@dataclass(frozen=True)
class _Job:
    request_id: int
    endpoint: Endpoint


class Diagnoser:
    """A bounded background worker that runs the doctor for failing verdicts.

    Places are taken with ``claim`` (False: busy) and filled with ``submit``, or handed back
    with ``release``; ``request`` does both for callers that can store a "skipped" verdict
    themselves. Everything but the doctor itself runs on the event loop.
    """

    def __init__(self, store: Store, hub: Broadcaster, *, capacity: int = QUEUE) -> None:
        self.store = store
        self.hub = hub
        self.capacity = capacity
        self._queue: deque[_Job] = deque()
        self._active: _Job | None = None  # being diagnosed
        self._outdated = False  # the active job's endpoint changed meanwhile
        self._claimed = 0
        self._ids: set[int] = set()  # queued or being diagnosed
        self._task: asyncio.Task[None] | None = None
        # One diagnosis at a time, in its own thread: the doctor is CPU-bound and must
        # neither take the event loop nor crowd the threads the store's reads use.
        self._limiter = anyio.CapacityLimiter(1)
        self.done = 0  # diagnoses finished (stored or found moot), for tests and benchmarks

    @property
    def queued(self) -> int:
        return len(self._queue) + self._claimed

    @property
    def busy(self) -> bool:
        return bool(self._ids) or self._claimed > 0

    def claim(self) -> bool:
        """Take a place in the queue for a diagnosis to be submitted after a commit."""
        if self.queued >= self.capacity:
            return False
        self._claimed += 1
        return True

    def release(self) -> None:
        """Give back a place taken with ``claim`` (the commit failed)."""
        self._claimed -= 1

    def submit(self, request_id: int, endpoint: Endpoint) -> None:
        """Diagnose stored request ``request_id`` in a place taken with ``claim``."""
        self._claimed -= 1
        self._push(_Job(request_id, endpoint))

    def request(self, request_id: int, endpoint: Endpoint) -> bool:
        """Queue a diagnosis if there is room (or it is already queued); False when busy."""
        if request_id in self._ids:
            return True
        if not self.claim():
            return False
        self.submit(request_id, endpoint)
        return True

    def skipped(self, verdict: Mapping[str, str | None]) -> dict[str, str | None]:
        """``verdict`` (a pending one) as stored when the queue is full."""
        return {**verdict, "doctor": SKIPPED, "diagnosis": BUSY.format(queued=self.queued)}

    def retarget(self, endpoint: Endpoint) -> None:
        """The endpoint's signature settings changed: what is queued for it is diagnosed
        with the new ones, and a diagnosis under way with the old ones is done again."""
        for i, job in enumerate(self._queue):
            if job.endpoint.name == endpoint.name:
                self._queue[i] = _Job(job.request_id, endpoint)
        if self._active is not None and self._active.endpoint.name == endpoint.name:
            self._active = _Job(self._active.request_id, endpoint)
            self._outdated = True

    def _push(self, job: _Job) -> None:
        if job.request_id in self._ids:
            return
        self._ids.add(job.request_id)
        self._queue.append(job)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                job = self._active = self._queue.popleft()
                self._outdated = False
                try:
                    await self._diagnose(job)
                except Exception:
                    log.exception("diagnosing request %s failed", job.request_id)
                if self._outdated:  # diagnosed under settings changed since: again
                    self._queue.appendleft(self._active)
                    continue
                self._ids.discard(job.request_id)
                self.done += 1
        finally:
            self._active = None
            self._task = None

    async def _diagnose(self, job: _Job) -> None:
        found = await self.store.read(verdicts.diagnosis_input, job.request_id)
        if found is None:
            return  # deleted meanwhile
        stored = json.loads(found.signature)
        if not waiting(stored):
            return
        verdict = await anyio.to_thread.run_sync(
            _full_verdict, found, job.endpoint, limiter=self._limiter
        )
        if self._outdated:
            return  # the settings changed meanwhile: ``_run`` diagnoses it again
        if verdict is None or (verdict.status, verdict.scheme, verdict.reason) != (
            stored.get("status"),
            stored.get("scheme"),
            stored.get("reason"),
        ):
            # Settings changed since the verdict was stored: re-verification takes over.
            return
        item = await self.store.write(
            verdicts.set_diagnosis, job.request_id, found.signature, json.dumps(verdict.to_dict())
        )
        if item is not None and self.hub.has_subscribers:
            self.hub.publish("update", item, id=item["id"])

    async def wait(self) -> None:
        """Until the queue is empty and nothing is being diagnosed (tests, shutdown)."""
        while self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def stop(self) -> None:
        """Drop what is queued and end the worker (a diagnosis under way finishes first)."""
        self._queue.clear()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _full_verdict(found: verdicts.DiagnosisInput, endpoint: Endpoint) -> Verdict | None:
    return verify(
        found.headers,
        found.body,
        endpoint.signature,
        now=found.received_ts,
        other_secrets=endpoint.other_secrets,
        retired_secrets=endpoint.retired_secrets,
        target=(found.method, found.target),
    )
