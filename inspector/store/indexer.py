"""The indexer: a thread that keeps a SQLite store's search index (``search.py``) up to date.

It has a connection of its own to the index file (``search.index_path``), with the database
attached read-only as ``store``: its ``BEGIN IMMEDIATE`` takes the index file's write lock
and a read snapshot of the database, never the database's write lock, so the capture writer
never waits for it. Each step reads the rows past the watermark from ``store.search_text``
and inserts them into their shards, and moves the watermark, in one transaction; the
tokenizing runs inside SQLite's ``sqlite3_step``, which releases the GIL.

The writer ``nudge``s it after each batch with the rows it added (an ``Event``: nothing on
the event loop). Woken, it lets captures gather until ``GATHER_ROWS`` wait or ``GATHER``
seconds have passed (FTS5 writes a segment per transaction and merges them later: 66 us of
CPU a row in steps of 100 rows, 53 in steps of 500, 44 in steps of 4,096, at 60,000 rows),
then indexes up to ``CHUNK`` rows per transaction until none wait, drops the shards none of
whose rows are left, and makes a shard it has just filled one segment (``optimize``). With
nothing to do for ``IDLE`` seconds it merges the newest shard's segments a step at a time
(``tidy``). Two processes' indexers on
one store (two servers) take turns: each step reads the watermark inside its transaction.

Failures (the index file unwritable, corrupt, the disk full) are logged and retried later;
captures never depend on the index, and searches scan what it does not cover.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import threading
from pathlib import Path

from inspector.store import search
from inspector.store.schema import search_fold
from inspector.store.sqlite import SqliteConnection, own_transaction

log = logging.getLogger("inspector.store")

# Rows per transaction: at ~45 us a row, ~200 ms of the indexer's time; readers never wait
# for it (WAL), and FTS5 writes a segment per transaction.
CHUNK = 4096
# Rows that wait for the index are scanned by searches: up to about this many (a few ms).
GATHER_ROWS = 1024
GATHER = 0.5
IDLE = 0.5
# Pages merged per idle step (``tidy``).
TIDY_PAGES = 256
# After a failure, the indexer tries again this long after (or at close).
RETRY = 5.0
# The indexer thread's niceness (Linux: a thread's own): where the machine's cores are all
# busy, the captures' threads (and the clients') go first, and the index catches up when
# they leave it time; searches scan the rows it has not reached meanwhile.
NICE = 10
# How FTS5 merges each shard's segments: a level is merged once it holds AUTOMERGE segments,
# all at once at CRISISMERGE. FTS5's defaults (4, 16) rewrite every row once per level.
AUTOMERGE = 16
CRISISMERGE = 64
_SETTINGS = {"automerge": AUTOMERGE, "crisismerge": CRISISMERGE}

_STATE = (
    "CREATE TABLE IF NOT EXISTS state (indexed_upto INTEGER NOT NULL, shard_ids INTEGER NOT NULL)"
)
_HEAD = "SELECT coalesce((SELECT seq FROM store.sqlite_sequence WHERE name = 'requests'), 0)"


def connect(path: Path, database: Path, *, busy_timeout: float = 5.0) -> SqliteConnection:
    """The indexer's connection: the index file (made if missing), the database attached
    read-only. Raises ``sqlite3.Error`` when either cannot be opened or the index not kept
    (no FTS5, or no trigram tokenizer)."""
    conn = sqlite3.connect(
        path.absolute().as_uri(),
        uri=True,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        factory=SqliteConnection,
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # Derived data: a crash may lose the last steps (the watermark goes with them), never
        # make the file inconsistent.
        conn.execute("PRAGMA synchronous=NORMAL")
        # A dropped shard's pages go on the free list without being overwritten first.
        conn.execute("PRAGMA secure_delete=FAST")
        conn.create_function("search_fold", 1, search_fold, deterministic=True)
        conn.execute("ATTACH DATABASE ? AS store", (database.absolute().as_uri() + "?mode=ro",))
        conn.execute(
            "CREATE VIRTUAL TABLE temp.probe USING fts5(x, content='', tokenize='trigram')"
        )
        conn.execute("DROP TABLE temp.probe")
        with own_transaction(conn):
            conn.execute(_STATE)
            conn.execute(
                "INSERT INTO state SELECT 0, ? WHERE NOT EXISTS (SELECT 1 FROM state)",
                (search.SHARD_IDS,),
            )
            if search.indexed_upto(conn, "main") > conn.execute(_HEAD).fetchone()[0]:
                log.warning("search index %s: made for another database: made again", path)
                drop_all(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def drop_all(conn: SqliteConnection) -> None:
    """Empty the index (the caller's transaction)."""
    for number in search.shards(conn):
        conn.execute(f"DROP TABLE {search.shard_table(number)}")
    conn.execute("UPDATE state SET indexed_upto = 0")


def _create_shard(conn: SqliteConnection, number: int) -> None:
    table = search.shard_table(number)
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone()
    if exists:
        return
    conn.execute(
        f"CREATE VIRTUAL TABLE {table} USING fts5({', '.join(search.COLUMNS)}, content='',"
        " tokenize='trigram case_sensitive 1', detail=none, columnsize=0)"
    )
    for name, value in _SETTINGS.items():
        conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES (?, ?)", (name, value))


def index_step(conn: SqliteConnection, limit: int = CHUNK) -> tuple[int, list[int]]:
    """Index up to ``limit`` requests past the watermark, oldest first, in one transaction;
    returns how many, and the shards this step filled to their last id."""
    with own_transaction(conn):
        upto = search.indexed_upto(conn, "main")
        per = search.shard_ids(conn, "main")
        last = conn.execute(
            "SELECT max(id) FROM (SELECT id FROM store.requests WHERE id > ? ORDER BY id LIMIT ?)",
            (upto, limit),
        ).fetchone()[0]
        if last is None:
            return 0, []
        count = 0
        filled = []
        columns = ", ".join(search.COLUMNS)
        for number in range((upto + 1) // per, last // per + 1):
            low, high = number * per, number * per + per - 1
            _create_shard(conn, number)
            table = search.shard_table(number)
            count += conn.execute(
                f"INSERT INTO {table} (rowid, {columns}) SELECT id, {columns}"
                " FROM store.search_text WHERE id > ? AND id <= ?",
                (max(upto, low - 1), min(last, high)),
            ).rowcount
            if upto < high <= last:
                filled.append(number)
        conn.execute("UPDATE state SET indexed_upto = ?", (last,))
    return count, filled


def dead_shards(conn: SqliteConnection) -> list[int]:
    """The shards none of whose indexed rows are left in the database."""
    upto = search.indexed_upto(conn, "main")
    per = search.shard_ids(conn, "main")
    dead = []
    for number in search.shards(conn):
        low = number * per
        alive = conn.execute(
            "SELECT 1 FROM store.requests WHERE id >= ? AND id <= ? LIMIT 1",
            (low, min(low + per - 1, upto)),
        ).fetchone()
        if alive is None:
            dead.append(number)
    return dead


def drop_dead(conn: SqliteConnection) -> int:
    """Drop the shards none of whose rows are left (retention went past them, or ``clear``);
    returns how many. Rows added later with ids in a dropped shard's range are past the
    watermark (ids only grow): they go into the shard made anew."""
    if not dead_shards(conn):  # read without the index's write lock: the usual answer
        return 0
    with own_transaction(conn):
        dead = dead_shards(conn)
        for number in dead:
            conn.execute(f"DROP TABLE {search.shard_table(number)}")
    return len(dead)


def optimize(conn: SqliteConnection, number: int) -> None:
    """Merge a shard that will get no more rows into one segment."""
    table = search.shard_table(number)
    with own_transaction(conn):
        if number in search.shards(conn):
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('optimize')")


def tidy(conn: SqliteConnection, pages: int = TIDY_PAGES) -> bool:
    """Merge some of the newest shard's segments (about ``pages`` pages' worth; a level is
    merged once it holds ``usermerge``, 4, of them). False when there was nothing to merge."""
    with own_transaction(conn):
        numbers = search.shards(conn)
        if not numbers:
            return False
        table = search.shard_table(numbers[0])
        before = conn.execute("SELECT total_changes()").fetchone()[0]
        conn.execute(f"INSERT INTO {table} ({table}, rank) VALUES ('merge', ?)", (pages,))
        after = conn.execute("SELECT total_changes()").fetchone()[0]
    return bool(after - before > 1)  # FTS5: 1 or less, nothing was merged


class Indexer:
    """The indexer thread of a server's store. ``nudge`` it after each commit; ``close`` it
    before the store."""

    def __init__(self, path: Path, database: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._conn = connect(path, database, busy_timeout=busy_timeout)
        self._wanted = threading.Event()
        self._gathered = threading.Event()
        self._waiting = 0  # rows added since the indexer last woke (the writer's count)
        self._stopping = threading.Event()
        # Whether the last step left rows, or segments to merge (read by tests).
        self.untidy = True
        self.steps = 0
        self._thread = threading.Thread(target=self._run, name="store-indexer", daemon=True)
        self._thread.start()

    def nudge(self, added: int = 0) -> None:
        """``added`` rows were committed (or rows deleted): index them (or drop the shards
        left empty), soon. Called by the writer only."""
        self._waiting += added
        if self._waiting >= GATHER_ROWS:
            self._gathered.set()
        self._wanted.set()

    def close(self) -> None:
        self._stopping.set()
        self._gathered.set()
        self._wanted.set()
        self._thread.join()
        self._conn.close()

    def _run(self) -> None:
        if sys.platform.startswith("linux"):  # this thread only (elsewhere: not at all)
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        wanted, stopping = self._wanted, self._stopping
        while not stopping.is_set():
            woken = wanted.wait(IDLE if self.untidy else None)
            if stopping.is_set():
                return
            try:
                if woken:
                    # The next batches' rows join this step's (one segment for them all).
                    self._gathered.wait(GATHER)
                    if stopping.is_set():
                        return
                    wanted.clear()
                    self._gathered.clear()
                    self._waiting = 0  # a count the writer adds to meanwhile may be lost:
                    # it only times the next step, which indexes every row waiting anyway
                    self._catch_up()
                    self.untidy = True
                else:
                    self.untidy = tidy(self._conn)
            except sqlite3.Error as exc:
                log.warning("search index %s: %s (searches scan; retrying)", self.path, exc)
                self.untidy = False
                stopping.wait(RETRY)
                wanted.set()
            self.steps += 1

    def _catch_up(self) -> None:
        conn, stopping = self._conn, self._stopping
        while not stopping.is_set():
            done, filled = index_step(conn)
            for number in filled:
                optimize(conn, number)
            if done < CHUNK:
                break
        drop_dead(conn)
