"""The search index: SQLite FTS5 with the trigram tokenizer over what a search looks at.

A search (``requests.list_requests`` with ``q``) is a substring match, ASCII case-insensitive,
over a request's path, query, headers (as stored: JSON), event key and type, and raw body.
The index holds the same text, lower-cased by SQLite's ``lower()`` (the ``search_text`` view,
schema migration 6), cut into every run of three characters; a term of three characters or
more is answered by the rows that hold the trigrams covering it (``match_expression``),
then confirmed by the very predicate the scan uses — so the index can only make a search
faster, never change its results. Shorter terms (and terms with a NUL) are scanned.

* **External content, no copy.** The index reads its text from ``search_text`` (requests and
  bodies) when it needs it; it stores only which rows hold each trigram (``detail=none``, no
  column sizes: ``columnsize=0``), a fraction of what a full-text index with positions costs.
* **Merged lazily.** Each chunk FTS5 writes is a segment, and segments are merged level by
  level. FTS5's defaults (a level merged at 4 segments) rewrite each row once per level, ~60%
  of the CPU indexing costs at 64 rows a chunk; here a level waits for 16 (``AUTOMERGE``), and
  a writer with nothing else to do merges the rest (``tidy``), so that searches read few
  segments. An index of an earlier shape is made again on open (``create``), and filled a
  chunk at a time like any backlog.
* **Written behind the captures.** ``index_new`` indexes the rows added since
  ``search_state.indexed_upto``. A server's writer does it in a transaction of its own
  (``catch_up``), between batches, once 64 rows wait or when it is idle — never in a
  capture's batch, whose answer and live event would wait for it (and FTS5 writes a segment
  per commit: one or two captures' worth at 1,000/s). Rows not indexed yet are scanned, so a
  capture is searchable, with the same results, as soon as it is committed. A CLI's write
  indexes in its own transaction (``index_batch``). Rows below the mark are deleted from the
  index before their rows go (``forget_through``, ``forget_ids``, ``forget_all``), since the
  index reads their text to remove it. A store upgraded with many rows, or closed with rows
  waiting, catches up a chunk at a time.
* **Optional.** SQLite builds without FTS5 or the trigram tokenizer (before 3.34), and
  ``serve --no-search-index``, search by scanning, as before.

PostgreSQL keeps its own: pg_trgm's GIN indexes on each request's folded text and on each
body as ``encode(body, 'escape')`` spells it (schema version 7), maintained by PostgreSQL in
the same transaction as the rows; ``requests._trigram`` reads candidates from them. Nothing
here writes on PostgreSQL (``exists`` is False there).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from inspector.store.backend import Connection
from inspector.store.sqlite import own_transaction

log = logging.getLogger("inspector.store")

TRIGRAM = 3

_CREATE = (
    "CREATE VIRTUAL TABLE search USING fts5(path, query, headers, event_key, event_type, body,"
    " content='search_text', content_rowid='id',"
    " tokenize='trigram case_sensitive 1', detail=none, columnsize=0)"
)
# How FTS5 merges the segments each chunk writes (see the module's docstring): a level is
# merged once it holds AUTOMERGE segments, all at once at CRISISMERGE. FTS5's defaults (4, 16)
# rewrite every row once per level, ~5 levels deep at 100,000 rows written 64 at a time.
AUTOMERGE = 16
CRISISMERGE = 64
_SETTINGS = {"automerge": AUTOMERGE, "crisismerge": CRISISMERGE}


def exists(conn: Connection) -> bool:
    """Whether this store has the (SQLite) index."""
    if conn.dialect.name != "sqlite":
        return False
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='search'")
    return row.fetchone() is not None


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


def create(conn: Connection) -> bool:
    """Create the index (empty: ``index_new`` fills it); False where SQLite cannot. An index
    of an earlier shape (with column sizes, FTS5's merge defaults) is made again: the writer
    fills it a chunk at a time, and searches scan what it does not cover yet."""
    if exists(conn):
        if _current(conn):
            return True
        log.info("search index: rebuilt in the current shape, a chunk at a time")
        drop(conn)
    try:
        conn.execute(_CREATE)
    except sqlite3.OperationalError:  # no fts5 module, or no trigram tokenizer (< 3.34)
        return False
    for name, value in _SETTINGS.items():
        conn.execute("INSERT INTO search (search, rank) VALUES (?, ?)", (name, value))
    conn.execute("UPDATE search_state SET indexed_upto = 0")
    return True


def _current(conn: Connection) -> bool:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search'").fetchone()[0]
    settings = dict(conn.execute("SELECT k, v FROM search_config").fetchall())
    return bool(sql == _CREATE and all(settings.get(k) == v for k, v in _SETTINGS.items()))


def drop(conn: Connection) -> None:
    """Remove the index (``--no-search-index``): an index not kept up to date would lie."""
    conn.execute("DROP TABLE IF EXISTS search")
    conn.execute("UPDATE search_state SET indexed_upto = 0")


def indexed_upto(conn: Connection) -> int:
    """Every request with an id up to this is in the index (0: none)."""
    row = conn.execute("SELECT indexed_upto FROM search_state").fetchone()
    return int(row[0]) if row is not None else 0


def index_new(conn: Connection, limit: int) -> int:
    """Index up to ``limit`` requests past ``indexed_upto``, oldest first; returns how many.

    One statement does the work (tokenizing runs inside SQLite, off the GIL)."""
    upto = indexed_upto(conn)
    last = conn.execute(
        "SELECT max(id) FROM (SELECT id FROM requests WHERE id > ? ORDER BY id LIMIT ?)",
        (upto, limit),
    ).fetchone()[0]
    if last is None:
        return 0
    count = conn.execute(
        "INSERT INTO search (rowid, path, query, headers, event_key, event_type, body)"
        " SELECT id, path, query, headers, event_key, event_type, body FROM search_text"
        " WHERE id > ? AND id <= ?",
        (upto, last),
    ).rowcount
    conn.execute("UPDATE search_state SET indexed_upto = ?", (last,))
    return count


def index_batch(conn: Connection, limit: int) -> bool:
    """Index a write's rows in its transaction (the CLI's writes), and more rows of a
    backlog, up to ``limit``. A failure here must not cost the captures: it is
    undone alone, and False says the rows wait for later."""
    conn.execute("SAVEPOINT search_index")
    try:
        index_new(conn, limit)
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO search_index")
        log.warning("search index: could not index this batch (later, then): %s", exc)
        conn.execute("RELEASE search_index")
        return False
    conn.execute("RELEASE search_index")
    return True


def catch_up(conn: Connection, limit: int) -> int:
    """Index up to ``limit`` rows not indexed yet, in a transaction of its own (a server's
    writer, between batches); returns how many (0: nothing left, or it failed)."""
    try:
        with own_transaction(conn):
            done = index_new(conn, limit)
    except sqlite3.Error as exc:
        log.warning("search index: could not index new rows: %s", exc)
        return 0
    return done


def tidy(conn: Connection, pages: int) -> bool:
    """Merge some of the index's segments (about ``pages`` pages' worth; a level is merged
    once it holds ``usermerge``, 4, of them), in a transaction of its own (a server's writer,
    when idle): fewer segments, faster searches. False when there was nothing to merge (or
    it failed)."""
    try:
        with own_transaction(conn):
            before = conn.execute("SELECT total_changes()").fetchone()[0]
            conn.execute("INSERT INTO search (search, rank) VALUES ('merge', ?)", (pages,))
            after = conn.execute("SELECT total_changes()").fetchone()[0]
            merged = bool(after - before > 1)  # FTS5: 1 or less, nothing was merged
    except sqlite3.Error as exc:
        log.warning("search index: could not merge its segments: %s", exc)
        return False
    return merged


def forget_through(conn: Connection, cutoff: int) -> None:
    """Take the requests with ids up to ``cutoff`` out of the index (before they are deleted)."""
    if cutoff > 0 and exists(conn):
        conn.execute(
            "DELETE FROM search WHERE rowid <= ? AND rowid <= "
            "(SELECT indexed_upto FROM search_state)",
            (cutoff,),
        )


def forget_ids(conn: Connection, ids_sql: str, params: Sequence[object]) -> None:
    """Take the requests that ``ids_sql`` selects out of the index (before they are deleted)."""
    if exists(conn):
        conn.execute(
            f"DELETE FROM search WHERE rowid IN ({ids_sql}) AND rowid <= "
            "(SELECT indexed_upto FROM search_state)",
            params,
        )


def forget_all(conn: Connection) -> None:
    if exists(conn):
        conn.execute("INSERT INTO search (search) VALUES ('delete-all')")
        conn.execute("UPDATE search_state SET indexed_upto = 0")


def usable(term: str) -> bool:
    """Whether the index can answer ``term`` (folded): three characters or more, no NUL."""
    return len(term) >= TRIGRAM and "\x00" not in term


def match_expression(terms: list[str]) -> str:
    """An FTS5 query for rows holding the trigrams of at least one of ``terms`` (folded;
    each ``usable``) that cover it: one every three characters, and the last. Without
    positions (``detail=none``) even every trigram is a superset that the caller confirms
    row by row; the cover's few more candidates cost less than reading the doclists of the
    trigrams left out, which in a million rows are often in most of them."""
    groups = []
    for term in dict.fromkeys(terms):
        starts = [*range(0, len(term) - TRIGRAM, TRIGRAM), len(term) - TRIGRAM]
        grams = dict.fromkeys(term[i : i + TRIGRAM] for i in starts)
        groups.append("(" + " AND ".join('"' + g.replace('"', '""') + '"' for g in grams) + ")")
    return " OR ".join(groups)
