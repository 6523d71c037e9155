"""The syncer: makes committed write batches durable, then answers them.

With ``synchronous=FULL`` a server's writer commits each batch without waiting for the disk
(its SQLite connection runs ``synchronous=NORMAL``: SQLite keeps the WAL consistent and syncs
it before every checkpoint) and hands the batch here. This thread fsyncs the WAL file once for
every batch waiting, and only then settles their futures: a capture's 2xx still follows its
own fsync. Meanwhile the writer runs the next batch, so the disk's latency is not added to
the writer's work batch after batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any

from inspector.errors import StoreUnavailable

log = logging.getLogger("inspector.store")

# A job's outcome: its future, and its result or its error.
Outcome = tuple[asyncio.Future[Any], object, BaseException | None]
# A committed batch's outcomes, by the loop that awaits them.
Committed = dict[asyncio.AbstractEventLoop, list[Outcome]]


def settle(outcomes: list[Outcome]) -> None:
    """Resolve futures (on their loop)."""
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def deliver(by_loop: Committed) -> None:
    """Have each loop settle its futures."""
    for loop, items in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, items)


def fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to disk; fsync covers writes made through any
    descriptor of the file, such as SQLite's own."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Syncer:
    """A thread that fsyncs ``wal`` for the batches handed to it, then delivers them."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal
        self._queue: queue.SimpleQueue[Committed | None] = queue.SimpleQueue()
        # The WAL exists from here on (the writer's connection keeps it); its directory entry
        # is made durable once, as SQLite's first sync of a new WAL would have done.
        fsync(wal.parent)
        self._thread = threading.Thread(target=self._run, name="store-sync", daemon=True)
        self._thread.start()

    def hand(self, by_loop: Committed) -> None:
        """A committed batch, to be answered once it is on disk."""
        self._queue.put(by_loop)

    def close(self) -> None:
        """Sync and answer what was handed, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batches = [first]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batches.append(nxt)
            try:
                fsync(self.wal)
            except OSError as exc:
                # Committed, but not known to be on disk: say so rather than answer 2xx.
                log.error("store sync failed: %s", exc)
                error = StoreUnavailable(f"the store could not sync to disk: {exc}")
                batches = [_failed(by_loop, error) for by_loop in batches]
            for by_loop in batches:
                deliver(by_loop)


def _failed(by_loop: Committed, error: BaseException) -> Committed:
    return {loop: [(f, None, e or error) for f, _, e in items] for loop, items in by_loop.items()}
