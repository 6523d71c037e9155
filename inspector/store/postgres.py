"""The shared backend: PostgreSQL, for several replicas on one store (psycopg 3).

Why psycopg 3: it has a synchronous ``Connection`` — so the writer thread's group commit, the
typed job functions and the CLI's synchronous use stay one code path for both engines — and
an ``AsyncConnection`` for ``LISTEN``; ``psycopg_pool`` keeps the readers' connections and
replaces broken ones. (asyncpg is async-only: it would need a second copy of every job.)

Three rules make replicas behave like one process:

* **Commit order is id order.** Every write transaction takes one advisory lock
  (``pg_advisory_xact_lock``, keyed by the schema) before it draws any id, so ids drawn from
  the ``requests`` sequence commit in id order across replicas. ``inspector_head()`` (the
  resume point of a stream) takes the same lock *shared* before reading the sequence, so it
  never names an id whose transaction has not committed. Together: "every request up to
  Last-Event-ID" stays exact with any number of writers.
* **Fan-out through the database.** A batch's notices go out with ``pg_notify`` inside its
  transaction: PostgreSQL delivers them at commit, in commit order, to every replica's
  ``LISTEN`` connection (``listen``), the writer's own included.
* **Failures are the store's, and pass.** A lost connection fails the batch (the captures in
  it answer 503), and the next batch reconnects; readers get fresh connections from the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.rows import RowMaker

from inspector.errors import SchemaTooNew
from inspector.store.backend import Began, Connection, Cursor, Dialect, Notice
from inspector.store.schema import POSTGRESQL
from inspector.store.trigrams import Sampler

log = logging.getLogger("inspector.store")

# The advisory lock every write batch takes, one per schema (replicas of one store share it).
WRITE_LOCK = "hashtextextended('webhook-inspector/' || current_schema(), 0)"
MIGRATE_LOCK = "hashtextextended('webhook-inspector/migrate/' || current_schema(), 0)"
# NOTIFY payloads must stay under 8000 bytes: notices are sent in chunks below that.
PAYLOAD_LIMIT = 7000
CONNECT_TIMEOUT = 3

DIALECT = Dialect(
    name="postgresql",
    shared=True,
    same="IS NOT DISTINCT FROM",
    greatest="greatest",
    skip_locked="FOR UPDATE SKIP LOCKED",
    head_sql="SELECT inspector_head()",
    writable_ctes=True,
)


class Row:
    """A row that answers to a column's name and to its position, like ``sqlite3.Row``."""

    __slots__ = ("_index", "_values")

    def __init__(self, index: dict[str, int], values: Sequence[Any]) -> None:
        self._index = index
        self._values = values

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)


def _rows(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        return Row(index, values)

    return make


@lru_cache(maxsize=512)
def _placeholders(text: str) -> str:
    # Our SQL has no ``?`` or ``%`` of its own outside placeholders (they are parameters).
    return text.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection as the jobs use it: ``?`` placeholders, rows by name or index."""

    dialect = DIALECT

    def __init__(self, raw: psycopg.Connection[Row], sampler: Sampler | None = None) -> None:
        self.raw = raw
        self.notices: list[Notice] = []
        # The store's trigram sample, shared by its connections (``trigrams.py``).
        self.sampler = sampler or Sampler()

    def execute(self, text: str, parameters: Sequence[Any] = (), /) -> Cursor:
        if parameters:
            return self.raw.execute(_placeholders(text), parameters)
        return self.raw.execute(text.encode())


def _options(url: str) -> dict[str, Any]:
    return {
        "conninfo": url,
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "webhook-inspector",
        # A server that vanishes without closing the socket is noticed within ~15 s.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }


def redact(url: str) -> str:
    """The URL without its password, for banners and messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    user = f"{info['user']}@" if info.get("user") else ""
    host = str(info.get("host") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{host}{port}/{info.get('dbname') or ''}"


class PostgresBackend:
    """A store in a PostgreSQL database (its ``search_path`` schema), shared by replicas."""

    dialect = DIALECT
    errors: tuple[type[Exception], ...] = (psycopg.Error, psycopg_pool.PoolTimeout)
    unavailable: tuple[type[Exception], ...] = (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        psycopg_pool.PoolTimeout,
    )

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "FULL",
        readers: int = 10,
        read_timeout: float = 5.0,
    ) -> None:
        self.url = url
        # SQLite's FULL is PostgreSQL's default; anything less (benchmarks, tests) lets a
        # commit return before its WAL is flushed, as synchronous=NORMAL does in SQLite.
        self.synchronous_commit = synchronous.upper() == "FULL"
        self.channel = ""  # "inspector/<schema>", known once connected
        self._readers_max = readers
        self._read_timeout = read_timeout
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Row]] | None = None
        self.sampler = Sampler()

    @property
    def description(self) -> str:
        return redact(self.url)

    def _connect_raw(self) -> psycopg.Connection[Row]:
        return psycopg.Connection.connect(row_factory=_rows, **_options(self.url))

    def connect(self) -> PgConnection:
        conn = PgConnection(self._connect_raw(), self.sampler)
        if not self.synchronous_commit:
            conn.execute("SET synchronous_commit = off")
        if not self.channel:
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
            self.channel = f"inspector/{schema}"
        return conn

    def migrate(self, conn: Connection) -> int:
        """Bring the schema up to date, one replica at a time; returns the version."""
        assert isinstance(conn, PgConnection)
        raw = conn.raw
        with raw.transaction():
            raw.execute(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})".encode())
            raw.execute(b"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = raw.execute(b"SELECT max(version) FROM schema_version").fetchone()
            version = int(row[0]) if row is not None and row[0] is not None else 0
            if version > len(POSTGRESQL):
                raise SchemaTooNew(version, len(POSTGRESQL), self.description)
            for number, script in enumerate(POSTGRESQL[version:], start=version + 1):
                raw.execute(script.encode())
                raw.execute(b"DELETE FROM schema_version")
                raw.execute(b"INSERT INTO schema_version VALUES (%s)", (number,))
                version = number
        return version

    def begin(self, conn: Connection) -> Began:
        """Start a write transaction, after every other replica's; returns the number of
        stored requests (kept in ``counters`` for retention across replicas) and the endpoint
        settings' version (read after the lock: no settings change commits until we do)."""
        # The lock before any id is drawn: batches of every replica commit one after the other.
        # One round trip: BEGIN, the lock, the count and the settings version.
        assert isinstance(conn, PgConnection)
        cursor = conn.raw.execute(
            f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK});"
            " SELECT value, (SELECT coalesce(max(version), 0) FROM endpoints)"
            " FROM counters WHERE name = 'requests'".encode()
        )
        while cursor.nextset():  # the last statement's result
            pass
        row = cursor.fetchone()
        assert row is not None
        return Began(rows=int(row[0]), settings_version=int(row[1]))

    def commit(self, conn: Connection, notices: Sequence[Notice], rows_delta: int) -> None:
        """Count the rows, send the notices (delivered at commit, in commit order) and commit,
        in one round trip (one simple query; values quoted by psycopg as literals)."""
        assert isinstance(conn, PgConnection)
        channel = sql.Literal(self.channel)
        count = sql.SQL("UPDATE counters SET value = value + {} WHERE name = 'requests'").format(
            sql.Literal(rows_delta)
        )
        statements: list[sql.Composable] = []
        for payload in payloads(notices):
            notify = sql.SQL("SELECT pg_notify({}, {})").format(channel, sql.Literal(payload))
            if rows_delta and not statements:
                # A data-modifying CTE runs even unreferenced: the count rides along.
                notify = sql.SQL("WITH counted AS ({}) {}").format(count, notify)
            statements.append(notify)
        if rows_delta and not statements:
            statements.append(count)
        statements.append(sql.SQL("COMMIT"))
        conn.raw.execute(sql.SQL("; ").join(statements))

    def rollback(self, conn: Connection) -> None:
        assert isinstance(conn, PgConnection)
        if conn.raw.closed or conn.raw.broken:
            return
        with contextlib.suppress(psycopg.Error):
            conn.raw.execute(b"ROLLBACK")

    def lost(self, conn: Connection, exc: BaseException) -> bool:
        """Is the connection gone (server stopped, network)? Then it must be replaced."""
        assert isinstance(conn, PgConnection)
        return (
            conn.raw.closed
            or conn.raw.broken
            or isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        )

    def close_connection(self, conn: Connection) -> None:
        assert isinstance(conn, PgConnection)
        with contextlib.suppress(psycopg.Error):
            conn.raw.close()

    # -- readers ----------------------------------------------------------------------------

    def _readers(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Row]]:
        if self._pool is None:
            options = _options(self.url)
            conninfo = options.pop("conninfo")
            self._pool = psycopg_pool.ConnectionPool(
                conninfo,
                connection_class=psycopg.Connection[Row],
                kwargs={**options, "row_factory": _rows},
                min_size=1,
                max_size=self._readers_max,
                timeout=self._read_timeout,
                name="inspector-readers",
                open=False,
            )
            self._pool.open()
        return self._pool

    @contextlib.contextmanager
    def reader(self) -> Iterator[Connection]:
        with self._readers().connection() as raw:
            yield PgConnection(raw, self.sampler)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # -- fan-out ----------------------------------------------------------------------------

    async def listen(
        self,
        handle: Callable[[list[Notice]], Awaitable[None]],
        *,
        connected: Callable[[bool], Awaitable[None]],
    ) -> None:
        """Run forever: ``LISTEN`` on the store's channel and ``handle`` each notification's
        notices, in commit order. Reconnects with backoff; ``connected(again)`` runs each
        time the channel is listened to, ``again`` true after a loss (notices may be
        missing: the caller catches up from the store)."""
        again = False
        backoff = 0.1
        while True:
            try:
                async for notices in self._notifications(connected, again):
                    backoff = 0.1
                    await handle(notices)
            except (psycopg.Error, OSError) as exc:
                log.warning("lost the store's notification channel (%s); reconnecting", exc)
            again = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _notifications(
        self, connected: Callable[[bool], Awaitable[None]], again: bool
    ) -> AsyncIterator[list[Notice]]:
        options = _options(self.url)
        async with await psycopg.AsyncConnection.connect(**options) as conn:
            if not self.channel:
                cur = await conn.execute(b"SELECT current_schema()")
                row = await cur.fetchone()
                assert row is not None
                self.channel = f"inspector/{row[0]}"
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            await connected(again)
            async for note in conn.notifies():
                yield [tuple(entry) for entry in json.loads(note.payload)]


def payloads(notices: Sequence[Notice]) -> Iterator[str]:
    """Notices as JSON arrays, each under ``PAYLOAD_LIMIT`` bytes."""
    chunk: list[str] = []
    size = 2
    for entry in notices:
        text = json.dumps(entry, separators=(",", ":"))
        if chunk and size + len(text) + 1 > PAYLOAD_LIMIT:
            yield "[" + ",".join(chunk) + "]"
            chunk, size = [], 2
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        yield "[" + ",".join(chunk) + "]"
