"""The search index: SQLite FTS5 with the trigram tokenizer, in a file of its own, in shards.

A search (``listing.list_requests`` with ``q``) is a substring match, ASCII case-insensitive,
over a request's path, query, headers (as stored: JSON), event key and type, and raw body.
The index holds the same text, lower-cased by SQLite's ``lower()`` (the ``search_text`` view,
schema migration 7), cut into every run of three characters; a term of three characters or
more is answered by the rows that hold its rarest trigrams (``match_expression`` with
``trigrams.fts_choose``; without a sample of the store, the trigrams covering it),
then confirmed by the very predicate the scan uses — so the index can only make a search
faster, never change its results. Shorter terms (and terms with a NUL) are scanned.

* **A file of its own** beside the database (``inspector.db`` -> ``inspector.search.db``,
  ``index_path``), written by the indexer (``indexer.py``: a thread with its own connection,
  the database attached read-only). The capture writer never waits for it: it never holds
  the database's write lock, and FTS5's tokenizing runs in SQLite, off the GIL, on the
  other core. Readers attach the file read-only (``ATTACHED`` as ``search_index``).
* **Contentless, in shards by id range.** Each shard is an FTS5 table (``content=''``:
  no copy of the text; ``detail=none``, ``columnsize=0``: only which rows hold each trigram)
  over ``SHARD_IDS`` consecutive ids: ``shard_<id // SHARD_IDS>``. Nothing is ever deleted
  from a shard: a shard none of whose indexed rows are left (retention went past it, or
  ``clear``) is dropped whole, which costs nothing like FTS5's per-row deletes (0.57 ms a
  row, eviction's largest cost). A row deleted alone stays in its shard until the shard goes;
  since every candidate is confirmed against the database, a row that is gone is not found.
* **The watermark** (``state.indexed_upto``, in the index file, written in the transaction
  that indexes the rows it covers): every request with an id up to it is in the index, if it
  still exists. Ids are never reused (``requests`` is AUTOINCREMENT: ``sqlite_sequence``
  keeps the largest id ever issued, through deletes and ``clear``), so rows past the mark are
  exactly those not indexed yet: searches scan them, and a capture is searchable, with the
  same results, as soon as it is committed. An index whose mark is past the database's
  largest id belongs to another database (the file was replaced): the indexer starts over.
* **Optional.** SQLite builds without FTS5 or the trigram tokenizer (before 3.34), an index
  file that cannot be opened or read (a log line says so), and ``serve --no-search-index``
  search by scanning, as before.

Stores of an earlier shape kept an external-content index (table ``search``) in the
database itself, written by the capture writer: it is dropped on open (``drop_old``).

PostgreSQL keeps its own: pg_trgm's GIN indexes on each request's folded text and on each
body as ``encode(body, 'escape')`` spells it (schema version 7), maintained by PostgreSQL in
the same transaction as the rows; ``listing._trigram`` reads candidates from them.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from inspector.store.backend import Connection

log = logging.getLogger("inspector.store")

TRIGRAM = 3
# Ids per shard: 16 shards at 1,000,000 stored; retention frees the index a shard at a
# time, so the index holds up to one shard of rows that are gone.
SHARD_IDS = 65536
# The schema name under which readers (and nothing else) attach the index file.
ATTACHED = "search_index"
COLUMNS = ("path", "query", "headers", "event_key", "event_type", "body")

_SHARD_NAME = re.compile(r"shard_(\d+)\Z")


def index_path(database: Path) -> Path:
    """Where the index of the database at ``database`` lives (``x.db`` -> ``x.search.db``)."""
    return database.with_name(f"{database.stem}.search{database.suffix or '.db'}")


def exists(conn: Connection) -> bool:
    """Whether this connection reads the (SQLite) index: a reader with the file attached."""
    return bool(getattr(conn, "index_attached", False))


def trigram_indexes(conn: Connection) -> bool:
    """PostgreSQL: whether this store has the pg_trgm indexes (schema version 7 makes them
    where the extension is installed)."""
    if conn.dialect.name != "postgresql":
        return False
    row = conn.execute(
        "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema()"
        " AND indexname = 'bodies_search'"
    ).fetchone()
    return row is not None


def escaped(data: bytes) -> str:
    """``data`` as PostgreSQL's ``encode(data, 'escape')`` spells it (NUL and bytes over 127
    as ``\\nnn``, a backslash doubled): how the body index holds a body."""
    return "".join(
        f"\\{b:03o}" if b == 0 or b > 127 else "\\\\" if b == 92 else chr(b) for b in data
    )


def drop_old(conn: Connection) -> bool:
    """Drop the index of the earlier shape (in the database; the caller's transaction);
    True if there was one. At 1,000,000 rows (280 MB of index) with SQLite's
    ``secure_delete`` on (Debian's default), which overwrites every freed page, it took
    10.8 s; with ``fast`` (freed pages overwritten only where that costs no more writes),
    0.47 s."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'search'"
    ).fetchone()
    if row is None:
        return False
    secure = conn.execute("PRAGMA secure_delete").fetchone()[0]
    conn.execute("PRAGMA secure_delete = FAST")
    try:
        conn.execute("DROP TABLE search")
    finally:
        conn.execute(f"PRAGMA secure_delete = {'FAST' if secure == 2 else int(secure)}")
    conn.execute("UPDATE search_state SET indexed_upto = 0")
    return True


def shard_of(request_id: int, shard_ids: int) -> int:
    return request_id // shard_ids


def shard_table(number: int) -> str:
    return f"shard_{number}"


def shards(conn: Connection, schema: str = "main") -> list[int]:
    """The numbers of the shards in the index file (as ``schema`` on ``conn``), newest first."""
    rows = conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type = 'table' AND name GLOB 'shard_*'"
    ).fetchall()
    found = (_SHARD_NAME.match(r[0]) for r in rows)
    return sorted((int(m.group(1)) for m in found if m is not None), reverse=True)


def indexed_upto(conn: Connection, schema: str = ATTACHED) -> int:
    """Every request with an id up to this is in the index, if it still exists (0: none)."""
    row = conn.execute(f"SELECT indexed_upto FROM {schema}.state").fetchone()
    return int(row[0]) if row is not None else 0


def shard_ids(conn: Connection, schema: str = ATTACHED) -> int:
    """The ids per shard this index file was made with."""
    return int(conn.execute(f"SELECT shard_ids FROM {schema}.state").fetchone()[0])


def usable(term: str) -> bool:
    """Whether the index can answer ``term`` (folded): three characters or more, no NUL."""
    return len(term) >= TRIGRAM and "\x00" not in term


def match_expression(
    terms: list[str], pick: Callable[[str], list[str] | None] | None = None
) -> str:
    """An FTS5 query for rows holding some of the trigrams of at least one of ``terms``
    (folded; each ``usable``): those ``pick`` chooses (``trigrams.fts_choose``: the rarest,
    by a sample of the store), or else the ones that cover it: one every three characters,
    and the last. Without positions (``detail=none``) even every trigram is a superset that
    the caller confirms row by row; a few more candidates cost less than reading the doclists
    of trigrams that, in a million rows, are in most of them (``msg``, ``000``)."""
    groups = []
    for term in dict.fromkeys(terms):
        chosen = pick(term) if pick is not None else None
        if not chosen:
            starts = [*range(0, len(term) - TRIGRAM, TRIGRAM), len(term) - TRIGRAM]
            chosen = [term[i : i + TRIGRAM] for i in starts]
        grams = dict.fromkeys(chosen)
        groups.append("(" + " AND ".join('"' + g.replace('"', '""') + '"' for g in grams) + ")")
    return " OR ".join(groups)


def attach(conn: Connection, path: Path) -> bool:
    """Attach the index file to a read connection (``ATTACHED``); False, with a log line,
    when it cannot be (the connection then scans). Never creates it: ATTACH would."""
    if not path.is_file():
        return False
    try:
        conn.execute(f"ATTACH DATABASE ? AS {ATTACHED}", (str(path),))
        indexed_upto(conn)
    except sqlite3.Error as exc:
        log.warning("search index %s: cannot read it (searches scan): %s", path, exc)
        if any(r[1] == ATTACHED for r in conn.execute("PRAGMA database_list")):
            conn.execute(f"DETACH DATABASE {ATTACHED}")
        return False
    return True
