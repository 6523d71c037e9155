"""Re-compute stored signature verdicts when an endpoint's signature settings change.

A common sequence: webhooks arrive, *then* the user enters the secret. The verdicts of what
was already captured should follow — each checked as of the time it arrived (so timestamped
schemes are judged against their own receive time, not now) — and the page hears an
``update`` for every request whose verdict changed. Responses already sent stay as they were.

Verdicts are computed without the doctor (one HMAC per secret and row). A failure's finding
may depend on the secrets that just changed, so each failing row already diagnosed is
diagnosed again through the ``Diagnoser``'s bounded queue — using at most half of it, so that
live captures keep their place — and the rest are stored "skipped", to be diagnosed when
someone opens them. A failure still waiting for the doctor keeps its place: the queue's jobs
take the new settings (``Diagnoser.retarget``), and a diagnosis on opening uses them anyway.
(Captures stored while the settings change were judged by the new ones already: marking them
"skipped" again would empty the doctor's queue of the live captures it holds.)
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Mapping, Sequence

import anyio.to_thread

from inspector.broadcast import Broadcaster
from inspector.diagnosis import Diagnoser, waiting
from inspector.endpoints import Endpoint
from inspector.signatures import verify
from inspector.store import Store, verdicts

log = logging.getLogger("inspector.reverify")

BATCH = 200

# A verdict as stored (``Verdict.to_dict``), or None when the endpoint verifies nothing.
StoredVerdict = dict[str, str | None] | None


def changed_verdicts(
    rows: Sequence[verdicts.SignatureInput], endpoint: Endpoint
) -> list[tuple[int, StoredVerdict]]:
    """The new verdict (without the doctor) of each row whose stored one no longer holds:
    another status or reason, or a failure diagnosed under the settings that changed."""
    out: list[tuple[int, StoredVerdict]] = []
    for request_id, headers, body, received_ts, stored in rows:
        verdict = verify(headers, body, endpoint.signature, now=received_ts, diagnose=False)
        new = verdict.to_dict() if verdict is not None else None
        if not _holds(json.loads(stored) if stored else None, new):
            out.append((request_id, new))
    return out


def _holds(old: StoredVerdict, new: StoredVerdict) -> bool:
    """A failure still waiting for the doctor holds (its diagnosis, queued or on opening,
    uses the settings of its time: ``Diagnoser.retarget``); one diagnosed holds no longer."""
    if old is None or new is None:
        return old is new
    same = all(old.get(key) == new[key] for key in ("status", "scheme", "reason"))
    return same and (waiting(old) or not waiting(new))


class Reverifier:
    """Runs one re-verification per endpoint at a time; a change during a run queues a rerun.

    Built before the ``EndpointCache``, which it is told by (``on_signature_change``): each
    change hands over the endpoints as compiled anew, so a run judges with the latest.
    """

    def __init__(self, store: Store, hub: Broadcaster, diagnoser: Diagnoser) -> None:
        self.store = store
        self.hub = hub
        self.diagnoser = diagnoser
        self._latest: dict[str, Endpoint] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()

    def schedule(self, endpoints: Mapping[str, Endpoint]) -> None:
        """Re-verify the stored requests of these endpoints (their settings just changed)."""
        for name, endpoint in endpoints.items():
            self._latest[name] = endpoint
            self.diagnoser.retarget(endpoint)
            if name in self._running:
                self._again.add(name)
            else:
                self._start(name)

    def _start(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(name))
        self._running[name] = task
        task.add_done_callback(functools.partial(self._done, name))

    def _done(self, name: str, _task: asyncio.Task[None]) -> None:
        del self._running[name]
        if name in self._again:
            self._again.discard(name)
            self._start(name)

    async def _run(self, name: str) -> None:
        after = 0
        try:
            while True:
                rows = await self.store.read(verdicts.signature_inputs, name, after, BATCH)
                if not rows:
                    return
                endpoint = self._latest[name]
                changes = await anyio.to_thread.run_sync(changed_verdicts, rows, endpoint)
                if changes:
                    await self._store(changes, endpoint)
                after = rows[-1][0]
        except Exception:
            log.exception("re-verifying the signatures of endpoint %s failed", name)

    async def _store(self, changes: list[tuple[int, StoredVerdict]], endpoint: Endpoint) -> None:
        """Store new verdicts; queue the failures' diagnoses while half the queue is free."""
        doctor = self.diagnoser
        queued: list[int] = []
        rows: list[tuple[int, str | None]] = []
        for request_id, verdict in changes:
            if verdict is not None and waiting(verdict):
                if doctor.queued < doctor.capacity // 2 and doctor.claim():
                    queued.append(request_id)
                else:
                    verdict = doctor.skipped(verdict)
            rows.append((request_id, json.dumps(verdict) if verdict is not None else None))
        try:
            items = await self.store.write(verdicts.set_signatures, rows)
        except BaseException:
            for _ in queued:
                doctor.release()
            raise
        for request_id in queued:
            doctor.submit(request_id, endpoint)
        for item in items:
            self.hub.publish("update", item, id=item["id"])

    async def wait(self) -> None:
        """Until every run (and queued rerun) has finished."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    def cancel(self) -> None:
        for task in list(self._running.values()):
            task.cancel()
