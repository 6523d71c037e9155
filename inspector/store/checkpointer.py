"""The checkpointer: copies a server's WAL into the database file from a thread of its own.

SQLite's default (``wal_autocheckpoint``, 1,000 frames) runs the checkpoint inside the COMMIT
that crosses the threshold: the writer copies the frames and fsyncs the WAL and the database
file before its COMMIT returns, so the captures of that batch are announced, and the ones
queued behind it written, only after two fsyncs. At 1,000 captures/s (about 12 frames per
one-capture batch) that was one batch in 80 — the tail of capture->SSE latency.

With a syncer (``syncer.py``) the writer's connection turns the auto-checkpoint off and this
thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on a connection of its own, at most every
``EVERY`` seconds while batches are committed. A passive checkpoint never takes the write lock:
the writer goes on committing meanwhile. SQLite's checkpoint itself syncs the WAL before it
copies and the database file before it records the copy, so nothing about durability changes
(the syncer still fsyncs the WAL before a batch is answered).

The writer restarts the WAL from its beginning when a batch begins with every frame copied
(at 1,000 captures/s a pass often ends so: the WAL stayed under 2,000 frames). A pass racing
the writer without end would let the WAL grow: once it holds ``CAP`` frames the writer
finishes the copy itself, between batches (``finish``) — only the frames since the last pass
are left — and its next batch restarts the WAL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("inspector.store")

EVERY = 0.1
# Frames (pages) in the WAL past which the writer finishes a checkpoint between batches:
# 8,192 frames of 4 KiB, 32 MiB (about 650 one-capture batches).
CAP = 8192


class Checkpointer:
    """A thread that checkpoints the WAL, passively, after it is ``nudge``d."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], every: float = EVERY) -> None:
        self.every = every
        # Frames in the WAL at the last checkpoint (written by this thread, read by the writer).
        self.frames = 0
        self.passes = 0
        self._conn = connect()
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Something was committed: checkpoint it (soon, not at once)."""
        self._wanted.set()

    @property
    def full(self) -> bool:
        """The WAL has grown past ``CAP``: the writer should ``finish`` a checkpoint."""
        return self.frames >= CAP

    def finish(self, conn: sqlite3.Connection) -> None:
        """Checkpoint on the writer's own connection, between its batches (nothing else
        writes meanwhile, so every frame no reader still needs is copied). The writer's next
        batch restarts the WAL; if a reader kept it from that, the next pass says so."""
        checkpoint(conn)
        self.frames = 0

    def close(self) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            self.frames = checkpoint(self._conn)
            self.passes += 1
            # Batches committed meanwhile wait for the next pass: one pass per ``every`` at
            # most, as the auto-checkpoint made one per 1,000 frames.
            self._stopping.wait(self.every)


def checkpoint(conn: sqlite3.Connection) -> int:
    """``PRAGMA wal_checkpoint(PASSIVE)``; returns the frames in the WAL (0 on failure: a
    checkpoint that failed is retried at the next pass)."""
    try:
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error as exc:
        log.warning("store checkpoint failed: %s", exc)
        return 0
    return max(0, int(row[1]))
