"""The store's engine: the group-commit writer thread and per-thread readers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio.to_thread

from inspector.errors import StoreUnavailable
from inspector.store import replays, requests
from inspector.store.endpoints import settings_version
from inspector.store.schema import connect, migrate

log = logging.getLogger("inspector.store")

T = TypeVar("T")
P = ParamSpec("P")
# A job: ``fn(conn, *args)``. Typed with ``P`` at ``write``/``read`` so that mypy checks
# every call's arguments against the job's own signature, and its result.
Job = Callable[Concatenate[sqlite3.Connection, P], T]
# Runs after each batch's jobs, in its transaction: (connection, rows added; < 0 on deletes).
AfterBatch = Callable[[sqlite3.Connection, int], None]

MAX_BATCH = 512


@dataclass
class _Job(Generic[T]):
    run: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    # The endpoint-settings version the job was prepared with (captures); None: any.
    as_of: int | None = None


class StaleSettings(Exception):
    """A job prepared with endpoint settings older than the store's was not run: prepare it
    again with fresh settings (``Store.write_as_of``)."""


_Outcome = tuple[asyncio.Future[Any], object, BaseException | None]


class _CommitFailed(Exception):
    """BEGIN or COMMIT itself failed: the whole batch is lost, not one job."""


def _settle(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


@dataclass
class _Counter:
    """Rows in ``requests``, kept by the writer for retention; re-counted now and then."""

    rows: int = 0
    batches: int = 0


class Store:
    """The embedded store. ``open()`` it (creates and migrates), ``start()`` the writer for a
    server, ``close()`` at the end.

    ``after_batch`` hooks run in the writer inside each batch's transaction, after its jobs
    and the store's own upkeep (retention; the replays of requests that are gone).
    """

    def __init__(
        self,
        path: Path,
        *,
        retention: int | None = None,
        busy_timeout: float = 5.0,
        synchronous: str = "FULL",
        after_batch: Sequence[AfterBatch] = (),
    ) -> None:
        self.path = path
        self.retention = retention
        self.busy_timeout = busy_timeout
        self.synchronous = synchronous
        self.after_batch = tuple(after_batch)
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._counter = _Counter()
        self._closed = False
        # The writer's view of the endpoint-settings version, re-read only when another
        # connection (a CLI process) has committed since: see ``_settings_version``.
        self._settings_version = 0
        self._data_version: int | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> Store:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous)
        migrate(conn)
        self._write_conn = conn
        self._counter.rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        return self

    def start(self) -> None:
        """Start the writer thread (servers only; the CLI writes synchronously)."""
        assert self._write_conn is not None, "open() first"
        self._writer = threading.Thread(target=self._run_writer, name="store-writer", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Finish queued writes, stop the writer, close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
        if self._write_conn is not None:
            self._write_conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    # -- writes ----------------------------------------------------------------------------

    async def write(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args)`` in the writer's next batch; return once it is committed.

        Raises ``StoreUnavailable`` if the batch could not be committed (disk full, locked).
        """
        if self._writer is None:
            return await anyio.to_thread.run_sync(
                functools.partial(self.write_sync, fn, *args, **kwargs)
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def run(conn: sqlite3.Connection) -> T:
            return fn(conn, *args, **kwargs)

        self._queue.put(_Job(run, loop, future))
        return await future

    async def write_as_of(
        self, settings_version: int, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like ``write``, for a job prepared with the endpoint settings of ``settings_version``
        (a capture: its verdict and answer depend on them).

        Raises ``StaleSettings`` instead of running the job if, when its batch begins, the store
        holds newer settings — written by another process (the CLI) since the caller last read
        them. The check runs inside the batch's write transaction, so a change committed before
        a capture's batch is always seen: once a settings change has returned, the next capture
        obeys it. It costs one ``PRAGMA data_version`` per batch.
        """
        if self._writer is None:
            return await self.write(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def run(conn: sqlite3.Connection) -> T:
            return fn(conn, *args, **kwargs)

        self._queue.put(_Job(run, loop, future, as_of=settings_version))
        return await future

    def write_sync(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a write job in its own transaction in this thread (CLI; no writer running)."""
        conn = self._write_conn
        assert conn is not None, "open() first"
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn, *args, **kwargs)
                self._after_jobs(conn, self._rows_added(result))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store could not write: {exc}") from exc
        return result

    def _run_writer(self) -> None:
        conn = self._write_conn
        assert conn is not None
        stopping = False
        while not stopping:
            job = self._queue.get()
            if job is None:
                break
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        try:
            outcomes = self._commit_together(conn, batch)
        except _CommitFailed as exc:
            # BEGIN or COMMIT failed (locked, disk full, I/O): nothing of the batch is saved.
            log.error("store commit failed: %s", exc.__cause__)
            error = StoreUnavailable(f"the store could not commit: {exc.__cause__}")
            outcomes = [(job.future, None, error) for job in batch]
        except Exception:
            # A job failed: run each on its own so one bad job does not sink the others.
            outcomes = [self._commit_alone(conn, job) for job in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append(outcome)
        for loop, items in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)

    def _commit_together(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> list[_Outcome]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _CommitFailed from exc
        try:
            stale = self._stale_jobs(conn, batch)
            results = [None if i in stale else job.run(conn) for i, job in enumerate(batch)]
            self._after_jobs(conn, sum(self._rows_added(r) for r in results))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _CommitFailed from exc
        return [
            (job.future, None, StaleSettings()) if i in stale else (job.future, result, None)
            for i, (job, result) in enumerate(zip(batch, results, strict=True))
        ]

    def _stale_jobs(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> set[int]:
        """Indexes of the jobs prepared with settings older than the store's (in the batch's
        transaction, so no other writer can change them until it commits)."""
        versions = [job.as_of for job in batch]
        if all(v is None for v in versions):
            return set()
        current = self._current_settings_version(conn)
        return {i for i, v in enumerate(versions) if v is not None and v < current}

    def _current_settings_version(self, conn: sqlite3.Connection) -> int:
        # data_version changes only when *another* connection committed: our own settings
        # writes are picked up by the server's cache before they return, so a capture
        # prepared after them carries their version (never older than what we hold here).
        changed: int = conn.execute("PRAGMA data_version").fetchone()[0]
        if changed != self._data_version:
            self._data_version = changed
            self._settings_version = settings_version(conn)
        return self._settings_version

    def _commit_alone(self, conn: sqlite3.Connection, job: _Job[Any]) -> _Outcome:
        try:
            return self._commit_together(conn, [job])[0]
        except _CommitFailed as exc:
            return (
                job.future,
                None,
                StoreUnavailable(f"the store could not commit: {exc.__cause__}"),
            )
        except sqlite3.OperationalError as exc:  # e.g. disk full while inserting
            return (job.future, None, StoreUnavailable(f"the store could not write: {exc}"))
        except Exception as exc:
            return (job.future, None, exc)

    @staticmethod
    def _rows_added(result: object) -> int:
        return int(getattr(result, "rows_added", 0))

    def _after_jobs(self, conn: sqlite3.Connection, added: int) -> None:
        counter = self._counter
        counter.batches += 1
        if counter.batches % 256 == 0 or added < 0:
            counter.rows = conn.execute("SELECT count(*) FROM requests").fetchone()[0]
        else:
            counter.rows += added
        # Only a server enforces retention (its --retention); a CLI writing beside it must not
        # evict by some default of its own.
        excess = counter.rows - self.retention if self.retention is not None else 0
        if excess > 0:
            counter.rows -= requests.evict_oldest(conn, excess)
        # Replays go with their requests, however those went (retention, delete, clear).
        replays.prune(conn, added)
        for hook in self.after_batch:
            hook(conn, added)

    # -- reads -----------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, busy_timeout=self.busy_timeout, synchronous=self.synchronous)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def read_sync(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args)`` on this thread's read connection."""
        try:
            return fn(self._reader(), *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store could not read: {exc}") from exc

    async def read(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read job in a worker thread."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.read_sync, fn, *args, **kwargs)
        )
