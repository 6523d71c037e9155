"""The embedded backend: one SQLite file (WAL), one writer, a few read connections."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from inspector.errors import SchemaTooNew
from inspector.store import search, trigrams
from inspector.store.backend import Began, Connection, Dialect, Notice
from inspector.store.schema import SQLITE, search_fold, statements

DIALECT = Dialect(
    name="sqlite",
    shared=False,
    same="IS",
    greatest="max",
    skip_locked="",
    head_sql="SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0)",
)

# Read connections kept open between reads (each keeps its own page cache, up to 2 MiB).
# Reads run in anyio's worker threads, which end after 10 s idle and are replaced by new ones:
# a connection per thread, kept until the store closed, grew with every burst of reads. Now
# a read takes an idle connection (or opens one) and gives it back; beyond this many waiting,
# it is closed. Bursts of concurrent reads still open as many as they need.
KEEP_READERS = 8


@contextlib.contextmanager
def own_transaction(conn: Connection) -> Iterator[None]:
    """A write transaction of its own (the writer's upkeep between batches, evicting ahead;
    each of the indexer's steps): committed at the end, rolled back on any error, which goes
    on."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


class SqliteConnection(sqlite3.Connection):
    """``sqlite3.Connection`` with what the jobs expect of any connection."""

    dialect = DIALECT

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.notices: list[Notice] = []
        # A reader with the search index's file attached (``search.exists``).
        self.index_attached = False
        # The store's sample of its trigrams (``trigrams.fts_choose``), shared by its readers.
        self.fts_sampler: trigrams.Sampler | None = None


class SqliteBackend:
    """A store in one SQLite file. Writes are serialized by ``BEGIN IMMEDIATE``; WAL lets
    readers (per-thread connections) and CLI processes share the file."""

    dialect = DIALECT
    # Failures of BEGIN/COMMIT; and the failures that mean "the store is unavailable" (503).
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)
    unavailable: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path, *, busy_timeout: float = 5.0, synchronous: str = "FULL"):
        self.path = path
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self._idle: list[SqliteConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        # The search index's file, which read connections attach once it exists (``Store``
        # sets it); a file that could not be read is not tried again.
        self.index_file: Path | None = None
        self._index_unreadable = False
        self.fts_sampler = trigrams.Sampler()

    @property
    def description(self) -> str:
        return str(self.path)

    def connect(self) -> SqliteConnection:
        """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves) with WAL."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path),
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=SqliteConnection,
        )
        conn.row_factory = sqlite3.Row
        conn.fts_sampler = self.fts_sampler
        conn.create_function("search_fold", 1, search_fold, deterministic=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return conn

    def migrate(self, conn: Connection) -> int:
        """Bring the schema up to date (``PRAGMA user_version``); returns the version."""
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(SQLITE):
            raise SchemaTooNew(version, len(SQLITE), self.description)
        for number, script in enumerate(SQLITE[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            version = number
        return version

    def begin(self, conn: Connection) -> Began:
        """Start a write transaction. (A shared store returns its row count here.)"""
        conn.execute("BEGIN IMMEDIATE")
        return Began()

    def commit(self, conn: Connection, notices: Sequence[Notice], rows_delta: int) -> None:
        # Nobody else writes this file while we serve it: live events are published by this
        # process after the commit, so notices have nowhere to go; the writer counts the rows.
        conn.execute("COMMIT")

    def rollback(self, conn: Connection) -> None:
        assert isinstance(conn, sqlite3.Connection)
        if conn.in_transaction:
            conn.execute("ROLLBACK")

    def close_connection(self, conn: Connection) -> None:
        assert isinstance(conn, sqlite3.Connection)
        conn.close()

    def lost(self, conn: Connection, exc: BaseException) -> bool:
        """A file does not go away the way a server does: never reconnect."""
        return False

    @contextlib.contextmanager
    def reader(self) -> Iterator[Connection]:
        """A read connection for one job: an idle one (the most recently used, its cache
        warm), or a new one; given back after (``KEEP_READERS``)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.connect()
        if self.index_file is not None and not conn.index_attached:
            self._attach_index(conn, self.index_file)
        try:
            yield conn
        finally:
            if conn.in_transaction:  # a job that began one must not leave it to the next
                conn.rollback()
            with self._lock:
                kept = not self._closed and len(self._idle) < KEEP_READERS
                if kept:
                    self._idle.append(conn)
            if not kept:
                conn.close()

    def _attach_index(self, conn: SqliteConnection, path: Path) -> None:
        if self._index_unreadable or not path.is_file():  # not made yet: the indexer makes it
            return
        conn.index_attached = search.attach(conn, path)
        self._index_unreadable = not conn.index_attached

    def close(self) -> None:
        """Close the idle read connections; those in use close when their job ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
