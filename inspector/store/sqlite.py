"""The embedded backend: one SQLite file (WAL), one writer, a read connection per thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from inspector.errors import SchemaTooNew
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


class SqliteConnection(sqlite3.Connection):
    """``sqlite3.Connection`` with what the jobs expect of any connection."""

    dialect = DIALECT

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.notices: list[Notice] = []


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
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

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
        conn: SqliteConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        yield conn

    def close(self) -> None:
        with self._lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
