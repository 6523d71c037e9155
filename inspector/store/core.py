"""The store's engine: the group-commit writer thread and the readers, over a backend
(``sqlite.SqliteBackend`` or ``postgres.PostgresBackend``).

On SQLite with ``synchronous=FULL`` the writer commits each batch without waiting for the
disk and a syncer (``syncer.py``) fsyncs the WAL, then answers the batch: durable, pipelined.
A committed batch is visible to readers before it is durable: the stream, which announces a
capture once readers can fetch it, uses that (``Store.write_as_of``'s ``visible``); the
sender's answer waits for the disk. SQLite's search index (``search.py``) is a file of its
own, written by the indexer thread (``indexer.py``), which the writer nudges after each batch;
PostgreSQL's trigram indexes are its own (``schema.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import anyio.to_thread

from inspector.errors import StoreUnavailable
from inspector.store import intake, replays, requests, search
from inspector.store.backend import Connection, Notice
from inspector.store.checkpointer import Checkpointer
from inspector.store.endpoints import settings_version
from inspector.store.indexer import Indexer
from inspector.store.postgres import PostgresBackend
from inspector.store.sqlite import SqliteBackend, own_transaction
from inspector.store.syncer import Committed, Outcome, Syncer, deliver

log = logging.getLogger("inspector.store")

T = TypeVar("T")
P = ParamSpec("P")
# A job: ``fn(conn, *args)``. Typed with ``P`` at ``write``/``read`` so that mypy checks
# every call's arguments against the job's own signature, and its result.
Job = Callable[Concatenate[Connection, P], T]
# Runs after each batch's jobs, in its transaction: (connection, rows added; < 0 on deletes).
AfterBatch = Callable[[Connection, int], None]
Backend = SqliteBackend | PostgresBackend

MAX_BATCH = 512
# Retention (SQLite server). A batch that takes the store past --retention evicts the excess
# in its transaction; besides, whenever its queue is empty the writer evicts the oldest ahead
# of need, EVICT_CHUNK rows per transaction of its own, until up to one row per AHEAD_PER of
# the retention (at most AHEAD_MAX) are free. Evicting cost more than capturing at 1,000,000
# stored while the search index lived in the database (taking a row out of it read and
# tokenized its text: 1.3 ms a row, p99 197 ms a batch, at load 8): done ahead, in chunks,
# captures rarely waited for it (at 300 captures/s with 1,000,000 stored, load 7: p99 capture
# latency 233 ms evicting vs 237 ms not, medians of 3 interleaved rounds; it was 500 vs
# 164 ms evicting in each batch). The index, now in a file of its own, drops whole shards
# instead (``indexer.py``). A retention under AHEAD_PER is kept exactly.
EVICT_CHUNK = 16
AHEAD_PER = 1000
AHEAD_MAX = 256


@dataclass(slots=True)
class _Job(Generic[T]):
    run: Callable[[Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    # The endpoint-settings version the job was prepared with (captures); None: any.
    as_of: int | None = None
    # Called on the job's loop with its result once committed (before it is durable).
    visible: Callable[[T], None] | None = None
    # A job with a batch form (``_GROUPED``): that form, and this job's arguments.
    group: Callable[[Connection, list[Any]], list[Any]] | None = None
    args: Any = None


# Jobs that have a form for several at once: consecutive jobs of one of these functions in a
# batch run as one call of its batch form (a batch's captures: multi-row INSERTs on SQLite,
# ``intake.insert_requests``). Same results, in the same order, as one by one.
_GROUPED: dict[Callable[..., Any], Callable[[Connection, list[Any]], list[Any]]] = {
    intake.insert_request: intake.insert_requests,
}


def _job(
    fn: Callable[..., T],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[T],
    as_of: int | None = None,
    visible: Callable[[T], None] | None = None,
) -> _Job[T]:
    def run(conn: Connection) -> T:
        return fn(conn, *args, **kwargs)

    group = None if kwargs else _GROUPED.get(fn)
    return _Job(run, loop, future, as_of, visible, group, args)


def _run_jobs(
    conn: Connection,
    runs: Sequence[Callable[[Connection], Any]],
    stale: set[int],
    groups: Sequence[tuple[Callable[[Connection, list[Any]], list[Any]] | None, Any]],
) -> list[Any]:
    """Each job's result, in order (``STALE`` for a stale one); runs of consecutive jobs of
    one batch form in one call of it."""
    if not groups:
        return [STALE if i in stale else run(conn) for i, run in enumerate(runs)]
    results: list[Any] = [STALE] * len(runs)
    i, count = 0, len(runs)
    while i < count:
        group = groups[i][0]
        if i in stale:
            i += 1
        elif group is None:
            results[i] = runs[i](conn)
            i += 1
        else:
            end = i + 1
            while end < count and groups[end][0] is group and end not in stale:
                end += 1
            results[i:end] = group(conn, [groups[k][1] for k in range(i, end)])
            i = end
    return results


class StaleSettings(Exception):
    """A job prepared with endpoint settings older than the store's was not run: prepare it
    again with fresh settings (``Store.write_as_of``)."""


# The result of a job that was not run: its settings were stale.
STALE = object()


def _outcome(job: _Job[Any], result: object) -> Outcome:
    if result is STALE:
        return (job.future, None, StaleSettings())
    return (job.future, result, None)


class _CommitFailed(Exception):
    """BEGIN or COMMIT itself failed, or the connection was lost: the whole batch is lost,
    not one job."""


def is_database_url(location: object) -> bool:
    return isinstance(location, str) and location.startswith(("postgresql://", "postgres://"))


def backend_for(
    location: Path | str, *, busy_timeout: float = 5.0, synchronous: str = "FULL"
) -> Backend:
    """A PostgreSQL URL, or the path of a SQLite file."""
    if is_database_url(location):
        return PostgresBackend(str(location), synchronous=synchronous)
    return SqliteBackend(Path(location), busy_timeout=busy_timeout, synchronous=synchronous)


def _announce(calls: list[tuple[Callable[[Any], None], object]]) -> None:
    for visible, result in calls:
        try:
            visible(result)
        except Exception:  # an announcement must never cost the write its answer
            log.exception("announcing a committed write failed")


@dataclass
class _Counter:
    """Rows in ``requests``, kept by the writer for retention; re-counted now and then."""

    rows: int = 0
    batches: int = 0


class Store:
    """The store. ``open()`` it (connects and migrates), ``start()`` the writer for a server,
    ``close()`` at the end. ``location`` is a SQLite file's path or a PostgreSQL URL.

    ``after_batch`` hooks run in the writer inside each batch's transaction, after its jobs
    and the store's own upkeep (retention; the replays of requests that are gone).
    """

    def __init__(
        self,
        location: Path | str,
        *,
        retention: int | None = None,
        busy_timeout: float = 5.0,
        synchronous: str = "FULL",
        after_batch: Sequence[AfterBatch] = (),
        search_index: bool = True,
    ) -> None:
        self.backend: Backend = backend_for(
            location, busy_timeout=busy_timeout, synchronous=synchronous
        )
        self.retention = retention
        self.search_index = search_index
        # The search index's file (SQLite, when kept), and its indexer (a server's).
        self.index_file: Path | None = None
        self.indexer: Indexer | None = None
        self._added = 0  # rows the writer added since it last nudged the indexer
        self._syncer: Syncer | None = None
        self._checkpointer: Checkpointer | None = None
        self.after_batch = tuple(after_batch)
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._write_conn: Connection | None = None
        self._sync_lock = threading.Lock()
        self._counter = _Counter()
        self._closed = False
        self._retry_at = 0.0
        self._backoff = 0.0
        # The writer's view of the endpoint-settings version, re-read only when another
        # connection (a CLI process) has committed since: see ``_settings_version``.
        self._settings_version = 0
        self._data_version: int | None = None

    @property
    def shared(self) -> bool:
        """True when several processes write this store (PostgreSQL replicas)."""
        return self.backend.dialect.shared

    @property
    def description(self) -> str:
        """Where the store is, for people (a path, or a URL without its password)."""
        return self.backend.description

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> Store:
        """Connect and migrate. Raises ``StoreUnavailable`` (``SchemaTooNew`` for a newer
        schema) when the store cannot be used, in one sentence."""
        try:
            conn = self.backend.connect()
        except self.backend.unavailable as exc:
            raise StoreUnavailable(f"Cannot open the store {self.description}: {exc}") from exc
        try:
            self.backend.migrate(conn)
            if isinstance(self.backend, SqliteBackend):
                self._open_search(conn, self.backend)
            self._counter.rows = requests.count_rows(conn)
        except self.backend.unavailable as exc:
            self._close_connection(conn)
            raise StoreUnavailable(f"Cannot open the store {self.description}: {exc}") from exc
        except BaseException:
            self._close_connection(conn)
            raise
        self._write_conn = conn
        return self

    def _open_search(self, conn: Connection, backend: SqliteBackend) -> None:
        """Drop the index of the earlier shape (in the database); with the index kept, have
        the read connections attach its file (``start`` makes it if missing)."""
        with own_transaction(conn):
            if search.drop_old(conn):
                log.info("search index: the in-database index dropped; made in its own file")
        if self.search_index:
            self.index_file = search.index_path(backend.path)
            backend.index_file = self.index_file

    def start(self) -> None:
        """Start the writer thread (servers only; the CLI writes synchronously), and on SQLite
        with ``synchronous=FULL`` the syncer that makes each batch durable before it is
        answered."""
        conn = self._write_conn
        assert conn is not None, "open() first"
        backend = self.backend
        if isinstance(backend, SqliteBackend) and backend.synchronous.upper() == "FULL":
            self._syncer = Syncer(Path(f"{backend.path}-wal"))
            conn.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints off the writer's commits: see checkpointer.py.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = Checkpointer(backend.connect)
        if isinstance(backend, SqliteBackend) and self.index_file is not None:
            try:
                self.indexer = Indexer(
                    self.index_file, backend.path, busy_timeout=backend.busy_timeout
                )
            except sqlite3.Error as exc:
                log.warning(
                    "search index %s: cannot keep it (searches scan): %s", self.index_file, exc
                )
                backend.index_file = None
            else:
                self.indexer.nudge()  # rows a CLI (or an earlier run) left: index them
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
        if self._syncer is not None:
            self._syncer.close()
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self.indexer is not None:
            self.indexer.close()
        if self._write_conn is not None:
            self._close_connection(self._write_conn)
            self._write_conn = None
        self.backend.close()

    def _close_connection(self, conn: Connection) -> None:
        self.backend.close_connection(conn)

    def _connection(self) -> Connection:
        """The writer's connection; a lost one is replaced, at most once per backoff step."""
        if self._write_conn is not None:
            return self._write_conn
        if time.monotonic() < self._retry_at:
            raise _CommitFailed from StoreUnavailable("reconnecting to the store")
        try:
            self._write_conn = self.backend.connect()
        except self.backend.errors as exc:
            self._backoff = min(max(self._backoff * 2, 0.1), 2.0)
            self._retry_at = time.monotonic() + self._backoff
            raise _CommitFailed from exc
        self._backoff = 0.0
        log.warning("store connection re-established")
        return self._write_conn

    def _lose(self, conn: Connection, exc: BaseException) -> bool:
        """Drop the writer's connection if ``exc`` says it is gone; True if it was."""
        if not self.backend.lost(conn, exc):
            return False
        log.error("lost the store connection: %s", exc)
        self._close_connection(conn)
        if self._write_conn is conn:
            self._write_conn = None
        return True

    # -- writes ----------------------------------------------------------------------------

    async def write(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args)`` in the writer's next batch; return once it is committed.

        Raises ``StoreUnavailable`` if the batch could not be committed (disk full, locked,
        the database unreachable).
        """
        if self._writer is None:
            return await anyio.to_thread.run_sync(
                functools.partial(self.write_sync, fn, *args, **kwargs)
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_job(fn, args, kwargs, loop, future))
        return await future

    async def write_as_of(
        self, settings_version: int, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like ``write``, for a job prepared with the endpoint settings of ``settings_version``
        (a capture: its verdict and answer depend on them).

        Raises ``StaleSettings`` instead of running the job if, when its batch begins, the store
        holds newer settings — written by another process (the CLI) since the caller last read
        them, or by another replica. The check runs inside the batch's write transaction (on
        PostgreSQL, after the write lock every replica's batches take), so a change committed
        before a capture's batch is always seen: once a settings change has returned, the next
        capture obeys it. It costs one ``PRAGMA data_version`` per batch on SQLite, and a
        subquery in the statement that begins the batch on PostgreSQL.
        """
        if self._writer is None:
            return await self.write(fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_job(fn, args, kwargs, loop, future, settings_version))
        return await future

    def write_announced(
        self,
        settings_version: int | None,
        visible: Callable[[T], None] | None,
        fn: Job[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Awaitable[T]:
        """``write_as_of`` (``settings_version`` None: any settings) that also calls
        ``visible(result)`` on this loop as soon as the batch is committed — readers see it —
        which may be before it is durable and the write's result is ready (a capture's live
        event). Call it on the event loop; it returns the job's future itself, not a coroutine
        awaiting it: one frame less for every capture to pass through, twice."""
        if self._writer is None:
            return self._write_announced_now(visible, fn, *args, **kwargs)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_job(fn, args, kwargs, loop, future, settings_version, visible))
        return future

    async def _write_announced_now(
        self,
        visible: Callable[[T], None] | None,
        fn: Job[P, T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        result = await self.write(fn, *args, **kwargs)
        if visible is not None:
            _announce([(visible, result)])
        return result

    def write_sync(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a write job in its own transaction in this thread (CLI; no writer running)."""
        with self._sync_lock:
            try:
                results = self._commit_together(
                    self._connection(), [lambda c: fn(c, *args, **kwargs)]
                )
            except _CommitFailed as exc:
                raise StoreUnavailable(f"the store could not write: {exc.__cause__}") from exc
            except self.backend.unavailable as exc:
                raise StoreUnavailable(f"the store could not write: {exc}") from exc
        result: T = results[0]
        return result

    def _run_writer(self) -> None:
        stopping = False
        while not stopping:
            if self._queue.empty() and self._evict_ahead():
                continue
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
            self._run_batch(batch)
            if self._checkpointer is not None:
                self._checkpointer.nudge()
                if self._checkpointer.full and isinstance(self._write_conn, sqlite3.Connection):
                    self._checkpointer.finish(self._write_conn)
            if self.indexer is not None:
                self.indexer.nudge(self._added)
                self._added = 0

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        try:
            results = self._commit_together(
                self._connection(),
                [job.run for job in batch],
                [job.as_of for job in batch],
                [(job.group, job.args) for job in batch],
            )
            outcomes = [_outcome(job, result) for job, result in zip(batch, results, strict=True)]
        except _CommitFailed as exc:
            # BEGIN or COMMIT failed (locked, disk full, I/O, connection lost): nothing of the
            # batch is saved.
            log.error("store commit failed: %s", exc.__cause__)
            error = StoreUnavailable(f"the store could not commit: {exc.__cause__}")
            outcomes = [(job.future, None, error) for job in batch]
        except Exception:
            # A job failed: run each on its own so one bad job does not sink the others.
            outcomes = [self._commit_alone(job) for job in batch]
        by_loop: Committed = {}
        visible: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[Any], None], object]]] = {}
        for job, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append(outcome)
            if job.visible is not None and outcome[2] is None:
                visible.setdefault(job.loop, []).append((job.visible, outcome[1]))
        for loop, calls in visible.items():
            with contextlib.suppress(RuntimeError):  # closed: nobody is waiting any more
                loop.call_soon_threadsafe(_announce, calls)
        if self._syncer is not None:
            self._syncer.hand(by_loop)
        else:
            deliver(by_loop)

    def _commit_together(
        self,
        conn: Connection,
        runs: Sequence[Callable[[Connection], Any]],
        as_of: Sequence[int | None] = (),
        groups: Sequence[tuple[Callable[[Connection, list[Any]], list[Any]] | None, Any]] = (),
    ) -> list[Any]:
        """Run ``runs`` in one transaction; a job prepared with settings older than the
        store's (``as_of``) is not run, and its result is ``STALE``. Consecutive jobs with
        the same batch form (``groups``: the form and each job's arguments) run together."""
        backend = self.backend
        conn.notices.clear()
        try:
            began = backend.begin(conn)
        except backend.errors as exc:
            self._lose(conn, exc)
            backend.rollback(conn)
            raise _CommitFailed from exc
        try:
            stale = self._stale_jobs(conn, as_of, began.settings_version)
            results = _run_jobs(conn, runs, stale, groups)
            delta = self._after_jobs(conn, sum(self._rows_added(r) for r in results), began.rows)
        except BaseException as exc:
            if self._lose(conn, exc):
                raise _CommitFailed from exc
            backend.rollback(conn)
            raise
        try:
            backend.commit(conn, conn.notices, delta)
        except backend.errors as exc:
            if not self._lose(conn, exc):
                backend.rollback(conn)
            raise _CommitFailed from exc
        finally:
            conn.notices.clear()
        return results

    def _stale_jobs(
        self, conn: Connection, as_of: Sequence[int | None], shared_version: int | None
    ) -> set[int]:
        """Indexes of the jobs prepared with settings older than the store's (in the batch's
        transaction, so no other writer can change them until it commits)."""
        if all(v is None for v in as_of):
            return set()
        current = shared_version
        if current is None:
            current = self._current_settings_version(conn)
        return {i for i, v in enumerate(as_of) if v is not None and v < current}

    def _current_settings_version(self, conn: Connection) -> int:
        # SQLite. data_version changes only when *another* connection committed: our own
        # settings writes are picked up by the server's cache before they return, so a capture
        # prepared after them carries their version (never older than what we hold here).
        changed: int = conn.execute("PRAGMA data_version").fetchone()[0]
        if changed != self._data_version:
            self._data_version = changed
            self._settings_version = settings_version(conn)
        return self._settings_version

    def _commit_alone(self, job: _Job[Any]) -> Outcome:
        try:
            results = self._commit_together(self._connection(), [job.run], [job.as_of])
            return _outcome(job, results[0])
        except _CommitFailed as exc:
            return (
                job.future,
                None,
                StoreUnavailable(f"the store could not commit: {exc.__cause__}"),
            )
        except self.backend.unavailable as exc:  # e.g. disk full while inserting
            return (job.future, None, StoreUnavailable(f"the store could not write: {exc}"))
        except Exception as exc:
            return (job.future, None, exc)

    @staticmethod
    def _rows_added(result: object) -> int:
        return int(getattr(result, "rows_added", 0))

    def _after_jobs(self, conn: Connection, added: int, shared_rows: int | None) -> int:
        """Retention and upkeep; returns the change in the number of stored requests."""
        counter = self._counter
        counter.batches += 1
        before = counter.rows
        if shared_rows is not None and added >= 0:
            # Other replicas add rows too: the count lives in the store (``counters``), read
            # when the batch began (batches are serialized) and written at its commit.
            counter.rows = shared_rows + added
            before = shared_rows
        elif counter.batches % 256 == 0 or added < 0:
            counter.rows = requests.count_rows(conn)
        else:
            counter.rows += added
        # Only a server enforces retention (its --retention); a CLI writing beside it must not
        # evict by some default of its own.
        excess = counter.rows - self.retention if self.retention is not None else 0
        evicted = requests.evict_oldest(conn, excess) if excess > 0 else 0
        counter.rows -= evicted
        if added < 0 or evicted:
            # Replays go with their requests, however those went (retention, delete, clear).
            replays.prune(conn, added)
        self._added += max(0, added)
        for hook in self.after_batch:
            hook(conn, added)
        return counter.rows - before

    def _evict_ahead(self) -> bool:
        """Evict up to ``EVICT_CHUNK`` of the oldest requests ahead of need, in a transaction
        of its own (the writer, with nothing queued); False when none are due."""
        retention = self.retention
        if retention is None or self.shared:
            return False
        floor = retention - min(AHEAD_MAX, retention // AHEAD_PER)
        # A whole chunk at a time: a transaction per capture would cost one per capture.
        due = EVICT_CHUNK if self._counter.rows - floor >= EVICT_CHUNK else 0
        conn = self._write_conn
        if not due or floor == retention or not isinstance(conn, sqlite3.Connection):
            return False
        try:
            with own_transaction(conn):
                evicted = requests.evict_oldest(conn, due)
                replays.prune(conn, 0)
        except sqlite3.Error as exc:
            log.warning("evicting ahead failed (batches evict what they must): %s", exc)
            self._counter.rows = floor  # tried; no retry until captures add rows
            return False
        self._counter.rows -= evicted
        return evicted > 0

    # -- reads -----------------------------------------------------------------------------

    def read_sync(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, *args)`` on a read connection (this thread's, or the pool's)."""
        try:
            with self.backend.reader() as conn:
                return fn(conn, *args, **kwargs)
        except self.backend.unavailable as exc:
            raise StoreUnavailable(f"the store could not read: {exc}") from exc

    async def read(self, fn: Job[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a read job in a worker thread."""
        return await anyio.to_thread.run_sync(
            functools.partial(self.read_sync, fn, *args, **kwargs)
        )

    # -- fan-out ---------------------------------------------------------------------------

    async def listen(
        self,
        handle: Callable[[list[Notice]], Awaitable[None]],
        *,
        connected: Callable[[bool], Awaitable[None]],
    ) -> None:
        """Shared stores only: hand every batch's notices, in commit order, to ``handle``
        (forever; reconnects by itself). See ``PostgresBackend.listen``."""
        assert isinstance(self.backend, PostgresBackend), "only a shared store notifies"
        await self.backend.listen(handle, connected=connected)
