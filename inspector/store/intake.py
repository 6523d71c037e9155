"""A capture's way into the store: its row, its body and its event's attempt count, one
capture at a time (PostgreSQL: two statements) or a batch's captures in multi-row statements
(SQLite); and how a capture still in progress (a stall) ends.

Write jobs, run inside the writer's batch transaction (they must not commit). The store runs
a batch's consecutive ``insert_request`` jobs as one ``insert_requests`` (``core._GROUPED``).
What a capture becomes once inserted is ``requests``' shape (``Inserted.item``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from inspector.capture import OK_HEADERS, CapturedRequest, ResponseRecord
from inspector.store.backend import Connection, notice
from inspector.store.multirow import MultiRowInsert
from inspector.store.requests import (
    ITEM_COLUMNS,
    Changed,
    HeaderPairs,
    RequestItem,
    SqlValue,
    item,
)

_INSERT_COLUMNS = (
    "endpoint", "method", "path", "query", "headers", "client", "received_at", "received_ts",
    "size", "content_type", "truncated", "note", "event_key", "event_type", "attempt",
    "first_attempt_id", "signature", "sig_status", "response_status", "response_headers",
    "response_body", "response_ms", "delay_ms", "dropped", "in_progress", "tls_version",
    "tls_server_name",
)  # fmt: skip
_INSERT = (
    f"INSERT INTO requests ({', '.join(_INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_INSERT_COLUMNS))})"
)
_encode = msgspec.json.Encoder().encode


def encode_headers(headers: HeaderPairs) -> str:
    """Header pairs as stored: a JSON array of ``[name, value]`` pairs, in order, UTF-8.

    msgspec, at a sixth of ``json.dumps``'s cost per capture. Rows stored before kept
    ``json.dumps``'s ASCII escapes (``caf\\u00e9``); both read back the same.
    """
    try:
        return _encode(headers).decode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (from a rule's text): JSON's escape keeps it
        return json.dumps(headers)


_OK_JSON = encode_headers(OK_HEADERS)


# Counts the attempt: a new event is attempt 1 (first_id 0 until the request has its id);
# else one more than the last, on every replica alike (one atomic statement).
_COUNT_ATTEMPT = (
    "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id) VALUES (?, ?, 1, 0, 0)"
    " ON CONFLICT (endpoint, event_key) DO UPDATE SET attempts = events.attempts + 1"
    " RETURNING attempts, first_id"
)

# SQLite: the writer's transaction is the only one, so the ids of a batch's captures are known
# before they are inserted: AUTOINCREMENT's, one past the largest id ever issued, and on. The
# event's counter takes its newest (and, for a new event, first) id in the statement that
# counts the attempt (one write to ``events`` per capture, not two: each rewrote both indexes
# on ``last_id``), and the batch's attempts, rows and bodies go in as multi-row statements
# (``multirow.py``, NULLs as literals): SQLite's cost per statement, and Python's, is paid per
# chunk rather than per capture (bench/hotpath.py).
_NEXT_ID = (
    "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'requests'), 0),"
    " coalesce((SELECT max(id) FROM requests), 0)) + 1"
)
_ROWS = MultiRowInsert(f"INSERT INTO requests (id, {', '.join(_INSERT_COLUMNS)}) VALUES")
_BODIES = MultiRowInsert("INSERT INTO bodies (request_id, body) VALUES")
# The batch's attempts, counted in order in as few statements: each row's RETURNING has the
# counter as that row left it (a key twice in a batch counts twice), and its last_id (the
# capture's own id) says whose it is, whatever order SQLite returns them in.
_COUNT_ATTEMPTS = MultiRowInsert(
    "INSERT INTO events (endpoint, event_key, attempts, first_id, last_id) VALUES",
    " ON CONFLICT (endpoint, event_key) DO UPDATE SET attempts = events.attempts + 1,"
    " first_id = CASE WHEN events.first_id = 0 THEN excluded.first_id ELSE events.first_id END,"
    " last_id = excluded.last_id"
    " RETURNING attempts, first_id, last_id",
)


@dataclass(slots=True)
class Inserted:
    """What the writer hands back for a capture: its id, attempt and the response chosen."""

    id: int
    attempt: int
    first_attempt_id: int
    response: ResponseRecord
    values: tuple[SqlValue, ...] = field(repr=False)  # as inserted, in _INSERT's order
    rows_added: int = 1

    def item(self) -> RequestItem:
        """The list item, made only when someone listens (the stream)."""
        columns: dict[str, SqlValue] = dict(zip(_INSERT_COLUMNS, self.values, strict=True))
        columns["id"] = self.id
        columns["client_gave_up_after_ms"] = None
        return item(columns)


# -- capture writes --------------------------------------------------------------------------


# The answer to a capture, for its attempt number (see ``insert_request``).
Decide = Callable[[int], ResponseRecord]


def insert_request(conn: Connection, rec: CapturedRequest, decide: Decide) -> Inserted:
    """Store one captured request; count its attempt; record the response ``decide`` picks.

    ``decide(attempt)`` runs here, inside the transaction, because failure modes such as
    ``fail=2`` depend on the attempt number, which only the writer knows for certain.
    """
    if not conn.dialect.writable_ctes:
        return insert_requests(conn, [(rec, decide)])[0]
    attempt, first_id = 1, None
    if rec.event_key is not None:
        counted = conn.execute(_COUNT_ATTEMPT, (rec.endpoint, rec.event_key)).fetchall()[0]
        attempt, first_id = counted[0], counted[1] or None
    response = decide(attempt)
    values = _values(rec, response, attempt, first_id)
    new_id = _insert_together(conn, rec, values)
    notice(conn, "request", new_id)
    return Inserted(new_id, attempt, first_id or new_id, response, values)


def insert_requests(
    conn: Connection, captures: Sequence[tuple[CapturedRequest, Decide]]
) -> list[Inserted]:
    """``insert_request`` for several captures, in order (the writer's batch): the same rows,
    ids and answers as one by one; on SQLite in multi-row statements."""
    if conn.dialect.writable_ctes:
        return [insert_request(conn, rec, decide) for rec, decide in captures]
    next_id: int = conn.execute(_NEXT_ID).fetchone()[0]
    ids = range(next_id, next_id + len(captures))
    keyed = [
        (rec.endpoint, rec.event_key, 1, new_id, new_id)
        for new_id, (rec, _) in zip(ids, captures, strict=True)
        if rec.event_key is not None
    ]
    # Each keyed capture's (attempt, the event's first id), by its id.
    counted = {row[2]: (row[0], row[1]) for row in _COUNT_ATTEMPTS.run(conn, keyed)}
    inserted: list[Inserted] = []
    rows: list[tuple[SqlValue, ...]] = []
    bodies: list[tuple[SqlValue, ...]] = []
    for new_id, (rec, decide) in zip(ids, captures, strict=True):
        attempt, first_id = counted.get(new_id, (1, None))
        if first_id == new_id:  # this is the event's first attempt
            first_id = None
        response = decide(attempt)
        values = _values(rec, response, attempt, first_id)
        rows.append((new_id, *values))
        if rec.body:
            bodies.append((new_id, rec.body))
        # No notice: a SQLite store has no other process to tell (``SqliteBackend.commit``).
        inserted.append(Inserted(new_id, attempt, first_id or new_id, response, values))
    _ROWS.run(conn, rows)
    _BODIES.run(conn, bodies)
    return inserted


def _values(
    rec: CapturedRequest, response: ResponseRecord, attempt: int, first_id: int | None
) -> tuple[SqlValue, ...]:
    """A capture's row, in ``_INSERT_COLUMNS``' order."""
    signature = rec.signature
    return (
        rec.endpoint,
        rec.method,
        rec.path,
        rec.query,
        encode_headers(rec.headers),
        rec.client,
        rec.received_at,
        rec.received_ts,
        rec.size,
        rec.content_type,
        int(rec.truncated),
        rec.note,
        rec.event_key,
        rec.event_type,
        attempt,
        first_id,
        json.dumps(signature) if signature is not None else None,
        signature["status"] if signature else None,
        response.status,
        _OK_JSON if response.headers is OK_HEADERS else encode_headers(response.headers),
        response.body,
        response.ms,
        response.delay_ms,
        int(response.dropped),
        int(response.in_progress),
        rec.tls_version,
        rec.tls_server_name,
    )


def _insert_together(conn: Connection, rec: CapturedRequest, values: tuple[SqlValue, ...]) -> int:
    """The request, its body and its event's newest id in one statement (data-modifying
    CTEs): on PostgreSQL each statement is a round trip made under the write lock, which
    every replica's batches wait for."""
    parts = [f"WITH r AS ({_INSERT} RETURNING id)"]
    params: list[SqlValue] = list(values)
    if rec.body:
        parts.append(", b AS (INSERT INTO bodies (request_id, body) SELECT id, ? FROM r)")
        params.append(rec.body)
    if rec.event_key is not None:
        parts.append(
            ", e AS (UPDATE events SET last_id = r.id,"
            " first_id = CASE WHEN first_id = 0 THEN r.id ELSE first_id END"
            " FROM r WHERE endpoint = ? AND event_key = ?)"
        )
        params += [rec.endpoint, rec.event_key]
    rows = conn.execute(" ".join(parts) + " SELECT id FROM r", params).fetchall()
    return int(rows[0][0])


def finish_request(
    conn: Connection,
    request_id: int,
    response: ResponseRecord,
    client_gave_up_after_ms: float | None,
) -> RequestItem | None:
    """Record how a request that was in progress (a stall) ended; returns its new item."""
    conn.execute(
        "UPDATE requests SET response_status=?, response_headers=?, response_body=?,"
        " response_ms=?, delay_ms=?, dropped=?, client_gave_up_after_ms=?, in_progress=0"
        " WHERE id=?",
        (
            response.status,
            json.dumps(response.headers),
            response.body,
            response.ms,
            response.delay_ms,
            int(response.dropped),
            client_gave_up_after_ms,
            request_id,
        ),
    )
    row = conn.execute(f"SELECT {ITEM_COLUMNS} FROM requests WHERE id=?", (request_id,)).fetchone()
    if row is None:
        return None
    notice(conn, "update", request_id)
    return item(row)


def end_interrupted(conn: Connection, before_ts: float | None = None) -> Changed:
    """Requests left in progress by a stop during a stall: mark them, they will not finish.

    ``before_ts``: only those received before it (on a shared store, younger stalls may be
    another replica's, still running)."""
    sql = (
        "UPDATE requests SET in_progress=0, note=coalesce(note || ' ', '') ||"
        " 'The inspector stopped during the stall; no response was sent.' WHERE in_progress=1"
    )
    params: tuple[float, ...] = ()
    if before_ts is not None:
        sql, params = sql + " AND received_ts < ?", (before_ts,)
    count = conn.execute(sql, params).rowcount
    return Changed(count, rows_added=0)
